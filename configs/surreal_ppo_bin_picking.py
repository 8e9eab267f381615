r"""Surreal-PPO on Bin Picking: state, Cartesian gripper, four objects.

  python -m experiments.run --config=configs/surreal_ppo_bin_picking.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_bin_picking.py
  python -m experiments.run --config=configs/surreal_ppo_bin_picking.py:smoke
  python -m experiments.run --config=configs/surreal_ppo_bin_picking.py:curriculum \
      --config.env.params.num_objects=1 --config.env.params.episode_length=30

Variants as `configs/surreal_ppo_lift.py` (curriculum, pixels, smoke; not
arm7: the task refuses the arm, whose scripted expert placed all four
objects in only 4 of 8 worlds). Episodes of 108 steps (5.4 s at 20 Hz; the
expert has the fourth object in after 95-106). The last command is the
CPU-sized task: the milk alone (robosuite's single-object variant), 14
object features, 30 steps (the expert places it by step 19-26).

Not trained yet. The references, success at the last step in randomised
worlds (`jaxrl_vision/envs/suite/bin_picking.py`): four objects (64
worlds) expert 100 %, straight descent 0 %, random 0 %; one object (32
worlds, 40 steps) expert 100 %, straight descent 3 %, random 0 %.
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = surreal_suite.get_config("bin_picking", arg)
  config.env.params.num_objects = 4  # 1-4: the first of milk, bread, ...
  return config
