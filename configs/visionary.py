r"""Visionary: one-shot architecture search on a QT-Opt Q-function (issue #4).

  python -m experiments.run --config=configs/visionary.py

Not built yet: the QT-Opt agent, the supernet and the MJX grasping world land
with issues #3 and #4. Until then this config refuses to run rather than
running something else under the main job's name. The runner, checkpoints and
distributed learners it will use are exercised by configs/catch_dqn.py.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  raise NotImplementedError(
    "the Visionary experiment is not built yet (issues #3, #4); "
    "python -m experiments.run --config=configs/catch_dqn.py runs the "
    "foundation's end-to-end job meanwhile"
  )
