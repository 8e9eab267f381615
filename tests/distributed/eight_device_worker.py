"""Runs the 8-device data-parallel checks; started by data_parallel_test.py.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python -m tests.distributed.eight_device_worker {updates,trainer} OUT_DIR

XLA_FLAGS must be set before jax starts its backend, which a pytest process
that already imported jax cannot do, hence a process of its own. Prints one
`RESULT {json}` line; `updates` also writes OUT_DIR/updates.npz, the states
and metrics to compare.
"""

import os
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision import train
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from jaxrl_vision.envs import registry
from tests.distributed import worker_lib

NUM_DEVICES = 8
NUM_UPDATES = 3
GLOBAL_BATCH = 64
CHUNK_LENGTH = 2
AXIS = "data"


def run_updates(out_dir: str) -> dict:
  """Sharded vs single-device DQN updates on the same global batches."""
  mesh = mesh_lib.make_mesh(NUM_DEVICES)
  batches = worker_lib.make_batches(0, NUM_UPDATES, GLOBAL_BATCH)
  single = worker_lib.make_agent(axis_name=None)
  state = single.init(jax.random.key(0), batches.obs_tm1[0, :1])

  updates = {
    "single": jax.jit(single.update),
    "sharded": data_parallel.data_parallel_update(
      worker_lib.make_agent(axis_name=AXIS).update, mesh, AXIS
    ),
    # No pmean: each device steps on its own slice. Must not match.
    "no_pmean": data_parallel.data_parallel_update(single.update, mesh, AXIS),
  }
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P(AXIS))
  states = {
    "single": state,
    "sharded": jax.device_put(state, replicated),
    "no_pmean": jax.device_put(state, replicated),
  }
  arrays, replicated_leaves = {}, {}
  for i in range(NUM_UPDATES):
    batch = jax.tree.map(lambda x, i=i: x[i], batches)
    for name, update in updates.items():
      on = split if name != "single" else None
      states[name], metrics = update(states[name], jax.device_put(batch, on))
      # Shard 0 of a replicated output: what a host reading it would see.
      local = jax.tree.map(
        lambda x: x.addressable_shards[0].data, (states[name], metrics)
      )
      arrays.update(worker_lib.flatten(local, f"{name}|{i}|"))
  for name in ("sharded", "no_pmean"):
    replicated_leaves[name] = {
      jax.tree_util.keystr(path): worker_lib.shards_identical(leaf)
      for path, leaf in jax.tree_util.tree_leaves_with_path(states[name])
    }
  num_shards = {
    name: len(jax.tree.leaves(states[name].params)[0].addressable_shards)
    for name in ("sharded", "no_pmean")
  }
  np.savez(os.path.join(out_dir, "updates.npz"), **arrays)
  return {
    "num_devices": len(jax.devices()),
    "num_shards": num_shards,
    "replicated": replicated_leaves,
  }


def _make_trainer(agent_axis, trainer_axis):
  env = registry.make_env("catch")
  buffer = uniform.make_uniform_replay(capacity=256, batch_size=16, min_size=32)
  # 4 worlds x 10 steps: every world ends a 9-step episode each iteration,
  # and the 40 items cover min_size, so every step has episodes and updates.
  return train.make_off_policy_train(
    env,
    env.init_model(),
    worker_lib.make_agent(axis_name=agent_axis),
    buffer,
    num_envs=4,
    unroll_length=10,
    num_updates_per_iteration=2,
    num_iterations=4,
    num_eval_episodes=2,
    axis_name=trainer_axis,
  )


def _per_device_rows(tree) -> list[bytes]:
  """Device i's slice of every leaf (leading [num_devices] axis), as bytes."""
  leaves = [worker_lib.to_numpy(x) for x in jax.tree.leaves(tree)]
  return [
    b"".join(leaf[i].tobytes() for leaf in leaves) for i in range(NUM_DEVICES)
  ]


def _describe(state, initial) -> dict:
  return {
    "agent_replicated": all(
      worker_lib.shards_identical(x) for x in jax.tree.leaves(state.agent)
    ),
    "num_agent_shards": len(
      jax.tree.leaves(state.agent.params)[0].addressable_shards
    ),
    "params_moved": any(
      not np.array_equal(worker_lib.to_numpy(a), worker_lib.to_numpy(b))
      for a, b in zip(
        jax.tree.leaves(state.agent.params),
        jax.tree.leaves(initial.agent.params),
        strict=True,
      )
    ),
    "env_leading_dims": sorted(
      {x.shape[0] for x in jax.tree.leaves(state.env)}
    ),
    "num_distinct_env_states": len(set(_per_device_rows(state.env))),
    "num_distinct_obs": len(set(_per_device_rows(state.env.obs))),
    "num_distinct_keys": len(set(_per_device_rows(state.key))),
    "iteration": int(state.iteration),
  }


def run_trainer(out_dir: str) -> dict:
  """data_parallel_trainer over 8 devices, plus two broken controls."""
  del out_dir  # everything fits in the JSON line
  mesh = mesh_lib.make_mesh(NUM_DEVICES)
  key = jax.random.key(0)
  trainers = {
    name: data_parallel.data_parallel_trainer(
      _make_trainer(agent_axis, trainer_axis), mesh, AXIS
    )
    for name, agent_axis, trainer_axis in (
      ("data_parallel", AXIS, AXIS),
      ("agent_no_pmean", None, AXIS),  # params must drift apart
      ("trainer_no_axis", AXIS, None),  # worlds must all be the same
    )
  }
  initial = jax.jit(trainers["data_parallel"].init)(key)
  result = {}
  # The agent's axis_name does not enter init, so the no-pmean control
  # starts from the same state (one compile fewer).
  for name, num_chunks in (("data_parallel", 2), ("agent_no_pmean", 1)):
    chunk = jax.jit(train.make_chunk(trainers[name].step, CHUNK_LENGTH))
    state, chunk_metrics = initial, []
    for _ in range(num_chunks):
      state, metrics = chunk(state)
      chunk_metrics.append({k: float(v) for k, v in metrics.items()})
    result[name] = dict(_describe(state, initial), metrics=chunk_metrics)
  # Its init alone shows whether worlds differ.
  state = jax.jit(trainers["trainer_no_axis"].init)(key)
  result["trainer_no_axis"] = _describe(state, state)
  return result


def main(argv):
  mode, out_dir = argv[1:]
  run = {"updates": run_updates, "trainer": run_trainer}[mode]
  worker_lib.emit(run(out_dir))


if __name__ == "__main__":
  main(sys.argv)
