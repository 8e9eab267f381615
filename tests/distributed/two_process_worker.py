"""One process of a 2-process CPU JAX job; started by two_process_test.py.

  python -m tests.distributed.two_process_worker PORT PROCESS_ID OUT_DIR
  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
      python -m tests.distributed.two_process_worker local - OUT_DIR

Joins the job through `mesh.initialize` at localhost:PORT, runs data-parallel
DQN updates on a deterministic global batch of which this process holds its
half, writes OUT_DIR/process_<id>.npz (final state and metrics, read from this
process's replica) and prints one `RESULT {json}` line with checksums. Then
runs the data-parallel offline trainer (`offline_lib.run_catch`: a dataset
sharded over the two processes' devices, split evaluation) and writes
OUT_DIR/offline_process_<id>.npz. `local` runs that offline trainer in one
process with two devices instead, the reference, plus a control without
gradient pmean (OUT_DIR/offline_local.npz).
"""

import hashlib
import os
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from tests.distributed import offline_lib
from tests.distributed import worker_lib

NUM_PROCESSES = 2
NUM_UPDATES = 3
GLOBAL_BATCH = 16
AXIS = "data"


def offline_arrays(mesh, agent_axis="same") -> dict[str, np.ndarray]:
  """The offline Catch run's replicated results on this process's host:
  agent state, chunk metrics, evaluation."""
  state, history, evaluation = offline_lib.run_catch(mesh, AXIS, agent_axis)
  return worker_lib.flatten(
    offline_lib.local((state.agent, history, evaluation)), ""
  )


def run_local(out_dir: str) -> None:
  """The reference: the same offline run on one process with 2 devices."""
  mesh = mesh_lib.make_mesh(NUM_PROCESSES)
  arrays = offline_arrays(mesh)
  # Control: without the gradient pmean device 1 learns on its own.
  state, _, _ = offline_lib.run_catch(mesh, AXIS, None, evaluate=False)
  arrays.update(
    worker_lib.flatten(
      jax.tree.map(lambda x: x.addressable_shards[1].data, state.agent.params),
      "no_pmean_device_1|",
    )
  )
  np.savez(os.path.join(out_dir, "offline_local.npz"), **arrays)
  worker_lib.emit({"num_local_devices": jax.local_device_count()})


def main(argv):
  if argv[1] == "local":
    run_local(argv[3])
    return
  port, process_id, out_dir = argv[1], int(argv[2]), argv[3]
  # Gloo is jax 0.10's default for cross-process CPU collectives; say so in
  # case the default moves.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  joined = mesh_lib.initialize(
    coordinator_address=f"localhost:{port}",
    num_processes=NUM_PROCESSES,
    process_id=process_id,
  )
  mesh = mesh_lib.make_mesh()
  agent = worker_lib.make_agent(axis_name=AXIS)
  batches = worker_lib.make_batches(0, NUM_UPDATES, GLOBAL_BATCH)
  half = GLOBAL_BATCH // NUM_PROCESSES
  mine = slice(process_id * half, (process_id + 1) * half)

  # Every process builds the same initial state; each contributes its copy.
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P(AXIS))
  state = agent.init(jax.random.key(0), batches.obs_tm1[0, :1])
  state = jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(replicated, x), state
  )
  update = data_parallel.data_parallel_update(agent.update, mesh, AXIS)
  all_metrics = []
  for i in range(NUM_UPDATES):
    batch = jax.tree.map(
      lambda x, i=i: jax.make_array_from_process_local_data(
        split, x[i, mine], (GLOBAL_BATCH,) + x.shape[2:]
      ),
      batches,
    )
    state, metrics = update(state, batch)
    all_metrics.append(metrics)

  local = jax.tree.map(
    lambda x: x.addressable_shards[0].data, (state, all_metrics)
  )
  arrays = worker_lib.flatten(local, "")
  np.savez(os.path.join(out_dir, f"process_{process_id}.npz"), **arrays)
  digest = hashlib.sha256()
  for name in sorted(arrays):
    digest.update(name.encode())
    digest.update(arrays[name].tobytes())
  params = worker_lib.flatten(local[0].params, "")
  np.savez(
    os.path.join(out_dir, f"offline_process_{process_id}.npz"),
    **offline_arrays(mesh),
  )
  worker_lib.emit(
    {
      "joined": joined,
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "num_global_devices": jax.device_count(),
      "num_local_devices": jax.local_device_count(),
      "mesh_shape": dict(mesh.shape),
      "sha256": digest.hexdigest(),
      "param_sums": {
        k: float(v.astype(np.float64).sum()) for k, v in params.items()
      },
      "param_heads": {k: v.ravel()[:3].tolist() for k, v in params.items()},
      "loss": [float(m["loss"]) for m in local[1]],
    }
  )


if __name__ == "__main__":
  main(sys.argv)
