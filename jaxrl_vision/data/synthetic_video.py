"""A synthetic temporal-order video task (spec R10), as pure JAX functions.

Each clip is T frames of an H×W RGB image: a square of random size and
colour on a background of another colour (plain, or with static per-pixel
noise) moving at a constant integer velocity along a random row or column.
Four classes:

  0 right   1 left   2 down   3 up

A clip of class `left` is the `right` clip of the same key reversed in time
(and `up` the reversed `down`), so a clip and its pair have identical frame
multisets: a per-frame model with temporal averaging (TSN-like, every
temporal shift 0) sees the same evidence for both and can tell only the
axis (horizontal or vertical). On balanced data it is capped at 50%; on
the paired evaluation set (`sample_batch(..., paired=True)`, each clip next
to its reversal) it scores at most 50% exactly, since it gives a clip and
its reversal the same logits.

Rendering of the "forward" clip (right or down) from `ClipParams`:

  position along the axis at frame t:  start + speed·t   (t = 0..T−1)
  pixel (r, c) is the square's colour iff the square covers it, else the
  background (its colour, plus the static noise).

`start` is drawn so the square stays wholly inside the frame at every t,
and the square's colour differs from the background's by at least 1/4 of
the range in every channel (circular offset), so every clip is solvable.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

CLASSES = ("right", "left", "down", "up")
NUM_CLASSES = len(CLASSES)
RIGHT, LEFT, DOWN, UP = range(NUM_CLASSES)
BACKGROUNDS = ("black", "random")


class ClipParams(NamedTuple):
  """One clip's draw; the label only decides the axis and the direction."""

  size: jax.Array  # () int32, side of the square in pixels
  speed: jax.Array  # () int32, pixels per frame (> 0)
  start: jax.Array  # () int32, leading edge position along the axis at t=0
  lane: jax.Array  # () int32, position across the axis (row or column)
  color: jax.Array  # [3] float32 in [0, 1], the square's colour
  background: jax.Array  # [H, W, 3] float32 in [0, 1], static over time


def sample_params(
  key: jax.Array,
  *,
  num_frames: int = 8,
  image_size: int = 32,
  min_size: int = 4,
  max_size: int = 8,
  min_speed: int = 1,
  max_speed: int = 3,
  background: str = "random",
  background_noise: float = 0.0,
) -> ClipParams:
  """Draws one clip's parameters (independent of its label).

  Args:
    key: PRNGKey.
    num_frames: T.
    image_size: H = W.
    min_size: smallest square side (pixels).
    max_size: largest square side (pixels).
    min_speed: slowest speed (pixels per frame, >= 1).
    max_speed: fastest speed; the square must fit its whole path:
      max_size + max_speed·(T − 1) <= image_size.
    background: "black" (plain black) or "random" (a plain colour drawn
      uniformly per clip). The square's colour is the background's plus a
      per-channel offset U(1/4, 3/4), modulo 1, so it stands out by at
      least 1/4 of the range in every channel.
    background_noise: amplitude a in [0, 1] of the static per-pixel noise
      U(−a/2, a/2) added to the background colour (0: plain background).

  Returns:
    ClipParams.
  """
  check_sizes(
    num_frames=num_frames,
    image_size=image_size,
    min_size=min_size,
    max_size=max_size,
    min_speed=min_speed,
    max_speed=max_speed,
  )
  size_key, speed_key, start_key, lane_key, color_key, bg_key, noise_key = (
    jax.random.split(key, 7)
  )
  size = jax.random.randint(size_key, (), min_size, max_size + 1)
  speed = jax.random.randint(speed_key, (), min_speed, max_speed + 1)
  # The square occupies [pos, pos + size) with pos = start + speed·t; the
  # last position start + speed·(T−1) + size must stay <= image_size.
  last_start = image_size - size - speed * (num_frames - 1)
  start = jax.random.randint(start_key, (), 0, last_start + 1)
  lane = jax.random.randint(lane_key, (), 0, image_size - size + 1)
  if background not in BACKGROUNDS:
    raise ValueError(f"background must be one of {BACKGROUNDS}: {background!r}")
  if background == "random":
    bg_color = jax.random.uniform(bg_key, (3,))
  else:
    bg_color = jnp.zeros((3,), jnp.float32)
  offset = jax.random.uniform(color_key, (3,), minval=0.25, maxval=0.75)
  color = jnp.mod(bg_color + offset, 1.0)  # >= 1/4 away on the circle
  noise = background_noise * jax.random.uniform(
    noise_key, (image_size, image_size, 3), minval=-0.5, maxval=0.5
  )
  background = jnp.clip(bg_color + noise, 0.0, 1.0)
  return ClipParams(
    size=size,
    speed=speed,
    start=start,
    lane=lane,
    color=color,
    background=background,
  )


def check_sizes(
  *,
  num_frames: int,
  image_size: int,
  min_size: int,
  max_size: int,
  min_speed: int,
  max_speed: int,
) -> None:
  """Raises ValueError unless the square's whole path fits in the frame."""
  if num_frames < 2:
    raise ValueError(f"num_frames must be >= 2 to show motion: {num_frames}")
  if not 1 <= min_size <= max_size:
    raise ValueError(f"need 1 <= min_size <= max_size: {min_size}, {max_size}")
  if not 1 <= min_speed <= max_speed:
    raise ValueError(
      f"need 1 <= min_speed <= max_speed: {min_speed}, {max_speed}"
    )
  path = max_size + max_speed * (num_frames - 1)
  if path > image_size:
    raise ValueError(
      f"max_size + max_speed * (num_frames - 1) = {path} exceeds "
      f"image_size {image_size}: the square would leave the frame"
    )


def render(params: ClipParams, label: jax.Array, num_frames: int) -> jax.Array:
  """The clip of `label` for `params`: [T, H, W, 3] uint8.

  Right and down are rendered forward in time; left and up are the same
  frames in reverse order.
  """
  chex.assert_rank(params.background, 3)
  image_size = params.background.shape[0]
  t = jnp.arange(num_frames)
  pos = params.start + params.speed * t  # [T], leading edge along the axis
  coords = jnp.arange(image_size)
  along = (coords[None] >= pos[:, None]) & (
    coords[None] < pos[:, None] + params.size
  )  # [T, L]
  across = (coords >= params.lane) & (coords < params.lane + params.size)
  horizontal = label < DOWN  # right/left move along a row (the W axis)
  mask_h = across[None, :, None] & along[:, None, :]  # [T, H, W]: cols move
  mask_v = along[:, :, None] & across[None, None, :]  # [T, H, W]: rows move
  mask = jnp.where(horizontal, mask_h, mask_v)[..., None]
  frames = jnp.where(mask, params.color, params.background[None])
  reverse = (label == LEFT) | (label == UP)
  frames = jnp.where(reverse, frames[::-1], frames)
  return jnp.round(frames * 255.0).astype(jnp.uint8)


def sample_clip(
  key: jax.Array, label: jax.Array, *, num_frames: int = 8, **kwargs
) -> jax.Array:
  """One clip [T, H, W, 3] uint8 of class `label`; kwargs: `sample_params`.

  The params depend on `key` only, so `sample_clip(key, LEFT)` is
  `sample_clip(key, RIGHT)[::-1]` (and UP is DOWN reversed).
  """
  params = sample_params(key, num_frames=num_frames, **kwargs)
  return render(params, label, num_frames)


def sample_batch(
  key: jax.Array,
  batch_size: int,
  *,
  paired: bool = False,
  num_frames: int = 8,
  **kwargs,
) -> tuple[jax.Array, jax.Array]:
  """A batch of clips and labels; kwargs go to `sample_params`.

  Labels are balanced: a random permutation of `arange(batch_size) % 4`.
  With `paired`, clips come in pairs (2i, 2i+1) drawn from one key, the
  second the first reversed in time (labels 2a and 2a + 1 of axis a); the
  axes are balanced over the pairs.

  Args:
    key: PRNGKey.
    batch_size: B (even when paired).
    paired: draw time-reversed pairs (the evaluation set).
    num_frames: T.
    **kwargs: clip options of `sample_params`.

  Returns:
    (clips [B, T, H, W, 3] uint8, labels [B] int32).
  """
  label_key, clip_key = jax.random.split(key)
  if paired:
    if batch_size % 2:
      raise ValueError(f"paired batches need an even size: {batch_size}")
    num_pairs = batch_size // 2
    axis = jax.random.permutation(label_key, jnp.arange(num_pairs) % 2)
    labels = (2 * axis[:, None] + jnp.arange(2)[None]).reshape(-1)
    keys = jnp.repeat(jax.random.split(clip_key, num_pairs), 2, axis=0)
  else:
    labels = jax.random.permutation(
      label_key, jnp.arange(batch_size) % NUM_CLASSES
    )
    keys = jax.random.split(clip_key, batch_size)
  labels = labels.astype(jnp.int32)
  clips = jax.vmap(
    lambda k, y: sample_clip(k, y, num_frames=num_frames, **kwargs)
  )(keys, labels)
  return clips, labels
