"""Worker: the sharded replay on 4 CPU devices vs one unsharded buffer.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    python -m tests.distributed.replay_worker OUT_DIR

Three adds of 8 items (2 per device, the devices' worlds in order) into a
global capacity of 16 (the third add wraps), sampling 8 with the same keys
before the buffer can sample, after each add: the sharded buffer's
devices' slices, concatenated, and the unsharded buffer's batch. Writes
OUT_DIR/replay.npz and prints one RESULT line.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision.data.replay import sharded
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.distributed import mesh as mesh_lib
from tests.distributed import worker_lib

NUM_DEVICES = 4
CAPACITY, BATCH, ADD = 16, 8, 8


def items(call: int):
  """Call `call`'s items, world-major: [ADD, ...] of distinct values."""
  base = 100 * call + jnp.arange(ADD)
  return {
    "obs": jnp.stack([base, -base], -1).astype(jnp.float32),
    "image": (base[:, None, None] % 251).astype(jnp.uint8)
    * jnp.ones((1, 2, 2), jnp.uint8),
    "done": base % 3 == 0,
  }


def main(argv):
  out_dir = argv[1]
  mesh = mesh_lib.make_mesh(NUM_DEVICES, "d")
  one = uniform.make_uniform_replay(CAPACITY, BATCH, min_size=ADD)
  many = sharded.make_sharded_replay(
    CAPACITY,
    BATCH,
    ADD,
    add_size=ADD // NUM_DEVICES,
    num_shards=NUM_DEVICES,
    axis_name="d",
  )
  example = jax.tree.map(lambda x: x[0], items(0))
  spec = P("d")

  def local(f, in_specs, out_specs):
    return jax.jit(
      jax.shard_map(
        f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
      )
    )

  # A leading device axis on the sharded state: each device sees [1, ...].
  init = local(
    lambda: jax.tree.map(lambda x: x[None], many.init(example)), (), spec
  )
  add = local(
    lambda s, it: jax.tree.map(
      lambda x: x[None], many.add(jax.tree.map(lambda x: x[0], s), it)
    ),
    (spec, spec),
    spec,
  )
  sample = local(
    lambda s, k: many.sample(jax.tree.map(lambda x: x[0], s), k),
    (spec, P()),
    spec,
  )
  can = local(
    lambda s: many.can_sample(jax.tree.map(lambda x: x[0], s))[None],
    (spec,),
    spec,
  )
  s_one, s_many = one.init(example), init()
  arrays = {}
  for call in range(3):
    it = items(call)
    s_one = one.add(s_one, it)
    split = jax.device_put(it, NamedSharding(mesh, spec))
    s_many = add(s_many, split)  # device d gets items [2d, 2d + 2)
    for j in range(2):
      key = jax.random.key(10 * call + j)
      shared = jax.device_put(key, NamedSharding(mesh, P()))
      arrays.update(
        worker_lib.flatten(one.sample(s_one, key), f"one|{call}|{j}|")
      )
      arrays.update(
        worker_lib.flatten(sample(s_many, shared), f"many|{call}|{j}|")
      )
    arrays[f"can|{call}"] = np.asarray(
      [bool(one.can_sample(s_one)), *np.asarray(can(s_many)).tolist()]
    )
  # exact=False: each device samples its share from its own shard.
  stratified = sharded.make_sharded_replay(
    CAPACITY,
    BATCH,
    ADD,
    add_size=ADD // NUM_DEVICES,
    num_shards=NUM_DEVICES,
    axis_name="d",
    exact=False,
  )
  sample_local = local(
    lambda s, k: stratified.sample(jax.tree.map(lambda x: x[0], s), k),
    (spec, P()),
    spec,
  )
  draws = [
    np.asarray(
      sample_local(
        s_many,
        jax.device_put(jax.random.key(1000 + i), NamedSharding(mesh, P())),
      )["obs"][:, 0]
    )
    for i in range(200)
  ]
  arrays["local_draws"] = np.stack(draws)  # [200, BATCH], device-major
  np.savez(f"{out_dir}/replay.npz", **arrays)
  worker_lib.emit({"num_devices": len(jax.devices())})


if __name__ == "__main__":
  main(sys.argv)
