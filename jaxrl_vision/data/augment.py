"""Image augmentation for learners, as pure functions of (key, images).

`random_shift` is DrQ's augmentation (Kostrikov et al., 2020): pad each
image by `pad` pixels replicating its border, then crop a random window of
the original size. Every image of the batch gets its own shift, drawn
uniformly from {-pad, ..., pad}^2, which is the same as translating the
content by that many pixels with edge replication.
"""

import jax
import jax.numpy as jnp


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
  """Independent random translations of a batch of images.

  Args:
    key: PRNG key.
    images: [B, H, W, C], any dtype (uint8 stays uint8).
    pad: the largest shift in pixels along each axis; 0 returns `images`.

  Returns:
    Images like `images`; out[b, i, j] = images[b, clip(i + dy_b, 0, H-1),
    clip(j + dx_b, 0, W-1)] with (dy_b, dx_b) uniform in [-pad, pad]^2.
  """
  if pad < 0:
    raise ValueError(f"pad must be >= 0, got {pad}")
  if pad == 0:
    return images
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
  b, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "edge")
  corners = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

  def crop(image, corner):
    return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, corners)
