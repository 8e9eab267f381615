"""random_shift: identity at pad 0, hand-computed translations, per-image."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.data import augment


def _images(b=6, h=5, w=7, c=2):
  return jnp.arange(b * h * w * c, dtype=jnp.int32).reshape(b, h, w, c)


class RandomShiftTest(absltest.TestCase):
  def test_pad_zero_is_identity(self):
    x = _images()
    np.testing.assert_array_equal(
      augment.random_shift(jax.random.key(0), x, 0), x
    )

  def test_each_image_is_an_edge_replicated_translation(self):
    x = np.asarray(_images())
    y = np.asarray(augment.random_shift(jax.random.key(1), jnp.asarray(x), 2))
    _, h, w, _ = x.shape
    for b in range(x.shape[0]):
      matches = []
      for dy in range(-2, 3):
        for dx in range(-2, 3):
          rows = np.clip(np.arange(h) + dy, 0, h - 1)
          cols = np.clip(np.arange(w) + dx, 0, w - 1)
          if np.array_equal(y[b], x[b][rows][:, cols]):
            matches.append((dy, dx))
      self.assertLen(matches, 1, f"image {b}")

  def test_shifts_differ_across_images_and_keys(self):
    x = jnp.broadcast_to(_images(1), (32, 5, 7, 2))
    y = np.asarray(augment.random_shift(jax.random.key(2), x, 2))
    self.assertGreater(len({y[i].tobytes() for i in range(32)}), 5)
    z = np.asarray(augment.random_shift(jax.random.key(3), x, 2))
    self.assertFalse(np.array_equal(y, z))

  def test_keeps_dtype_and_shape(self):
    x = jnp.zeros((3, 8, 8, 3), jnp.uint8)
    y = augment.random_shift(jax.random.key(0), x, 4)
    self.assertEqual(y.dtype, jnp.uint8)
    self.assertEqual(y.shape, x.shape)

  def test_bad_input_raises(self):
    with self.assertRaisesRegex(ValueError, "pad must be"):
      augment.random_shift(jax.random.key(0), _images(), -1)
    with self.assertRaisesRegex(ValueError, r"\[B, H, W, C\]"):
      augment.random_shift(jax.random.key(0), jnp.zeros((8, 8, 3)), 2)


if __name__ == "__main__":
  absltest.main()
