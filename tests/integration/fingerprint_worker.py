"""Prints one JSON line about a run's newest checkpoint (for subprocess tests).

  python -m tests.integration.fingerprint_worker WORKDIR   # a :smoke run

Run with the same device count as the run (XLA_FLAGS), since the state layout
depends on it. Prints the step, a sha256 over every leaf's bytes, and whether
each replicated (agent) leaf is bitwise identical on every device.
"""

import hashlib
import json
import sys

import jax
import numpy as np

from experiments import loop
from jaxrl_vision import train
from tests.integration import helpers


def _bytes_view(x):
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return x


def main(workdir: str) -> None:
  config = helpers.smoke_config()
  step, state = loop.restore_final_state(
    workdir, helpers.recipe(config), config
  )
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(state):
    digest.update(np.asarray(_bytes_view(leaf)).tobytes())
  assert train.PER_DEVICE.agent is False  # the agent is the replicated part
  replicated = all(
    np.array_equal(
      np.asarray(s.data), np.asarray(leaf.addressable_shards[0].data)
    )
    for leaf in jax.tree.leaves(jax.tree.map(_bytes_view, state.agent))
    for s in leaf.addressable_shards
  )
  print(
    json.dumps(
      {
        "step": step,
        "sha256": digest.hexdigest(),
        "devices": jax.device_count(),
        "agent_replicated": replicated,
      }
    )
  )


if __name__ == "__main__":
  main(sys.argv[1])
