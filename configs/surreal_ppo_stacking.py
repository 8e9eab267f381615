r"""Surreal-PPO on Block Stacking (issue #14): state, Cartesian gripper.

  python -m experiments.run --config=configs/surreal_ppo_stacking.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_stacking.py
  python -m experiments.run --config=configs/surreal_ppo_stacking.py:smoke

Variants as `configs/surreal_ppo_lift.py` (curriculum, pixels, arm7,
smoke). Episodes of 60 steps (3 s at 20 Hz; the expert stacks in 16-26).
Not measured yet: the tests run one iteration of `:curriculum_smoke`.
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return surreal_suite.get_config("stacking", arg)
