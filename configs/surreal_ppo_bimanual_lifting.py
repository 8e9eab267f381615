r"""Surreal-PPO on Bimanual Lifting: state, a Cartesian gripper per hand.

  python -m experiments.run --config=configs/surreal_ppo_bimanual_lifting.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_bimanual_lifting.py
  python -m experiments.run --config=configs/surreal_ppo_bimanual_lifting.py:smoke

Variants as `configs/surreal_ppo_lift.py` (curriculum, pixels, smoke; not
arm7: the task needs two grippers). Episodes of 50 steps (2.5 s at 20 Hz;
the expert lifts the pot 10 cm in ~14). Not measured yet.
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return surreal_suite.get_config("bimanual_lifting", arg)
