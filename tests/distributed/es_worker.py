"""Worker: Surreal-ES on 2 CPU devices vs one device.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    python -m tests.distributed.es_worker OUT_DIR

Two iterations of the ES smoke config (HalfCheetah, population 4): each
device evaluates 2 members and only the returns are gathered; theta and
the observation statistics must equal one device evaluating all 4.
Writes OUT_DIR/es.npz and prints one RESULT line.
"""

import sys

import jax
import numpy as np

from configs import surreal_es_halfcheetah
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from jaxrl_vision.recipes import surreal_es
from tests.distributed import worker_lib

NUM_DEVICES = 2


def main(argv):
  out_dir = argv[1]
  config = surreal_es_halfcheetah.get_config("smoke")
  key = jax.random.key(0)
  arrays = {}
  single = surreal_es.make_train(config)
  mesh = mesh_lib.make_mesh(NUM_DEVICES, "d")
  sharded = data_parallel.data_parallel_trainer(
    surreal_es.make_train(config, "d", NUM_DEVICES), mesh, "d"
  )
  for name, trainer in (("single", single), ("sharded", sharded)):
    state = jax.jit(trainer.init)(key)
    step = jax.jit(trainer.step)
    returns = []
    for _ in range(2):
      state, metrics = step(state)
      returns.append(float(metrics["sum/episode/return"]))
    arrays.update(worker_lib.flatten(state.agent, f"{name}|"))
    arrays[f"{name}|returns"] = np.asarray(returns)
  np.savez(f"{out_dir}/es.npz", **arrays)
  worker_lib.emit({"num_devices": len(jax.devices())})


if __name__ == "__main__":
  main(sys.argv)
