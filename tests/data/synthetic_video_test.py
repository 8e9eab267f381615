"""The R10 clips: shapes, determinism, time reversal, motion, pairing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.data import synthetic_video as sv

B = 16
# One compile per option set, shared by the tests below.
_sample = jax.jit(sv.sample_batch, static_argnums=1, static_argnames="paired")
_plain = jax.jit(
  lambda key, paired: sv.sample_batch(
    key, B, paired=paired, background="black", background_noise=0.0
  ),
  static_argnums=1,
)
_clip = jax.jit(sv.sample_clip)


def _masks(clip):
  """[T, H, W] bool: the square's pixels on a plain black background."""
  return np.asarray(clip).max(axis=-1) > 0


def _centroids(clip):
  """[T, 2] (row, col) centre of the square in each frame."""
  out = []
  for mask in _masks(clip):
    rows, cols = np.nonzero(mask)
    out.append((rows.mean(), cols.mean()))
  return np.array(out)


class RenderTest(absltest.TestCase):
  def test_hand_computed_right_clip(self):
    # size 2, speed 3, start 0, lane 4 on an 8x8 black frame, T = 3:
    # frame t covers rows [4, 6) and columns [0 + 3t, 2 + 3t), i.e.
    # columns {0, 1}, {3, 4}, {6, 7}.
    params = sv.ClipParams(
      size=jnp.int32(2),
      speed=jnp.int32(3),
      start=jnp.int32(0),
      lane=jnp.int32(4),
      color=jnp.array([1.0, 0.5, 0.25]),
      background=jnp.zeros((8, 8, 3)),
    )
    clip = np.asarray(sv.render(params, jnp.int32(sv.RIGHT), 3))
    chex.assert_shape(clip, (3, 8, 8, 3))
    expected = np.zeros((3, 8, 8), bool)
    for t, cols in enumerate(((0, 1), (3, 4), (6, 7))):
      expected[t, 4:6, cols[0] : cols[1] + 1] = True
    np.testing.assert_array_equal(_masks(clip), expected)
    # colour 255 * (1, 0.5, 0.25) rounded: (255, 128, 64)
    np.testing.assert_array_equal(clip[0, 4, 0], [255, 128, 64])
    # down: the same square moving along the column of `lane` (rows move).
    down = _masks(sv.render(params, jnp.int32(sv.DOWN), 3))
    np.testing.assert_array_equal(down, expected.transpose(0, 2, 1))
    up = _masks(sv.render(params, jnp.int32(sv.UP), 3))
    np.testing.assert_array_equal(up, down[::-1])


class SampleBatchTest(parameterized.TestCase):
  def test_shapes_dtypes_ranges_and_balance(self):
    clips, labels = _sample(jax.random.key(0), B)
    chex.assert_shape(clips, (B, 8, 32, 32, 3))
    self.assertEqual(clips.dtype, jnp.uint8)
    self.assertEqual(labels.dtype, jnp.int32)
    np.testing.assert_array_equal(np.bincount(labels, minlength=4), [4] * 4)
    self.assertGreater(int(clips.max()), 0)  # not all black

  def test_deterministic_per_key(self):
    a = jax.device_get(_sample(jax.random.key(3), B))
    b = jax.device_get(_sample(jax.random.key(3), B))
    c = jax.device_get(_sample(jax.random.key(4), B))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    self.assertFalse(np.array_equal(a[0], c[0]))

  @parameterized.named_parameters(("horizontal", 0), ("vertical", 2))
  def test_reversed_class_is_time_reversal(self, forward):
    for seed in range(3):
      key = jax.random.key(seed)
      fwd = np.asarray(_clip(key, forward))
      back = np.asarray(_clip(key, forward + 1))
      np.testing.assert_array_equal(back, fwd[::-1])
      self.assertFalse(np.array_equal(back, fwd))  # it really moves

  def test_motion_direction_per_class(self):
    clips, labels = jax.device_get(_plain(jax.random.key(5), False))
    # (d row, d col) sign per frame for right, left, down, up.
    directions = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}
    for clip, label in zip(clips, labels, strict=True):
      steps = np.diff(_centroids(clip), axis=0)  # [T - 1, 2]
      want = np.array(directions[int(label)])
      np.testing.assert_array_equal(np.sign(steps), np.tile(want, (7, 1)))
      speed = np.abs(steps).sum(axis=1)
      self.assertTrue(np.all(speed == speed[0]), speed)  # constant velocity
      self.assertTrue(1 <= speed[0] <= 3)

  def test_square_stays_whole_in_frame(self):
    clips, _ = jax.device_get(_plain(jax.random.key(6), False))
    for clip in clips:
      areas = _masks(clip).sum(axis=(1, 2))
      side = np.sqrt(areas[0])
      self.assertEqual(side, int(side))  # a full square, never clipped
      self.assertTrue(4 <= side <= 8)
      np.testing.assert_array_equal(areas, areas[0])

  def test_paired_classes_share_frame_multisets(self):
    clips, labels = jax.device_get(_sample(jax.random.key(7), B, paired=True))
    np.testing.assert_array_equal(labels[1::2], labels[0::2] + 1)
    np.testing.assert_array_equal(labels[0::2] % 2, 0)
    np.testing.assert_array_equal(np.bincount(labels // 2), [B // 2] * 2)
    for a, b in zip(clips[0::2], clips[1::2], strict=True):
      np.testing.assert_array_equal(b, a[::-1])
      frames_a = sorted(f.tobytes() for f in a)
      frames_b = sorted(f.tobytes() for f in b)
      self.assertEqual(frames_a, frames_b)
      self.assertNotEqual([f.tobytes() for f in a], [f.tobytes() for f in b])

  def test_square_contrasts_with_background(self):
    params = jax.vmap(sv.sample_params)(jax.random.split(jax.random.key(8), 64))
    bg = params.background[:, 0, 0]  # plain: every pixel the same
    gap = np.abs(np.asarray(params.color - bg))
    circular = np.minimum(gap, 1 - gap)
    self.assertGreaterEqual(circular.min(), 0.25 - 1e-6)

  def test_bad_sizes_raise(self):
    with self.assertRaisesRegex(ValueError, "leave the frame"):
      sv.check_sizes(
        num_frames=8,
        image_size=32,
        min_size=4,
        max_size=12,
        min_speed=1,
        max_speed=3,
      )  # 12 + 3 * 7 = 33 > 32
    with self.assertRaisesRegex(ValueError, "even"):
      sv.sample_batch(jax.random.key(0), 3, paired=True)
    with self.assertRaisesRegex(ValueError, "background"):
      sv.sample_params(jax.random.key(0), background="plaid")


if __name__ == "__main__":
  absltest.main()
