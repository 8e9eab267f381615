"""Pixel encoders (flax linen) and the shape arithmetic that validates them."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv_output_hw(
  image_hw: Sequence[int],
  kernel_sizes: Sequence[int],
  strides: Sequence[int],
) -> list[tuple[int, int]]:
  """Spatial size after each VALID conv layer; lets configs fail before jit.

  out = floor((in - kernel) / stride) + 1, which is < 1 when the image is too
  small for the layer.
  """
  h, w = image_hw
  sizes = []
  for k, s in zip(kernel_sizes, strides, strict=True):
    h, w = (h - k) // s + 1, (w - k) // s + 1
    sizes.append((h, w))
  return sizes


class ConvEncoder(nn.Module):
  """uint8 images [B, H, W, C] -> features [B, F] with VALID convs + ReLU."""

  channels: Sequence[int]
  kernel_sizes: Sequence[int]
  strides: Sequence[int]

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = obs.astype(jnp.float32) / 255.0
    for c, k, s in zip(
      self.channels, self.kernel_sizes, self.strides, strict=True
    ):
      x = nn.relu(nn.Conv(c, (k, k), (s, s), padding="VALID")(x))
    return x.reshape(x.shape[0], -1)


class MLP(nn.Module):
  hidden_sizes: Sequence[int]
  output_size: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for h in self.hidden_sizes:
      x = nn.relu(nn.Dense(h)(x))
    return nn.Dense(self.output_size)(x)
