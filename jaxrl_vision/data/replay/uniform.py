"""A uniform circular replay buffer whose contents are part of the state.

Because the buffer is a pytree, it is checkpointed with the rest of the
training state, so a resumed run samples exactly what it would have sampled.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxrl_vision import types


class ReplayState(NamedTuple):
  data: chex.ArrayTree  # every leaf [capacity, ...]
  insert_pos: jax.Array  # () int32, next slot to write
  size: jax.Array  # () int32, filled slots


def make_uniform_replay(
  capacity: int, batch_size: int, min_size: int
) -> types.Buffer:
  """Builds a buffer that samples `batch_size` items uniformly with replacement.

  `can_sample` is true once `min_size` items are stored.
  """
  if not (0 < batch_size and 0 < min_size <= capacity):
    raise ValueError(f"need 0 < batch_size and 0 < {min_size=} <= {capacity=}")

  def init(example: chex.ArrayTree) -> ReplayState:
    data = jax.tree.map(
      lambda x: jnp.zeros((capacity,) + x.shape, x.dtype), example
    )
    return ReplayState(data=data, insert_pos=jnp.int32(0), size=jnp.int32(0))

  def add(state: ReplayState, items: chex.ArrayTree) -> ReplayState:
    num = jax.tree.leaves(items)[0].shape[0]
    if num > capacity:
      raise ValueError(f"adding {num} items to a buffer of capacity {capacity}")
    idx = (state.insert_pos + jnp.arange(num)) % capacity
    data = jax.tree.map(lambda d, x: d.at[idx].set(x), state.data, items)
    return ReplayState(
      data=data,
      insert_pos=(state.insert_pos + num) % capacity,
      size=jnp.minimum(state.size + num, capacity),
    )

  def sample(state: ReplayState, key: jax.Array) -> chex.ArrayTree:
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda d: d[idx], state.data)

  def can_sample(state: ReplayState) -> jax.Array:
    return state.size >= min_size

  return types.Buffer(init=init, add=add, sample=sample, can_sample=can_sample)
