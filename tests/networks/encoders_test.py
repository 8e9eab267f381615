"""Tests for pixel encoders."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.networks import encoders


class ConvOutputHwTest(parameterized.TestCase):
  @parameterized.named_parameters(
    # out = (in - k) // s + 1 per layer.
    ("one_layer", (10, 5), (3,), (1,), [(8, 3)]),  # (10-3)+1, (5-3)+1
    ("strided", (9, 9), (3,), (2,), [(4, 4)]),  # (9-3)//2+1 = 4
    ("floor", (10, 10), (3,), (2,), [(4, 4)]),  # (10-3)//2+1 = 3+1
    # Nature DQN: 84 -> (84-8)//4+1=20 -> (20-4)//2+1=9 -> (9-3)+1=7.
    (
      "nature_dqn",
      (84, 84),
      (8, 4, 3),
      (4, 2, 1),
      [(20, 20), (9, 9), (7, 7)],
    ),
    ("exact_fit", (3, 3), (3,), (1,), [(1, 1)]),  # (3-3)+1 = 1
    ("too_small", (2, 4), (3,), (1,), [(0, 2)]),  # (2-3)+1 = 0
    # 5 -> 3 -> 1 -> (1-3)+1 = -1: the third layer does not fit.
    ("too_deep", (5, 5), (3, 3, 3), (1, 1, 1), [(3, 3), (1, 1), (-1, -1)]),
    ("no_layers", (6, 7), (), (), []),
  )
  def test_hand_computed(self, image_hw, kernels, strides, expected):
    self.assertEqual(
      encoders.conv_output_hw(image_hw, kernels, strides), expected
    )

  def test_mismatched_lengths_raise(self):
    with self.assertRaises(ValueError):
      encoders.conv_output_hw((10, 10), (3, 3), (1,))


class ConvEncoderTest(chex.TestCase):
  @parameterized.named_parameters(
    # 10x5 -> 8x3 -> 6x1; 6 * 1 * 8 = 48 features.
    ("two_layers", (10, 5), (4, 8), (3, 3), (1, 1), 48),
    # 12x12 -> (12-4)//2+1 = 5x5; 5 * 5 * 3 = 75 features.
    ("strided", (12, 12), (3,), (4,), (2,), 75),
  )
  def test_feature_size_matches_shape_arithmetic(
    self, hw, channels, kernels, strides, num_features
  ):
    (h, w) = encoders.conv_output_hw(hw, kernels, strides)[-1]
    self.assertEqual(h * w * channels[-1], num_features)
    encoder = encoders.ConvEncoder(channels, kernels, strides)
    obs = jnp.zeros((2,) + hw + (3,), jnp.uint8)
    params = encoder.init(jax.random.key(0), obs)
    features = jax.jit(encoder.apply)(params, obs)
    chex.assert_shape(features, (2, num_features))
    chex.assert_tree_all_finite(features)

  def test_matches_reference_conv_on_unit_pixels(self):
    # features = relu(VALID conv(obs / 255) + b), flattened per example.
    encoder = encoders.ConvEncoder((4,), (3,), (2,))
    obs = jax.random.randint(jax.random.key(1), (2, 7, 5, 3), 0, 256).astype(
      jnp.uint8
    )
    params = encoder.init(jax.random.key(0), obs)
    conv = params["params"]["Conv_0"]
    x = jax.lax.conv_general_dilated(
      obs.astype(jnp.float32) / 255.0,
      conv["kernel"],
      window_strides=(2, 2),
      padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # [2, 3, 2, 4]: (7-3)//2+1 = 3, (5-3)//2+1 = 2
    expected = jax.nn.relu(x + conv["bias"]).reshape(2, -1)
    np.testing.assert_allclose(
      encoder.apply(params, obs), expected, rtol=1e-5, atol=1e-6
    )


class MLPTest(chex.TestCase):
  def test_output_shape(self):
    mlp = encoders.MLP(hidden_sizes=(8, 8), output_size=3)
    x = jnp.ones((4, 5))
    params = mlp.init(jax.random.key(0), x)
    chex.assert_shape(mlp.apply(params, x), (4, 3))
    self.assertLen(params["params"], 3)  # two hidden layers + output


if __name__ == "__main__":
  absltest.main()
