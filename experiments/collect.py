r"""Collects an offline dataset with a task's scripted expert and random play.

  python -m experiments.collect --config=configs/grasp_dataset.py --out=DIR

Writes `DIR/manifest.json` and shards (see jaxrl_vision/data/episode_store.py)
and prints the success rate of each policy and of the mix.
"""

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


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  if config.task.name not in TASKS:
    sys.exit(
      f"error: config.task.name={config.task.name!r}: one of {sorted(TASKS)}"
    )
  if config.num_episodes % config.episodes_per_call:
    sys.exit(
      "error: config.num_episodes must be a multiple of episodes_per_call"
    )
  task = TASKS[config.task.name](**config.task.params)
  noise = config.expert_noise

  def expert(model, state, key):
    return task.expert_action(model, state, key, noise)

  def random(model, state, key):
    del model, state
    return task.random_action(key)

  collect = jax.jit(
    offline.make_collector(
      task.env,
      [expert, random],
      [config.expert_weight, 1 - config.expert_weight],
    ),
    static_argnums=2,
  )
  model = task.env.init_model()
  keys = jax.random.split(
    jax.random.key(config.seed), config.num_episodes // config.episodes_per_call
  )
  parts = []
  for i, key in enumerate(keys):
    parts.append(jax.device_get(collect(model, key, config.episodes_per_call)))
    print(
      f"collected {(i + 1) * config.episodes_per_call}/{config.num_episodes}",
      flush=True,
    )
  episodes = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
  manifest = episode_store.write(
    _OUT.value,
    episodes,
    {"config": config.to_dict()},
    config.episodes_per_shard,
  )
  for i, name in enumerate(("expert", "random")):
    mask = episodes.policy == i
    if mask.any():
      print(
        f"{name:6s} episodes {int(mask.sum()):5d}  success {episodes.success[mask].mean():.3f}"
      )
  print(
    f"dataset {_OUT.value}: {manifest['episodes']} episodes, "
    f"{manifest['transitions']} transitions, success {manifest['success_rate']:.3f}"
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)
