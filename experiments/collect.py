r"""Collects an offline dataset with a task's scripted expert and random play.

  python -m experiments.collect --config=configs/grasp_dataset.py --out=DIR

Writes `DIR/manifest.json` and shards (see jaxrl_vision/data/episode_store.py)
and prints the success rate of each policy and of the mix.
"""

import json
import os
import sys

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxrl_vision.data import episode_store
from jaxrl_vision.data import offline
from jaxrl_vision.envs.manipulation import grasp

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Dataset config file.", lock_config=True
)
_OUT = flags.DEFINE_string("out", None, "Output directory (must not exist).")

TASKS = {"grasp": grasp.make_grasp_task}


def _task(config):
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
  noise = config.expert_noise

  def expert(model, state, key):
    return task.expert_action(model, state, key, noise)

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
  task = _task(config)
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
  for i, name in enumerate(("expert", "random")):
    mask = np.asarray(episodes.policy) == i
    if mask.any():
      out[name] = float(np.mean(np.asarray(episodes.success)[mask]))
  return out


def load_or_collect(config, directory: str, log=print):
  """(episodes, manifest): the dataset in `directory`, collected first if
  absent. A dataset written from another config raises DatasetError, as
  does a damaged one (see `episode_store.read`)."""
  task = _task(config)
  manifest_path = os.path.join(directory, episode_store.MANIFEST)
  if not os.path.exists(manifest_path):
    episodes = collect(config, log)
    episode_store.write(
      directory,
      episodes,
      {"config": config.to_dict()},
      config.episodes_per_shard,
    )
  example = jax.eval_shape(
    _collector(task, config), task.env.init_model(), jax.random.key(0), 1
  )
  episodes, manifest = episode_store.read(directory, example)
  saved = json.loads(json.dumps(manifest["metadata"].get("config")))
  if saved != json.loads(json.dumps(config.to_dict())):
    raise episode_store.DatasetError(
      f"{directory} holds a dataset from another config; point "
      "dataset.path elsewhere or delete it"
    )
  return episodes, manifest


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  try:
    _task(config)
  except ValueError as e:
    sys.exit(f"error: {e}")
  episodes = collect(config)
  manifest = episode_store.write(
    _OUT.value,
    episodes,
    {"config": config.to_dict()},
    config.episodes_per_shard,
  )
  for name, rate in policy_success(episodes).items():
    count = int(np.sum(episodes.policy == (name == "random")))
    print(f"{name:6s} episodes {count:5d}  success {rate:.3f}")
  print(
    f"dataset {_OUT.value}: {manifest['episodes']} episodes, "
    f"{manifest['transitions']} transitions, "
    f"success {manifest['success_rate']:.3f}"
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)
