"""Runs the 8-device data-parallel checks; started by data_parallel_test.py.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python -m tests.distributed.eight_device_worker \
      {updates,trainer,offline} OUT_DIR

XLA_FLAGS must be set before jax starts its backend, which a pytest process
that already imported jax cannot do, hence a process of its own. Prints one
`RESULT {json}` line; `updates` and `offline` also write
OUT_DIR/<mode>.npz, the states and metrics to compare.
"""

import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision import train
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from jaxrl_vision.envs import registry
from jaxrl_vision.recipes import qtopt_offline
from tests.distributed import offline_lib
from tests.distributed import qtopt_lib
from tests.distributed import worker_lib

NUM_DEVICES = 8
NUM_UPDATES = 3
GLOBAL_BATCH = 64
CHUNK_LENGTH = 2
AXIS = "data"


def compare_updates(mesh, update, axis_update, state, batches):
  """(final states, flattened states and metrics) of NUM_UPDATES updates
  on `batches` [NUM_UPDATES, global batch, ...] run three ways, keyed
  "<run>|<update>|<leaf>": "single" (one device, the whole batch),
  "sharded" (`axis_update`, which pmeans, on slices) and "no_pmean"
  (`update` on slices: each device steps on its own; must not match)."""
  updates = {
    "single": jax.jit(update),
    "sharded": data_parallel.data_parallel_update(axis_update, mesh, AXIS),
    "no_pmean": data_parallel.data_parallel_update(update, mesh, AXIS),
  }
  replicated = NamedSharding(mesh, P())
  split = NamedSharding(mesh, P(AXIS))
  states = {
    name: state if name == "single" else jax.device_put(state, replicated)
    for name in updates
  }
  arrays = {}
  for i in range(NUM_UPDATES):
    batch = jax.tree.map(lambda x, i=i: x[i], batches)
    for name, step in updates.items():
      on = split if name != "single" else None
      states[name], metrics = step(states[name], jax.device_put(batch, on))
      # Shard 0 of a replicated output: what a host reading it would see.
      local = jax.tree.map(
        lambda x: x.addressable_shards[0].data, (states[name], metrics)
      )
      arrays.update(worker_lib.flatten(local, f"{name}|{i}|"))
  return states, arrays


def run_updates(out_dir: str) -> dict:
  """Sharded vs single-device DQN updates on the same global batches."""
  mesh = mesh_lib.make_mesh(NUM_DEVICES)
  batches = worker_lib.make_batches(0, NUM_UPDATES, GLOBAL_BATCH)
  single = worker_lib.make_agent(axis_name=None)
  state = single.init(jax.random.key(0), batches.obs_tm1[0, :1])

  states, arrays = compare_updates(
    mesh,
    single.update,
    worker_lib.make_agent(axis_name=AXIS).update,
    state,
    batches,
  )
  replicated_leaves = {}
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


def run_offline(out_dir: str) -> dict:
  """qtopt_offline on 8 devices: a short data-parallel run of its trainer
  with 2 vmapped seeds; its update vs one device on the same global
  batches (and a no-pmean control); the split evaluation."""
  mesh = mesh_lib.make_mesh(NUM_DEVICES)
  result, initial = _offline_trainer_run(mesh)
  # The trainer's first agent (seed 0) starts the update comparison: an
  # init compiles slowly (~6 s), one is enough.
  state = jax.tree.map(lambda x: _host_copy(x[0]), initial)
  c = qtopt_lib.config(**{"agent.conservative_weight": 0.0})
  batches = qtopt_lib.global_batches(c, NUM_UPDATES)
  states, arrays = compare_updates(
    mesh,
    qtopt_lib.agent(c, None).update,
    qtopt_lib.agent(c, AXIS).update,
    state,
    batches,
  )
  np.savez(os.path.join(out_dir, "offline.npz"), **arrays)
  result["replicated"] = all(
    worker_lib.shards_identical(x) for x in jax.tree.leaves(states["sharded"])
  )
  result.update(_offline_evaluation(mesh))
  return result


def _host_copy(x: jax.Array) -> jax.Array:
  """`x` rebuilt from host data: an uncommitted single-device array."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(worker_lib.to_numpy(x))
  return jnp.asarray(worker_lib.to_numpy(x))


def _offline_trainer_run(mesh) -> tuple[dict, Any]:
  """The recipe's trainer as `experiments.loop` builds it on 8 devices;
  (what it reports, its initial agent states [2 seeds, ...])."""
  c = qtopt_lib.config()
  episodes = qtopt_lib.episodes()
  sharded = qtopt_offline.make_recipe(
    (qtopt_offline.device_data(episodes, NUM_DEVICES), "synthetic")
  ).make_train(c, AXIS, NUM_DEVICES)
  sharded = data_parallel.data_parallel_trainer(
    train.vmap_seeds(sharded, 2), mesh, AXIS
  )
  one = qtopt_offline.make_recipe(
    (qtopt_offline.device_data(episodes, 1), "synthetic")
  ).make_train(c)
  one = train.vmap_seeds(one, 2)
  key = jax.random.key(0)
  initial = jax.jit(sharded.init)(key)
  step = jax.jit(sharded.step).lower(initial, sharded.data).compile()
  state, metrics = train.make_host_chunk(step, CHUNK_LENGTH)(
    initial, sharded.data
  )
  # No evaluation: the grasp env's compile alone takes ~50 s here; the
  # split evaluation is checked exactly on Catch (_offline_evaluation).

  def structure(tree):
    return [
      (jax.tree_util.keystr(p), x.shape, str(x.dtype))
      for p, x in jax.tree_util.tree_leaves_with_path(tree)
    ]

  one_agent = jax.eval_shape(one.init, key).agent
  data_leaves = jax.tree.leaves(sharded.data)
  return {
    "trainer": {
      "metrics": {k: np.asarray(v).tolist() for k, v in metrics.items()},
      "same_agent_structure": structure(state.agent) == structure(one_agent),
      "agent_replicated": all(
        worker_lib.shards_identical(x) for x in jax.tree.leaves(state.agent)
      ),
      "params_moved": any(
        not np.array_equal(worker_lib.to_numpy(a), worker_lib.to_numpy(b))
        for a, b in zip(
          jax.tree.leaves(state.agent.params),
          jax.tree.leaves(initial.agent.params),
          strict=True,
        )
      ),
      "num_distinct_keys": len(set(_per_device_rows(state.key))),
      "data_shards": sorted({len(x.addressable_shards) for x in data_leaves}),
      # Episodes per device: the image leaf's shard is [1, E / D, ...].
      "episodes_per_device": sorted(
        {
          s.data.shape[1]
          for s in sharded.data.episodes.obs["image"].addressable_shards
        }
      ),
      "iteration": np.asarray(state.iteration).tolist(),
    }
  }, initial.agent


def _offline_evaluation(mesh) -> dict:
  """The offline trainer's split evaluation (5 worlds over 8 devices) vs
  one device's, for a greedy DQN on Catch (no randomness in acting)."""
  state, history, split_eval = offline_lib.run_catch(mesh, AXIS, num_chunks=1)
  agent_state = jax.device_get(offline_lib.local(state.agent))
  one = offline_lib.catch_trainer(None)
  key = jax.random.key(1)
  one_eval = jax.jit(one.evaluate)(agent_state, key)
  # Control: the mean a device split would give if it counted its padding
  # copies of worlds (rows 5..7 repeat worlds 0..2).
  env = registry.make_env("catch")
  dqn = worker_lib.make_agent(None)
  run = train.make_run_episodes(
    env, env.init_model(), offline_lib.CATCH_EVAL_EPISODES
  )

  def act(env_state, key):
    return dqn.act(agent_state, env_state.obs, key, deterministic=True)[0]

  returns = np.asarray(jax.jit(lambda k: run(act, k).returns)(key))
  padded = returns[np.arange(NUM_DEVICES) % len(returns)]
  return {
    "catch": {
      "split_eval": {k: float(v) for k, v in split_eval.items()},
      "one_device_eval": {k: float(v) for k, v in one_eval.items()},
      "returns": returns.tolist(),
      "unmasked_return": float(padded.mean()),
      "metrics": {k: float(v) for k, v in history[0].items()},
    }
  }


def main(argv):
  mode, out_dir = argv[1:]
  run = {
    "updates": run_updates,
    "trainer": run_trainer,
    "offline": run_offline,
  }[mode]
  worker_lib.emit(run(out_dir))


if __name__ == "__main__":
  main(sys.argv)
