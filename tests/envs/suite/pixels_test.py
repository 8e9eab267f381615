"""Pixel observations: depth levels and frame stacks on hand-made arrays."""

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs.suite import pixels


class PixelsTest(absltest.TestCase):
  def test_depth_levels(self):
    depth = jnp.array([[0.0, 0.5], [1.0, 7.0]])  # metres; 7 m: a miss
    np.testing.assert_array_equal(
      pixels.depth_to_uint8(depth)[..., 0], [[0, 128], [255, 255]]
    )

  def test_stack_order(self):
    a, b, c = (jnp.full((2, 2, 4), v, jnp.uint8) for v in (1, 2, 3))
    stack = pixels.start_stack(a, 3)
    np.testing.assert_array_equal(stack[0, 0], [1] * 12)
    stack = pixels.push(pixels.push(stack, b), c)  # oldest first
    np.testing.assert_array_equal(stack[0, 0], [1] * 4 + [2] * 4 + [3] * 4)
    self.assertEqual(pixels.channels(depth=True, frame_stack=3), 12)
    self.assertEqual(pixels.channels(depth=False, frame_stack=1), 3)


if __name__ == "__main__":
  absltest.main()
