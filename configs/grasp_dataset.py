r"""Offline grasp dataset for Visionary-style training (issue #3, spec C.2).

  python -m experiments.collect --config=configs/grasp_dataset.py \
      --out=runs/datasets/grasp64
  python -m experiments.collect --config=configs/grasp_dataset.py:smoke \
      --out=/tmp/grasp_smoke

Episodes mix a noisy scripted expert with uniformly random actions, aiming
at a 30-60% success mix. Default: 256 episodes (2,560 transitions) at 64x64,
a few minutes on a 2-core CPU, most of it compilation.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.task = dict(
    name="grasp",
    params=dict(image_size=64, num_objects=3, episode_length=10),
  )
  config.num_episodes = 256
  config.episodes_per_call = 32  # vmapped worlds per jitted collection call
  config.expert_weight = 0.6  # the rest act uniformly at random
  config.expert_noise = 0.1
  # Probability that an expert episode takes a random action at a step.
  config.expert_epsilon = 0.0
  config.episodes_per_shard = 128
  if arg == "smoke":
    config.task.params.image_size = 32
    config.num_episodes = 16
    config.episodes_per_call = 16
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; valid variants: smoke")
  return config
