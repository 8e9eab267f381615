r"""Surreal-PPO on Nut-and-peg Assembly: state, Cartesian gripper, two nuts.

  python -m experiments.run --config=configs/surreal_ppo_nut_assembly.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_nut_assembly.py
  python -m experiments.run --config=configs/surreal_ppo_nut_assembly.py:smoke
  python -m experiments.run --config=configs/surreal_ppo_nut_assembly.py:curriculum \
      --config.env.params.num_nuts=1 --config.env.params.episode_length=30

Variants as `configs/surreal_ppo_lift.py` (curriculum, pixels, smoke; not
arm7: the task is built for the Cartesian gripper). Episodes of 60 steps
(3 s at 20 Hz; the expert has both nuts on their pegs after 38-44). The
last command is the CPU-sized task: the square nut alone (robosuite's
`NutAssemblySquare`), 14 object features, 30 steps.

Not trained yet. The references, success at the last step in randomised
worlds (`jaxrl_vision/envs/suite/nut_assembly.py`): two nuts (64 worlds)
expert 100 %, straight descent 0 %, random 0 %; one nut (32 worlds, 30
steps) expert 100 % (by step 16-19), straight descent 0 %, random 0 %.
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = surreal_suite.get_config("nut_assembly", arg)
  config.env.params.num_nuts = 2  # 1: the square nut alone
  return config
