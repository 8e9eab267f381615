"""Tests for RubiksShift-AQ (spec R8): attention, hardening, schedule, budget."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.ops import attention_shift as aq
from jaxrl_vision.ops import rubiks_shift as rs

N, C, T, H, W = 2, 6, 5, 3, 4


def _normal(shape, seed):
  # numpy draws: no PRNG kernel to compile per shape.
  return jnp.asarray(
    np.random.default_rng(seed).normal(size=shape), jnp.float32
  )


def _x(seed=0):
  return _normal((N, C, T, H, W), seed)


def _np_softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


class AttentionWeightsTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # W = [1, 2, 3]: mean 2, unbiased var (1 + 0 + 1)/2 = 1, std 1, so
    # w = softmax([1, 2, 3] / ((1 + 1e-6)·τ)).
    ("tau_1", 1.0, np.array([1.0, 2.0, 3.0]) / (1 + 1e-6)),
    ("tau_2", 2.0, np.array([0.5, 1.0, 1.5]) / (1 + 1e-6)),  # τ divides
    ("tau_half", 0.5, np.array([2.0, 4.0, 6.0]) / (1 + 1e-6)),
  )
  def test_hand_computed(self, tau, scaled_logits):
    weights = self.variant(aq.attention_weights)(
      jnp.array([[1.0, 2.0, 3.0]]), tau
    )
    np.testing.assert_allclose(
      weights[0], _np_softmax(scaled_logits), rtol=1e-6
    )

  def test_std_is_per_channel_and_unbiased(self):
    # Row 2 is row 1 scaled by 10 and offset: the std normalisation and
    # softmax's shift invariance make their weights equal. A biased std
    # (ddof 0) would change row 1's value, checked against numpy.
    logits = jnp.array([[0.0, 1.0, 4.0], [5.0, 15.0, 45.0]])
    weights = aq.attention_weights(logits, 1.0)
    std = np.std([0.0, 1.0, 4.0], ddof=1)
    expected = _np_softmax(np.array([0.0, 1.0, 4.0]) / (std + 1e-6))
    np.testing.assert_allclose(weights[0], expected, rtol=1e-6)
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-5)

  def test_high_temperature_is_near_uniform(self):
    logits = aq.init_attention_logits(jax.random.key(0), (16, 3))
    weights = aq.attention_weights(logits, 1e4)
    np.testing.assert_allclose(weights, 1.0 / 3.0, atol=1e-3)

  def test_low_temperature_gives_one_hot(self):
    # τ = 1e-3: a runner-up tap a normalised gap g = ΔW/std below the top
    # gets exp(−g/τ). Rows in the init range U[1, 1.05]; the tightest is
    # row 3, ΔW = 5e-4, std ≈ 0.0174, g ≈ 0.029 → exp(−29) ≈ 3e-13. (An
    # exact tie stays split: one-hot needs distinct logits.)
    logits = jnp.array(
      [
        [1.0, 1.02, 1.05],
        [1.04, 1.01, 1.0],
        [1.0, 1.03, 1.0305],
        [1.01, 1.049, 1.0],
      ]
    )
    weights = aq.attention_weights(logits, 1e-3)
    one_hot = jax.nn.one_hot(jnp.array([2, 0, 2, 1]), 3)
    np.testing.assert_allclose(weights, one_hot, atol=1e-7)
    chex.assert_trees_all_equal(aq.hard_attention(weights), one_hot)
    # The annealing end point of the schedule is this temperature.
    schedule = aq.temperature_schedule(steps=40)
    np.testing.assert_allclose(
      aq.attention_weights(logits, schedule(40)), one_hot, atol=1e-7
    )

  def test_init_range(self):
    logits = aq.init_attention_logits(jax.random.key(2), (1000, 3))
    self.assertGreaterEqual(float(logits.min()), 1.0)
    self.assertLess(float(logits.max()), 1.05)


class AttentionShiftTest(chex.TestCase):
  @parameterized.parameters(0, 1, 2)
  def test_one_hot_equals_integer_temporal_shift(self, seed):
    logits = _normal((C, 3), seed + 10)
    one_hot = aq.hard_attention(logits)
    shift = aq.shift_from_attention(logits)  # [3, C], rows (t, 0, 0)
    chex.assert_trees_all_equal(
      aq.attention_shift(_x(seed), one_hot),
      rs.rubiks_shift(_x(seed), shift),
    )

  def test_tap_to_shift_mapping(self):
    # Tap 0 reads the previous frame (θ_t = −1), tap 2 the next (θ_t = +1).
    x = jnp.arange(T, dtype=jnp.float32).reshape(1, 1, T, 1, 1)
    taps = {0: [0, 0, 1, 2, 3], 1: [0, 1, 2, 3, 4], 2: [1, 2, 3, 4, 0]}
    for tap, expected in taps.items():
      y = aq.attention_shift(x, jax.nn.one_hot(jnp.array([tap]), 3))
      np.testing.assert_array_equal(y.ravel(), expected)
      self.assertEqual(
        int(aq.temporal_shift_from_attention(jax.nn.one_hot([tap], 3))[0]),
        tap - 1,
      )

  @chex.variants(with_jit=True, without_jit=True)
  def test_soft_equals_sum_of_integer_shifts(self):
    # y = Σ_k w_k · S_{θ_t = k−1} x, each S an integer `rubiks_shift`.
    weights = aq.attention_weights(_normal((C, 3), 3), 0.7)
    expected = 0.0
    for tap in range(3):
      shift = jnp.zeros((3, C)).at[0].set(tap - 1)
      expected += weights[:, tap][None, :, None, None, None] * rs.rubiks_shift(
        _x(), shift
      )
    np.testing.assert_allclose(
      self.variant(aq.attention_shift)(_x(), weights), expected, atol=1e-6
    )

  def test_channels_last_layout(self):
    weights = aq.attention_weights(_normal((C, 3), 4), 1.0)
    x = _x()
    y_last = aq.attention_shift(
      x.transpose(0, 2, 3, 4, 1), weights, layout="NTHWC"
    )
    np.testing.assert_allclose(
      y_last.transpose(0, 4, 1, 2, 3),
      aq.attention_shift(x, weights),
      atol=1e-6,
    )
    with self.assertRaises(ValueError):
      aq.attention_shift(x, weights, layout="NHWC")


class ScheduleTest(parameterized.TestCase):
  @parameterized.named_parameters(
    # τ(s) = 2·(1e-3/2)^(s/40).
    ("start", 0, 2.0),
    ("middle", 20, np.sqrt(2.0 * 1e-3)),  # geometric mean of the ends
    ("quarter", 10, 2.0 * (5e-4) ** 0.25),
    ("end", 40, 1e-3),
    ("clipped", 80, 1e-3),
  )
  def test_exponential(self, step, expected):
    schedule = aq.temperature_schedule(steps=40)
    np.testing.assert_allclose(schedule(step), expected, rtol=1e-5)

  def test_bad_arguments_raise(self):
    with self.assertRaises(ValueError):
      aq.temperature_schedule(steps=0)
    with self.assertRaises(ValueError):
      aq.temperature_schedule(steps=10, final=0.0)


class BudgetTest(chex.TestCase):
  # Layer 1 (2 channels): shifted mass (0.1 + 0.1) and (0.3 + 0.3), mean 0.4.
  # Layer 2 (1 channel): mass 0. Layers count equally: (0.4 + 0)/2 = 0.2.
  LAYER_1 = [[0.1, 0.8, 0.1], [0.3, 0.4, 0.3]]
  LAYER_2 = [[0.0, 1.0, 0.0]]

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    ("budget_quarter", 0.25, 0.05),  # |0.2 − 0.25|
    ("budget_eighth", 0.125, 0.075),  # |0.2 − 0.125|
    ("budget_met", 0.2, 0.0),
  )
  def test_hand_computed(self, budget, expected):
    loss = self.variant(aq.budget_loss, static_argnums=1)(
      [jnp.array(self.LAYER_1), jnp.array(self.LAYER_2)], budget
    )
    np.testing.assert_allclose(loss, expected, atol=1e-7)

  def test_gradient_pushes_mass_toward_budget(self):
    # Above budget, descending L_budget must lower the shifted mass.
    logits = 1.0 + 0.05 * jnp.abs(_normal((8, 3), 5))

    def loss(w):
      return aq.budget_loss([aq.attention_weights(w, 1.0)], 0.0)

    step = logits - 0.01 * jax.grad(loss)(logits)
    self.assertLess(float(loss(step)), float(loss(logits)))

  def test_nonzero_shift_fraction(self):
    # Layer 1 argmax taps 0, 1, 2, 1 → 2 of 4 shifted; layer 2 tap 2 → 1 of
    # 1. Mean over layers: (0.5 + 1)/2 = 0.75.
    layer_1 = jnp.array(
      [[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4]]
    )
    layer_2 = jnp.array([[0.1, 0.1, 0.8]])
    np.testing.assert_allclose(
      aq.nonzero_shift_fraction([layer_1, layer_2]), 0.75
    )

  def test_empty_raises(self):
    with self.assertRaises(ValueError):
      aq.budget_loss([], 0.25)

  def test_find_attention_logits(self):
    params = {
      "b0": {"attention_shift": {"attention": jnp.ones((4, 3))}},
      "b1": {"conv": {"kernel": jnp.ones((1, 1, 4, 4))}},
      "b2": {"attention_shift": {"attention": jnp.zeros((8, 3))}},
    }
    found = aq.find_attention_logits(params)
    self.assertEqual([x.shape for x in found], [(4, 3), (8, 3)])


if __name__ == "__main__":
  absltest.main()
