r"""Collects an offline dataset with a task's behaviour policies.

  python -m experiments.collect --config=configs/grasp_dataset.py --out=DIR

Writes `DIR/manifest.json` and shards (see jaxrl_vision/data/episode_store.py)
and prints the success rate of each policy and of the mix.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import datasets

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Dataset config file.", lock_config=True
)
_OUT = flags.DEFINE_string("out", None, "Output directory (must not exist).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  try:
    datasets.make_task(config)
  except ValueError as e:
    sys.exit(f"error: {e}")
  episodes = datasets.collect(config)
  manifest = datasets.write(config, _OUT.value, episodes)
  for name, part in datasets.composition(episodes).items():
    print(
      f"{name:13s} episodes {part['episodes']:5d}  success "
      f"{part['success']:.3f}"
    )
  print(
    f"dataset {_OUT.value}: {manifest['episodes']} episodes, "
    f"{manifest['transitions']} transitions, "
    f"success {manifest['success_rate']:.3f}"
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)
