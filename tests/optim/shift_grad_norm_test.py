"""Tests for shift gradient normalisation and the RubiksNet optimizer (R8)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.optim import shift_grad_norm as sgn


def _update(transform, grads, params=None):
  params = grads if params is None else params
  updates, _ = transform.update(grads, transform.init(params), params)
  return updates


class PerChannelTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # Column (g_t, g_h, g_w) = (2, 3, 6).
    ("lambda_1", 1.0, [2 / 7, 3 / 7, 6 / 7]),  # ‖(2, 3, 6)‖ = 7
    ("lambda_half", 0.5, np.array([1.0, 3.0, 6.0]) / np.sqrt(46.0)),
    ("lambda_2", 2.0, np.array([4.0, 3.0, 6.0]) / np.sqrt(61.0)),
    ("lambda_0", 0.0, [0.0, 3 / np.sqrt(45.0), 6 / np.sqrt(45.0)]),
    ("temporal_only", -1.0, [1.0, 0.0, 0.0]),  # (sign g_t, 0, 0)
  )
  def test_hand_computed(self, lam, expected):
    g = jnp.array([[2.0], [3.0], [6.0]])
    out = self.variant(sgn.normalize_per_channel, static_argnums=1)(g, lam)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-6, atol=1e-7)

  @parameterized.parameters(1.0, 0.3, 8 / 224)
  def test_unit_vectors_with_lambda_scaling(self, lam):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 6)).astype(np.float32)
    g[:, 2] = 0.0  # a channel with no gradient
    out = np.asarray(sgn.normalize_per_channel(jnp.asarray(g), lam))
    norms = np.linalg.norm(out, axis=0)
    np.testing.assert_allclose(np.delete(norms, 2), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[:, 2], 0.0)  # zero stays zero
    # Direction: (λg_t, g_h, g_w) per channel.
    scaled = g * np.array([[lam], [1.0], [1.0]])
    for c in (0, 1, 3, 4, 5):
      np.testing.assert_allclose(
        out[:, c], scaled[:, c] / np.linalg.norm(scaled[:, c]), rtol=1e-5
      )

  def test_row_conventions(self):
    # [2, C] = (h, w): plain per-channel unit vectors, λ unused.
    hw = jnp.array([[3.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(
      sgn.normalize_per_channel(hw, 0.1), [[0.6, 0.0], [0.8, 0.0]]
    )
    # [1, C] = (t): the sign (λ > 0 cancels), zero stays zero.
    t = jnp.array([[-0.2, 5.0, 0.0]])
    np.testing.assert_allclose(
      sgn.normalize_per_channel(t, 0.1), [[-1.0, 1.0, 0.0]]
    )
    # Temporal-only λ < 0 on a spatial leaf: it never moves.
    np.testing.assert_array_equal(sgn.normalize_per_channel(hw, -1.0), 0.0)
    with self.assertRaises(ValueError):
      sgn.normalize_per_channel(jnp.ones((4, 2)), 1.0)


class ThesisTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed(self):
    # g_t = [1, 1], g_h = [2, 0], g_w = [0, 2], λ = 0.5:
    # Z² = ‖g_h‖² + ‖g_w‖² + λ‖g_t‖² = 4 + 4 + 0.5·2 = 9, Z = 3.
    # t: λ·g_t/Z = [1/6, 1/6]; h: [2/3, 0]; w: [0, 2/3].
    g = jnp.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    out = self.variant(sgn.normalize_thesis, static_argnums=1)(g, 0.5)
    np.testing.assert_allclose(
      out, [[1 / 6, 1 / 6], [2 / 3, 0.0], [0.0, 2 / 3]], rtol=1e-6
    )

  def test_layer_norm_not_per_channel(self):
    # λ = 1: the whole layer's vector has unit norm, columns do not.
    g = jnp.array([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    out = sgn.normalize_thesis(g, 1.0)
    np.testing.assert_allclose(out, g / np.sqrt(10.0), rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(out**2), 1.0, rtol=1e-6)

  def test_zero_unchanged_and_negative_lambda_raises(self):
    np.testing.assert_array_equal(
      sgn.normalize_thesis(jnp.zeros((3, 4)), 0.5), 0.0
    )
    with self.assertRaises(ValueError):
      sgn.scale_by_shift_grad_norm("thesis", -1.0)


class TransformTest(chex.TestCase):
  def test_auto_lambda(self):
    self.assertEqual(sgn.temporal_factor_value("auto", 8, 224), 8 / 224)
    self.assertEqual(sgn.temporal_factor_value(0.25), 0.25)
    with self.assertRaises(ValueError):
      sgn.temporal_factor_value("auto")
    with self.assertRaises(ValueError):
      sgn.temporal_factor_value("half")
    # "auto" reaches the normalisation: λ = 8/224 on (1, 0, 0) is (1, 0, 0)
    # but on (28, 1, 0) gives (1, 1, 0)/√2.
    transform = sgn.scale_by_shift_grad_norm(
      "per_channel", "auto", num_frames=8, height=224
    )
    out = _update(transform, {"shift": jnp.array([[28.0], [1.0], [0.0]])})
    np.testing.assert_allclose(
      out["shift"][:, 0], [2**-0.5, 2**-0.5, 0.0], rtol=1e-6
    )

  def test_masked_leaves_only_shift(self):
    grads = {
      "block": {
        "rubiks_shift": {"shift": jnp.array([[0.0], [3.0], [4.0]])},
        "conv": {"kernel": jnp.full((1, 1, 2, 2), 5.0)},
        "bn": {"scale": jnp.array([7.0, 8.0]), "bias": jnp.array([1.0, 2.0])},
      }
    }
    out = _update(sgn.shift_grad_norm(), grads)
    np.testing.assert_allclose(
      out["block"]["rubiks_shift"]["shift"][:, 0], [0, 0.6, 0.8]
    )
    chex.assert_trees_all_equal(
      {k: v for k, v in out["block"].items() if k != "rubiks_shift"},
      {k: v for k, v in grads["block"].items() if k != "rubiks_shift"},
    )

  def test_unknown_variant_raises(self):
    with self.assertRaises(ValueError):
      sgn.scale_by_shift_grad_norm("global")


class OptimizerTest(chex.TestCase):
  PARAMS = {
    "stem": {"kernel": jnp.full((3, 3, 1, 2), 2.0)},
    "layer0_0": {
      "bn1": {"scale": jnp.array([1.5, 1.5]), "bias": jnp.array([0.5, 0.5])},
      "rubiks_shift": {"shift": jnp.full((3, 2), 0.7)},
      "attention_shift": {"attention": jnp.full((2, 3), 1.2)},
    },
    "fc": {
      "kernel": jnp.full((2, 3), -1.0),
      "bias": jnp.array([0.1, 0.2, 0.3]),
    },
  }

  def test_labels(self):
    labels = sgn.param_labels(self.PARAMS)
    self.assertEqual(labels["stem"]["kernel"], "weights")
    self.assertEqual(labels["fc"]["kernel"], "weights")
    self.assertEqual(labels["fc"]["bias"], "no_decay")
    self.assertEqual(labels["layer0_0"]["bn1"]["scale"], "no_decay")
    self.assertEqual(labels["layer0_0"]["rubiks_shift"]["shift"], "shift")
    self.assertEqual(
      labels["layer0_0"]["attention_shift"]["attention"], "attention"
    )

  def test_weight_decay_only_on_weights(self):
    # Zero gradients: only the decay term moves anything.
    # update = −lr·wd·θ = −0.5·0.1·θ on kernels; everything else 0.
    opt = sgn.make_rubiksnet_optimizer(0.5, weight_decay=0.1)
    zeros = jax.tree.map(jnp.zeros_like, self.PARAMS)
    out = _update(opt, zeros, self.PARAMS)
    np.testing.assert_allclose(out["stem"]["kernel"], -0.05 * 2.0)
    np.testing.assert_allclose(out["fc"]["kernel"], -0.05 * -1.0)
    for leaf in (
      out["fc"]["bias"],
      out["layer0_0"]["bn1"]["scale"],
      out["layer0_0"]["bn1"]["bias"],
      out["layer0_0"]["rubiks_shift"]["shift"],
      out["layer0_0"]["attention_shift"]["attention"],
    ):
      np.testing.assert_array_equal(leaf, 0.0)

  @parameterized.parameters(0.0, 0.9)  # the first step ignores momentum
  def test_shift_lr_multiplier_and_normalisation(self, momentum):
    # Shift gradient columns (0, 3, 4) and (1, 0, 0) normalise to
    # (0, .6, .8) and (1, 0, 0); update = −lr·0.01·that = −0.02·that.
    opt = sgn.make_rubiksnet_optimizer(2.0, momentum=momentum, weight_decay=0.1)
    grads = jax.tree.map(jnp.ones_like, self.PARAMS)
    grads["layer0_0"]["rubiks_shift"]["shift"] = jnp.array(
      [[0.0, 1.0], [3.0, 0.0], [4.0, 0.0]]
    )
    out = _update(opt, grads, self.PARAMS)
    np.testing.assert_allclose(
      out["layer0_0"]["rubiks_shift"]["shift"],
      -0.02 * np.array([[0.0, 1.0], [0.6, 0.0], [0.8, 0.0]]),
      rtol=1e-6,
    )
    # Weights: −lr·(g + wd·θ) = −2·(1 + 0.1·2); BN/bias/attention: −lr·g.
    np.testing.assert_allclose(out["stem"]["kernel"], -2.0 * 1.2, rtol=1e-6)
    np.testing.assert_allclose(out["fc"]["bias"], -2.0)
    np.testing.assert_allclose(out["layer0_0"]["bn1"]["scale"], -2.0)
    np.testing.assert_allclose(
      out["layer0_0"]["attention_shift"]["attention"], -2.0
    )

  def test_schedule_and_no_grad_norm(self):
    # A schedule is scaled by the multiplier; grad_norm=None leaves g raw.
    opt = sgn.make_rubiksnet_optimizer(
      lambda count: 4.0 / (1.0 + count), grad_norm=None, momentum=0.0
    )
    grads = jax.tree.map(jnp.ones_like, self.PARAMS)
    out = _update(opt, grads, self.PARAMS)
    np.testing.assert_allclose(
      out["layer0_0"]["rubiks_shift"]["shift"], -0.04, rtol=1e-6
    )

  def test_thesis_variant_in_optimizer(self):
    opt = sgn.make_rubiksnet_optimizer(
      1.0, grad_norm="thesis", temporal_factor=0.5, momentum=0.0
    )
    grads = jax.tree.map(jnp.zeros_like, self.PARAMS)
    grads["layer0_0"]["rubiks_shift"]["shift"] = jnp.array(
      [[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]]
    )
    out = _update(opt, grads, self.PARAMS)
    np.testing.assert_allclose(  # −0.01 × ThesisTest's hand-computed case
      out["layer0_0"]["rubiks_shift"]["shift"],
      -0.01 * np.array([[1 / 6, 1 / 6], [2 / 3, 0.0], [0.0, 2 / 3]]),
      rtol=1e-6,
    )

  def test_jit_step(self):
    opt = sgn.make_rubiksnet_optimizer(0.1)
    state = opt.init(self.PARAMS)
    grads = jax.tree.map(jnp.ones_like, self.PARAMS)
    step = jax.jit(opt.update)
    updates, state = step(grads, state, self.PARAMS)
    updates, state = step(grads, state, self.PARAMS)
    chex.assert_tree_all_finite(updates)
    params = optax.apply_updates(self.PARAMS, updates)
    chex.assert_trees_all_equal_shapes(params, self.PARAMS)


if __name__ == "__main__":
  absltest.main()
