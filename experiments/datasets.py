"""Offline datasets on the host: collect a policy mix, write, load.

Shared by `experiments.collect` (the CLI) and experiments that need a
dataset (`experiments.visionary`). The dataset config (see
`configs/grasp_dataset.py`): seed, task {name, params}, num_episodes,
episodes_per_call, expert_weight, expert_noise, expert_epsilon,
episodes_per_shard.
"""

import json
import os

import jax
import numpy as np

from jaxrl_vision.data import episode_store
from jaxrl_vision.data import offline
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import stack

POLICIES = ("expert", "random")  # the mix, in Episodes.policy order
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
  return TASKS[config.task.name](**config.task.params)


def _collector(task, config):
  noise, epsilon = config.expert_noise, config.expert_epsilon

  def expert(model, state, key):
    """The noisy expert, taking a random action with probability epsilon
    at each step (it reads its phase from the state, so it recovers)."""
    expert_key, coin_key, random_key = jax.random.split(key, 3)
    action = task.expert_action(model, state, expert_key, noise)
    if epsilon == 0:
      return action
    return jax.numpy.where(
      jax.random.uniform(coin_key) < epsilon,
      task.random_action(random_key),
      action,
    )

  def random(model, state, key):
    del model, state
    return task.random_action(key)

  return offline.make_collector(
    task.env,
    [expert, random],
    [config.expert_weight, 1 - config.expert_weight],
  )


def collect(config, log=print) -> offline.Episodes:
  """Runs the dataset config's policy mix; numpy Episodes on the host."""
  task = make_task(config)
  collect_fn = jax.jit(_collector(task, config), static_argnums=2)
  model = task.env.init_model()
  keys = jax.random.split(
    jax.random.key(config.seed), config.num_episodes // config.episodes_per_call
  )
  parts = []
  for i, key in enumerate(keys):
    parts.append(
      jax.device_get(collect_fn(model, key, config.episodes_per_call))
    )
    log(f"collected {(i + 1) * config.episodes_per_call}/{config.num_episodes}")
  return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def policy_success(episodes: offline.Episodes) -> dict[str, float]:
  """Success rate of each policy of the mix (expert = 0, random = 1)."""
  out = {}
  for i, name in enumerate(POLICIES):
    mask = np.asarray(episodes.policy) == i
    if mask.any():
      out[name] = float(np.mean(np.asarray(episodes.success)[mask]))
  return out


def write(config, directory: str, episodes: offline.Episodes) -> dict:
  """Writes `episodes` with the config in the manifest; returns it."""
  return episode_store.write(
    directory, episodes, {"config": config.to_dict()}, config.episodes_per_shard
  )


def load_or_collect(config, directory: str, log=print):
  """(episodes, manifest): the dataset in `directory`, collected and written
  first if absent. A dataset written from another config raises
  DatasetError, as does a damaged one (see `episode_store.read`)."""
  task = make_task(config)
  if not os.path.exists(os.path.join(directory, episode_store.MANIFEST)):
    episodes = collect(config, log)
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
