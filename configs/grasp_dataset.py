r"""Offline grasp dataset for Visionary-style training (issue #3, spec C.2).

  python -m experiments.collect --config=configs/grasp_dataset.py \
      --out=runs/datasets/grasp64
  python -m experiments.collect --config=configs/grasp_dataset.py:smoke \
      --out=/tmp/grasp_smoke

Episodes mix the behaviour policies of `envs.manipulation.scripted`: the
scripted expert, the expert aiming off the object, a straight descent and
random moves. Default: 256 episodes (2,560 transitions) at 64x64,
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
  # Episodes per behaviour policy (envs.manipulation.scripted), by weight.
  config.mix = dict(expert=0.4, offset_expert=0.4, descent=0.1, random=0.1)
  config.expert_noise = 0.1
  # Probability that an expert step is replaced by a random move.
  config.explore_epsilon = 0.2
  # The offset expert aims this far (metres) off the object.
  config.offset_range = (0.015, 0.05)
  # Per-step probability that the random policy closes the gripper.
  config.random_close = 0.15
  config.episodes_per_shard = 128
  if arg == "smoke":
    config.task.params.image_size = 32
    config.num_episodes = 16
    config.episodes_per_call = 16
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; valid variants: smoke")
  return config
