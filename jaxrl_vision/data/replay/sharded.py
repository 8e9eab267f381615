"""A uniform replay sharded over devices that samples exactly as one
unsharded buffer would (spec surreal.md §4; Surreal's replay shards).

Every device holds `capacity / D` slots and adds its own worlds' items,
`add_size` per call, with no communication. Read together, the shards are
the unsharded buffer (`uniform.make_uniform_replay`) that received each
call's items in device order (device 0's, then device 1's, ...): global
slot p holds call p // (D add_size), device (p mod D add_size) // add_size,
item p mod add_size of that device's share. Sampling draws the unsharded
buffer's B global indices from the same key on every device; each device
gathers the ones it holds, a `psum` assembles the batch, and each device
keeps its slice of B / D for its share of the data-parallel update. So the
union of the devices' samples equals, bit for bit, what one buffer of the
whole capacity samples from the same data and key.

The cost is one all-reduce of a batch per sample (B transitions: 50 KB for
512 state transitions of 25 floats; images cost more); the buffer itself
never moves. On 2 CPU devices that halves the sampled transitions/s
(`experiments.benchmarks.surreal_systems`, B4).

With `exact=False` each device instead draws its B / D uniformly from its
own shard with its own key (fold_in of the device index): no
communication; every draw is still uniform over the union (the shards
hold equally many items) and each item is drawn B / S times in
expectation, as unsharded, but the batch is stratified (exactly B / D per
shard) rather than multinomial, so it is not the unsharded sample.
"""

import chex
import jax
import jax.numpy as jnp

from jaxrl_vision import types
from jaxrl_vision.data.replay import uniform


def make_sharded_replay(
  capacity: int,
  batch_size: int,
  min_size: int,
  *,
  add_size: int,
  num_shards: int = 1,
  axis_name: str | None = None,
  exact: bool = True,
) -> types.Buffer:
  """Global `capacity`, `batch_size`, `min_size`; `add_size` items per
  device per `add`. `sample(state, key)` must get the same key on every
  device and returns this device's [batch_size / num_shards] slice.

  With one shard (`axis_name` None) this is `uniform.make_uniform_replay`."""
  if num_shards == 1 or axis_name is None:
    if num_shards != 1:
      raise ValueError(f"{num_shards} shards need an axis_name")
    return uniform.make_uniform_replay(capacity, batch_size, min_size)
  for name, value in (("capacity", capacity), ("batch_size", batch_size)):
    if value % num_shards:
      raise ValueError(f"{name} {value} must split over {num_shards} shards")
  local_capacity = capacity // num_shards
  if local_capacity % add_size:
    raise ValueError(
      f"capacity {capacity} must be a multiple of num_shards x add_size = "
      f"{num_shards * add_size} (whole adds per buffer cycle)"
    )
  local = uniform.make_uniform_replay(
    local_capacity, batch_size // num_shards, -(-min_size // num_shards)
  )
  local_batch = batch_size // num_shards

  def add(state, items: chex.ArrayTree):
    num = jax.tree.leaves(items)[0].shape[0]
    if num != add_size:
      raise ValueError(f"each add takes add_size={add_size} items: got {num}")
    return local.add(state, items)

  def sample_local(state, key: jax.Array) -> chex.ArrayTree:
    return local.sample(
      state, jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    )

  def sample(state, key: jax.Array) -> chex.ArrayTree:
    me = jax.lax.axis_index(axis_name)
    total = state.size * num_shards  # every shard holds as many
    g = jax.random.randint(key, (batch_size,), 0, jnp.maximum(total, 1))
    call, within = g // (add_size * num_shards), g % (add_size * num_shards)
    owner, item = within // add_size, within % add_size
    slot = call * add_size + item
    mine = owner == me

    def gather(x):
      picked = x[slot]
      mask = mine.reshape((-1,) + (1,) * (picked.ndim - 1))
      if picked.dtype == jnp.bool_:
        summed = jax.lax.psum(
          jnp.where(mask, picked, False).astype(jnp.int32), axis_name
        )
        full = summed > 0
      else:
        full = jax.lax.psum(jnp.where(mask, picked, 0), axis_name)
      return jax.lax.dynamic_slice_in_dim(full, me * local_batch, local_batch)

    return jax.tree.map(gather, state.data)

  return types.Buffer(
    init=local.init,
    add=add,
    sample=sample if exact else sample_local,
    can_sample=local.can_sample,
  )
