"""Tests for QT-Opt losses."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.agents.qtopt import losses


def _f32(x):
  return jnp.asarray(x, jnp.float32)


class QtOptTargetTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # target = clip(r + gamma * discount * v, 0, 1)
    ("inside", 0.1, 1.0, 0.5, 0.9, 0.55),  # 0.1 + 0.9 * 0.5
    ("terminal", 0.3, 0.0, 0.9, 0.9, 0.3),  # discount 0: r only
    ("clip_below", -0.01, 1.0, 0.0, 0.9, 0.0),  # -0.01 -> 0
    ("clip_above", 1.0, 1.0, 0.5, 0.9, 1.0),  # 1.45 -> 1
    ("penalty", -0.01, 1.0, 0.3, 0.5, 0.14),  # -0.01 + 0.15
  )
  def test_hand_computed(self, r_t, discount_t, v_t, gamma, expected):
    target_fn = self.variant(losses.qtopt_target, static_argnums=3)
    target = target_fn(_f32(r_t), _f32(discount_t), _f32(v_t), gamma)
    chex.assert_shape(target, ())
    np.testing.assert_allclose(target, expected, rtol=1e-6, atol=1e-7)

  def test_rank_is_checked(self):
    with self.assertRaises(AssertionError):
      losses.qtopt_target(jnp.zeros(2), jnp.zeros(2), jnp.zeros(2), 0.9)


class LowerBoundedTargetTest(chex.TestCase):
  @parameterized.named_parameters(
    # max(target, clip(G, 0, 1))
    ("return_higher", 0.3, 0.5, 0.5),
    ("bellman_higher", 0.6, 0.5, 0.6),
    ("negative_return", 0.2, -0.05, 0.2),
    ("return_clipped", 0.0, 1.2, 1.0),
  )
  def test_hand_computed(self, target, mc_return, expected):
    out = jax.jit(losses.lower_bounded_target)(_f32(target), _f32(mc_return))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


class ConservativePenaltyTest(chex.TestCase):
  def test_hand_computed(self):
    # Q ignores the action: log mean exp(c) - c = 0.
    np.testing.assert_allclose(
      losses.conservative_penalty(_f32(0.7), _f32([0.7, 0.7, 0.7])),
      0.0,
      atol=1e-6,
    )
    # Q (0, log 3): log((1 + 3) / 2) - 1 = log 2 - 1.
    np.testing.assert_allclose(
      losses.conservative_penalty(_f32(1.0), _f32([0.0, np.log(3.0)])),
      np.log(2.0) - 1.0,
      rtol=1e-6,
    )

  def test_gradient_lowers_sampled_and_raises_data(self):
    grad_data, grad_sampled = jax.grad(
      losses.conservative_penalty, argnums=(0, 1)
    )(_f32(1.0), _f32([0.0, np.log(3.0)]))
    np.testing.assert_allclose(grad_data, -1.0)
    np.testing.assert_allclose(grad_sampled, [0.25, 0.75], rtol=1e-6)


class LogLossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # loss = -[t log s + (1 - t) log(1 - s)], s = sigmoid(x)
    ("zero_logit", 0.0, 1.0, np.log(2.0)),  # -log 0.5
    ("zero_logit_half", 0.0, 0.5, np.log(2.0)),
    # s = sigmoid(2) = 0.880797; -(0.25 log s + 0.75 log(1 - s))
    (
      "soft_target",
      2.0,
      0.25,
      -(0.25 * np.log(0.880797) + 0.75 * np.log(0.119203)),
    ),
    ("negative", -1.0, 0.0, -np.log(1.0 - 0.268941)),  # s = sigmoid(-1)
    # |x| = 100: log sigmoid(-100) = -100 - log(1 + e^-100) ~= -100.
    ("large_wrong", 100.0, 0.0, 100.0),
    ("large_right", 100.0, 1.0, 0.0),
    ("very_negative_wrong", -100.0, 1.0, 100.0),
  )
  def test_hand_computed(self, logit, target, expected):
    loss = self.variant(losses.log_loss)(_f32(logit), _f32(target))
    chex.assert_shape(loss, ())
    self.assertTrue(np.isfinite(loss))
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)

  def test_gradient_finite_at_extreme_logits(self):
    # d loss / dx = sigmoid(x) - t.
    grad = jax.vmap(jax.grad(losses.log_loss))(
      _f32([100.0, -100.0, 0.0]), _f32([0.0, 0.0, 0.25])
    )
    np.testing.assert_allclose(grad, [1.0, 0.0, 0.25], atol=1e-6)

  def test_rank_is_checked(self):
    with self.assertRaises(AssertionError):
      losses.log_loss(jnp.zeros(2), jnp.zeros(2))


class L2PenaltyTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.params = {
      "params": {
        "Dense_0": {"kernel": _f32([[1.0, 2.0]]), "bias": _f32([5.0, 5.0])},
        "Conv_0": {"kernel": _f32([3.0])},
        "supernet_0": {"kernel": _f32([7.0]), "arch_logits": _f32([9.0])},
      },
      "batch_stats": {"BatchNorm_0": {"mean": _f32([4.0])}},
    }

  @chex.variants(with_jit=True, without_jit=True)
  def test_kernels_only(self):
    # scale * (1 + 4 + 9 + 49) / 2; biases, arch logits, stats left out.
    l2 = self.variant(lambda p: losses.l2_penalty(p, 0.1))(self.params)
    np.testing.assert_allclose(l2, 0.1 * 63 / 2, rtol=1e-6)

  def test_arch_params_excluded(self):
    # The supernet's kernel is matched by its path and dropped: (1 + 4 + 9) / 2.
    def is_arch_param(path):
      return path[:2] == ("params", "supernet_0")

    l2 = losses.l2_penalty(self.params, 1.0, is_arch_param)
    np.testing.assert_allclose(l2, 7.0, rtol=1e-6)

  def test_path_names(self):
    seen = []
    losses.l2_penalty(self.params, 1.0, lambda path: seen.append(path))
    self.assertIn(("params", "Dense_0", "kernel"), seen)
    self.assertLen(seen, 3)  # only kernels are offered to the predicate


if __name__ == "__main__":
  absltest.main()
