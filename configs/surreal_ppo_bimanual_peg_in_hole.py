r"""Surreal-PPO on Bimanual Peg-in-hole: state, a Cartesian gripper per hand.

  python -m experiments.run --config=configs/surreal_ppo_bimanual_peg_in_hole.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_bimanual_peg_in_hole.py
  python -m experiments.run --config=configs/surreal_ppo_bimanual_peg_in_hole.py:smoke

Variants as `configs/surreal_ppo_lift.py` (curriculum, pixels, smoke; not
arm7: the task needs two grippers, one holding the board, the other the
peg). Episodes of 30 steps (1.5 s at 20 Hz; the expert meets the spec's
success in 1-2 steps and has the peg fully in, t = 0, in 7-9).

Measured (2-core CPU, 2026-12-07, 3 seeds, 100 evaluation episodes): the
default (no curriculum) ends at 47.3 % success (seeds 100, 0, 42 %) after
1,400 iterations in 49:47 wall, inserting the peg in 0 %; in the same
worlds the expert 100 %, the no-turn reference 50 %, random 2 %.
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return surreal_suite.get_config("bimanual_peg_in_hole", arg)
