r"""Surreal-PPO on Block Lifting (issue #14): state, Cartesian gripper.

  python -m experiments.run --config=configs/surreal_ppo_lift.py
  python -m experiments.run --config=configs/surreal_ppo_lift.py:curriculum
  python -m experiments.run --config=configs/surreal_ppo_lift.py:smoke
  python -m experiments.run --config=configs/surreal_ppo_lift.py:pixels   # GPU
  python -m experiments.run --config=configs/surreal_ppo_lift.py:arm7

Variants (`configs/surreal_suite.py`): curriculum, pixels, arm7, smoke,
joined by `_` (e.g. `:curriculum_smoke`, `:pixels_smoke`). The actor fleet
is `env.num_worlds` vmapped MJX worlds acting with the published
parameters; one iteration steps each world `train.stride` times and learns
from one 25-step segment per world (minibatches of `train.batch_size`, up
to 10 + 10 epochs each, spec surreal.md §1.2.4-1.2.5). Seeds run vmapped
in one program (`num_seeds`).

Measured on the 2-core CPU: see README.md ("Surreal").
"""

import ml_collections

from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return surreal_suite.get_config("lift", arg)
