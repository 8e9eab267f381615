"""Offline datasets on the host: collect a policy mix, write, load.

Shared by `experiments.collect` (the CLI) and experiments that need a
dataset (`experiments.visionary`). The dataset config (see
`configs/grasp_dataset.py`): seed, task {name, params}, num_episodes,
episodes_per_call, mix {policy: weight} over `POLICIES`, expert_noise,
explore_epsilon, offset_range, episodes_per_shard (the policies are
`envs.manipulation.scripted`'s).
"""

import json
import os

import jax
import numpy as np

from jaxrl_vision import train
from jaxrl_vision.data import episode_store
from jaxrl_vision.data import offline
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import scripted
from jaxrl_vision.envs.manipulation import stack

POLICIES = scripted.POLICY_NAMES  # the mix, in Episodes.policy order
TASKS = {"grasp": grasp.make_grasp_task, "stack": stack.make_stack_task}


def make_task(config):
  """The ManipulationTask a dataset config names; ValueError if malformed."""
  if config.task.name not in TASKS:
    raise ValueError(
      f"config.task.name={config.task.name!r}: one of {sorted(TASKS)}"
    )
  if config.num_episodes % config.episodes_per_call:
    raise ValueError(
      "config.num_episodes must be a multiple of episodes_per_call"
    )
  unknown = sorted(set(config.mix) - set(POLICIES))
  if unknown:
    raise ValueError(
      f"config.mix: unknown policies {unknown}; valid {POLICIES}"
    )
  return TASKS[config.task.name](**config.task.params)


def behaviour_policies(task, config):
  """The config's behaviour-policy mix: (policies, weights) in `POLICIES`
  order (`envs.manipulation.scripted`)."""
  policies = scripted.make_behaviour_policies(
    task,
    grasp.straight_descent_action,
    expert_noise=config.expert_noise,
    explore_epsilon=config.explore_epsilon,
    offset_range=tuple(config.offset_range),
    random_close=config.random_close,
  )
  return (
    [policies[name] for name in POLICIES],
    [config.mix.get(name, 0.0) for name in POLICIES],
  )


def collect(config, log=print, programs=None) -> offline.Episodes:
  """Runs the dataset config's policy mix; numpy Episodes on the host.

  Stepped from the host (`offline.make_stepped_collector`) over `programs`,
  env programs of `episodes_per_call` worlds of this config's task (e.g.
  the evaluation's, which then compiles no second env step); built here
  when None or of another world count.
  """
  task = make_task(config)
  if programs is None or programs.num_episodes != config.episodes_per_call:
    programs = train.make_episode_programs(
      task.env, task.env.init_model(), config.episodes_per_call
    )
  collect_fn = offline.make_stepped_collector(*behaviour_policies(task, config))
  keys = jax.random.split(
    jax.random.key(config.seed), config.num_episodes // config.episodes_per_call
  )
  parts = []
  for i, key in enumerate(keys):
    parts.append(collect_fn(programs, key))
    log(f"collected {(i + 1) * config.episodes_per_call}/{config.num_episodes}")
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def composition(episodes: offline.Episodes) -> dict[str, dict]:
  """Per policy of the mix that acted: episodes, transitions, success rate."""
  policy = np.asarray(episodes.policy)
  out = {}
  for i, name in enumerate(POLICIES):
    mask = policy == i
    if mask.any():
      out[name] = {
        "episodes": int(mask.sum()),
        "transitions": int(np.asarray(episodes.length)[mask].sum()),
        "success": round(float(np.mean(np.asarray(episodes.success)[mask])), 4),
      }
  return out


def write(config, directory: str, episodes: offline.Episodes) -> dict:
  """Writes `episodes` with the config in the manifest; returns it."""
  return episode_store.write(
    directory, episodes, {"config": config.to_dict()}, config.episodes_per_shard
  )


def load_or_collect(config, directory: str, log=print, programs=None):
  """(episodes, manifest): the dataset in `directory`, collected and written
  first if absent (over `programs`, see `collect`). A dataset written from another config raises
  DatasetError, as does a damaged one (see `episode_store.read`)."""
  task = make_task(config)
  if not os.path.exists(os.path.join(directory, episode_store.MANIFEST)):
    episodes = collect(config, log, programs)
    return episodes, write(config, directory, episodes)
  episodes, manifest = episode_store.read(
    directory, offline.episodes_structure(task.env)
  )
  saved = json.loads(json.dumps(manifest["metadata"].get("config")))
  if saved != json.loads(json.dumps(config.to_dict())):
    raise episode_store.DatasetError(
      f"{directory} holds a dataset from another config; point "
      "dataset.path elsewhere or delete it"
    )
  return episodes, manifest
