"""Q-networks from pixels."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxrl_vision import types
from jaxrl_vision.networks import encoders


class _DiscreteQ(nn.Module):
  num_actions: int
  channels: Sequence[int]
  kernel_sizes: Sequence[int]
  strides: Sequence[int]
  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = encoders.ConvEncoder(self.channels, self.kernel_sizes, self.strides)(
      obs
    )
    return encoders.MLP(self.hidden_sizes, self.num_actions)(x)


def make_discrete_q_network(
  num_actions: int,
  channels: Sequence[int] = (16, 32),
  kernel_sizes: Sequence[int] = (3, 3),
  strides: Sequence[int] = (1, 1),
  hidden_sizes: Sequence[int] = (128,),
) -> types.Network:
  """obs [B, H, W, C] uint8 -> Q-values [B, num_actions]."""
  module = _DiscreteQ(
    num_actions=num_actions,
    channels=tuple(channels),
    kernel_sizes=tuple(kernel_sizes),
    strides=tuple(strides),
    hidden_sizes=tuple(hidden_sizes),
  )
  return types.Network(init=module.init, apply=module.apply)
