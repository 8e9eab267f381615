r"""Surreal's systems figures (spec surreal.md §3.3, §5.2 B3 and B4).

  python -m experiments.benchmarks.surreal_systems [--shards=2] [--seconds=3]

B3, learner iterations/s on HalfCheetah-sized states (17 observations, 6
actions; the seed's Table 3.3 measures Gym Cheetah): a PPO iteration is
`agents.ppo` learning from one minibatch of 64 segments of 25 steps (up
to 10 actor + 10 critic epochs), feed-forward (the CPU default) and with
the seed's LSTM(100); a DDPG iteration is one `agents.ddpg` update on a
batch of 512 transitions. Warm, jitted, the state threaded through calls.

B4, sampled transitions/s of the replay, batch 512 from 2^18 stored state
transitions: one buffer on one device against `data.replay.sharded` over
`--shards` CPU devices (each device holds 1 / D and keeps its B / D of
every batch), plus a check that the shards' batch equals the unsharded
buffer's from the same items and key; and with `exact=False` (each device
samples its share from its own shard: no communication but one scalar sum
per call, as in the exact case). The last line is one JSON object.
"""

import os

if "--xla_force_host_platform_device_count" not in os.environ.get(
  "XLA_FLAGS", ""
):  # B4 needs several CPU devices; set before jax starts its backend
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2"
  ).strip()

import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from jaxrl_vision import types  # noqa: E402
from jaxrl_vision.agents.ddpg import agent as ddpg  # noqa: E402
from jaxrl_vision.agents.ppo import agent as ppo  # noqa: E402
from jaxrl_vision.data.replay import sharded  # noqa: E402
from jaxrl_vision.data.replay import uniform  # noqa: E402
from jaxrl_vision.distributed import mesh as mesh_lib  # noqa: E402
from jaxrl_vision.networks.policies import Gaussian  # noqa: E402

OBS, ACT = 17, 6  # HalfCheetah
SEGMENTS, LENGTH = 64, 25
BATCH = 512


def rate(fn, state, seconds: float, *args) -> tuple[float, float]:
  """(calls/s warm, compile seconds) of `state = fn(state, *args)`; the
  `args` (large data) are arguments, not constants of the program."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(state, *args).compile()
  compile_s = time.perf_counter() - start
  state = jax.block_until_ready(compiled(state, *args))
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or calls < 3:
    # One call at a time: queued calls of a program with collectives over
    # CPU devices can deadlock XLA:CPU (one device's thread waits in call
    # k's all-reduce while the other's pool thread runs call k + 1).
    state = jax.block_until_ready(compiled(state, *args))
    calls += 1
  jax.block_until_ready(state)
  return calls / (time.perf_counter() - start), compile_s


def ppo_segments(key) -> ppo.Segments:
  ks = jax.random.split(key, 3)
  obs = {"state": jax.random.normal(ks[0], (SEGMENTS, LENGTH, OBS))}
  return ppo.Segments(
    obs=obs,
    final_obs=obs,
    actions=jax.random.uniform(ks[1], (SEGMENTS, LENGTH, ACT), minval=-1),
    rewards=jax.random.normal(ks[2], (SEGMENTS, LENGTH)),
    terminated=jnp.zeros((SEGMENTS, LENGTH), bool),
    ends=jnp.zeros((SEGMENTS, LENGTH), bool),
    starts=jnp.zeros((SEGMENTS, LENGTH), bool).at[:, 0].set(True),
    behaviour=Gaussian(
      jnp.zeros((SEGMENTS, LENGTH, ACT)),
      jnp.full((SEGMENTS, LENGTH, ACT), 0.37),
    ),
    carry=None,
  )


def ppo_rate(lstm_size: int, seconds: float) -> dict:
  agent = ppo.make_ppo(ACT, lstm_size=lstm_size, publish_every=1 << 30)
  seg = ppo_segments(jax.random.key(0))
  seg = seg._replace(carry=agent.network.initial_carry(SEGMENTS))
  state = agent.init(jax.random.key(1), {"state": jnp.zeros((1, OBS))})
  per_s, compile_s = rate(
    lambda s, seg: agent.learn(s, seg)[0], state, seconds, seg
  )
  return {
    "lstm_size": lstm_size,
    "iterations_per_s": round(per_s, 1),
    "compile_s": round(compile_s, 1),
  }


def ddpg_rate(seconds: float) -> dict:
  agent = ddpg.make_ddpg(ACT)
  ks = jax.random.split(jax.random.key(0), 4)
  batch = types.Transition(
    obs_tm1={"state": jax.random.normal(ks[0], (BATCH, OBS))},
    action_tm1=jax.random.uniform(ks[1], (BATCH, ACT), minval=-1),
    reward_t=jax.random.normal(ks[2], (BATCH,)),
    discount_t=jnp.full((BATCH,), 0.97),
    obs_t={"state": jax.random.normal(ks[3], (BATCH, OBS))},
  )
  state = agent.init(jax.random.key(1), {"state": jnp.zeros((1, OBS))})
  per_s, compile_s = rate(
    lambda s, b: agent.update(s, b)[0], state, seconds, batch
  )
  return {"iterations_per_s": round(per_s, 1), "compile_s": round(compile_s, 1)}


def _items(n: int):
  ks = jax.random.split(jax.random.key(2), 3)
  return {
    "obs": jax.random.normal(ks[0], (n, OBS)),
    "next_obs": jax.random.normal(ks[1], (n, OBS)),
    "action": jax.random.uniform(ks[2], (n, ACT)),
    "reward": jnp.arange(n, dtype=jnp.float32),
  }


def replay_rates(capacity: int, shards: int, seconds: float) -> dict:
  """Sampled transitions/s of one buffer and of `shards` shards, and
  whether the shards' batch equals the unsharded one."""
  items = _items(capacity)
  example = jax.tree.map(lambda x: x[0], items)
  one = uniform.make_uniform_replay(capacity, BATCH, BATCH)
  state = one.add(one.init(example), items)

  def sample_one(carry, state):
    key, total = carry
    key, k = jax.random.split(key)
    batch = one.sample(state, k)
    return key, total + jnp.sum(batch["reward"])

  carry = (jax.random.key(3), jnp.float32(0))
  one_per_s, _ = rate(sample_one, carry, seconds, state)
  result = {
    "capacity": capacity,
    "batch": BATCH,
    "one_shard_per_s": round(one_per_s * BATCH),
  }
  if shards < 2 or jax.device_count() < shards:
    result["shards"] = 1
    return result
  mesh = mesh_lib.make_mesh(shards, "d")
  many = sharded.make_sharded_replay(
    capacity,
    BATCH,
    BATCH,
    add_size=capacity // shards,
    num_shards=shards,
    axis_name="d",
  )
  split = NamedSharding(mesh, P("d"))
  # The items in device order: device d holds items [d C / D, (d + 1) C / D).
  placed = jax.device_put(items, split)

  def local_state(it):
    return jax.tree.map(lambda x: x[None], many.add(many.init(example), it))

  state_many = jax.jit(
    jax.shard_map(
      local_state, mesh=mesh, in_specs=P("d"), out_specs=P("d"), check_vma=False
    )
  )(placed)

  def sharded_rate(buffer) -> float:
    """Sampled transitions/s of `buffer` over the shards of state_many."""

    def local_sample(st, key, total):
      st = jax.tree.map(lambda x: x[0], st)
      key, k = jax.random.split(key)
      batch = buffer.sample(st, k)
      return key, total + jax.lax.psum(jnp.sum(batch["reward"]), "d")

    sample = jax.shard_map(
      local_sample,
      mesh=mesh,
      in_specs=(P("d"), P(), P()),
      out_specs=(P(), P()),
      check_vma=False,
    )
    per_s, _ = rate(lambda c, st: sample(st, *c), carry, seconds, state_many)
    return per_s * BATCH

  stratified = sharded.make_sharded_replay(
    capacity,
    BATCH,
    BATCH,
    add_size=capacity // shards,
    num_shards=shards,
    axis_name="d",
    exact=False,
  )
  many_per_s, stratified_per_s = sharded_rate(many), sharded_rate(stratified)
  # The same key: the shards' whole batch against one buffer's.
  gather = jax.jit(
    jax.shard_map(
      lambda st, k: many.sample(jax.tree.map(lambda x: x[0], st), k),
      mesh=mesh,
      in_specs=(P("d"), P()),
      out_specs=P("d"),
      check_vma=False,
    )
  )
  key = jax.random.key(4)
  equal = all(
    bool(np.array_equal(a, b))
    for a, b in zip(
      jax.tree.leaves(gather(state_many, key)),
      jax.tree.leaves(one.sample(state, key)),
      strict=True,
    )
  )
  result.update(
    shards=shards,
    sharded_per_s=round(many_per_s),
    stratified_per_s=round(stratified_per_s),
    equal_to_unsharded=equal,
  )
  return result


def main(argv):
  del argv
  seconds = _SECONDS.value
  result = {
    "device": jax.devices()[0].platform,
    "cpu_devices": jax.device_count(),
    "b3_ppo": [ppo_rate(n, seconds) for n in (0, 100)],
    "b3_ddpg": ddpg_rate(seconds),
  }
  print("B3", result, flush=True)
  result["b4_replay"] = replay_rates(1 << 18, _SHARDS.value, seconds)
  print(json.dumps(result))


if __name__ == "__main__":
  _SHARDS = flags.DEFINE_integer("shards", 2, "Replay shards (CPU devices).")
  _SECONDS = flags.DEFINE_float("seconds", 3.0, "Timed seconds per case.")
  app.run(main)
