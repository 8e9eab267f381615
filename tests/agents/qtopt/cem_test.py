"""Tests for CEM maximisation and the action encoding."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.agents.qtopt import cem
from jaxrl_vision.envs.manipulation.common import MAX_YAW

TARGET = jnp.array([0.3, -0.5, 0.8, 0.1], jnp.float32)


def concave_score(target, bonus_value=1, bonus=0.5):
  """-||c - target||^2 + bonus * (d == bonus_value): max at (target, value)."""

  def score_fn(continuous, discrete):
    distance = jnp.sum(jnp.square(continuous - target), axis=-1)
    return -distance + bonus * (discrete == bonus_value)

  return score_fn


def maximize(score_fn, key, **config):
  kwargs = dict(
    num_continuous=4, num_discrete=2, iterations=2, num_samples=64, num_elites=6
  )
  kwargs.update(config)
  return cem.cem_maximize(score_fn, key, **kwargs)


class CemMaximizeTest(chex.TestCase):
  @parameterized.named_parameters(("two_values", 2), ("three_values", 3))
  def test_finds_maximum_under_jit_and_vmap(self, num_discrete):
    # One jitted call vmapped over closures (targets and bonus values) and
    # keys; each maximum is bonus 0.5 at distance 0, at (target, value).
    targets = jnp.array(
      [[0.3, -0.5, 0.8, 0.1], [0.5, 0.5, 0.5, 0.5], [-0.5, 0.2, 0.0, -0.9]]
    )
    values = jnp.arange(3, dtype=jnp.int32) % num_discrete

    @jax.jit
    @jax.vmap
    def run(target, value, key):
      score_fn = concave_score(target, value)
      found = maximize(
        score_fn,
        key,
        num_discrete=num_discrete,
        iterations=6,
        num_samples=128,
        num_elites=16,
      )
      continuous, discrete, _ = found
      # The score returned is score_fn's at the returned point.
      return found, score_fn(continuous[None], discrete[None])[0]

    keys = jax.random.split(jax.random.key(0), 3)
    (continuous, discrete, score), rescored = run(targets, values, keys)
    chex.assert_shape(continuous, (3, 4))
    chex.assert_shape([discrete, score], (3,))
    self.assertEqual(discrete.dtype, jnp.int32)
    np.testing.assert_array_equal(discrete, values)
    np.testing.assert_allclose(continuous, targets, atol=0.05)
    self.assertTrue(np.all(score > 0.5 - 4 * 0.05**2))
    np.testing.assert_allclose(score, rescored, rtol=1e-6)

  def test_more_search_gets_closer(self):
    # Mean error over 32 seeds, vmapped over keys.
    score_fn = concave_score(TARGET)
    keys = jax.random.split(jax.random.key(2), 32)

    def error(iterations, num_samples, num_elites):
      run = jax.vmap(
        lambda key: maximize(
          score_fn,
          key,
          iterations=iterations,
          num_samples=num_samples,
          num_elites=num_elites,
        )[0]
      )
      return float(jnp.mean(jnp.linalg.norm(run(keys) - TARGET, axis=-1)))

    default, large = error(2, 64, 6), error(5, 128, 16)
    self.assertLess(large, default)
    self.assertLess(large, 0.05)

  def test_best_over_all_iterations_is_kept(self):
    # The score peaks at 0 and the init std is tiny, so the first iteration's
    # samples sit at about 0 and score about 1; with the refit std floored to
    # 1, later iterations scatter widely and never beat it. Returning only
    # the last iteration's best would lose the peak.
    def score_fn(continuous, discrete):
      del discrete
      return jnp.exp(-100.0 * jnp.sum(jnp.square(continuous), axis=-1))

    continuous, _, score = maximize(
      score_fn,
      jax.random.key(3),
      num_continuous=2,
      iterations=4,
      num_samples=4,
      num_elites=2,
      init_std=1e-4,
      min_std=1.0,
    )
    self.assertGreater(float(score), 0.999)
    np.testing.assert_allclose(continuous, [0.0, 0.0], atol=1e-2)

  def test_samples_stay_in_bounds(self):
    seen = []

    def score_fn(continuous, discrete):
      jax.debug.callback(lambda c, d: seen.append((c, d)), continuous, discrete)
      return jnp.sum(continuous, axis=-1)  # pushes every dim past `high`

    low, high = -0.2, 0.4
    continuous, _, score = jax.jit(
      lambda key: maximize(score_fn, key, low=low, high=high, init_std=2.0)
    )(jax.random.key(4))
    jax.effects_barrier()
    self.assertLen(seen, 2)  # one call per iteration
    for samples, discrete in seen:
      self.assertEqual(samples.shape, (64, 4))
      self.assertTrue(np.all((samples >= low) & (samples <= high)))
      # Sample k has discrete value k % 2.
      np.testing.assert_array_equal(discrete, np.arange(64) % 2)
    # Clipping puts the best sample exactly on the upper bound.
    np.testing.assert_allclose(continuous, [high] * 4)
    np.testing.assert_allclose(score, 4 * high, rtol=1e-6)

  @parameterized.named_parameters(
    ("too_many_elites", dict(num_elites=65)),
    ("too_many_discrete", dict(num_discrete=65)),
    ("no_iterations", dict(iterations=0)),
  )
  def test_bad_config_raises(self, config):
    with self.assertRaises(ValueError):
      maximize(concave_score(TARGET), jax.random.key(0), **config)


class ActionEncodingTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_decode_hand_computed(self):
    continuous = jnp.array([[0.1, -0.2, 1.0, 1.0], [0.0, 0.0, -1.0, -0.5]])
    action = self.variant(cem.decode_action)(continuous, jnp.array([1, 0]))
    chex.assert_shape(action, (2, 7))
    self.assertEqual(action.dtype, jnp.float32)
    # yaw = 1.0 * 0.25 and -0.5 * 0.25; close iff discrete == 1.
    expected = [
      [0.1, -0.2, 1.0, np.sin(0.25), np.cos(0.25), 0.0, 1.0],
      [0.0, 0.0, -1.0, np.sin(-0.125), np.cos(-0.125), 1.0, 0.0],
    ]
    np.testing.assert_allclose(action, expected, rtol=1e-6, atol=1e-7)

  def test_round_trip(self):
    rng = np.random.default_rng(0)
    continuous = rng.uniform(-1, 1, (100, 4)).astype(np.float32)
    discrete = rng.integers(0, 2, (100,)).astype(np.int32)
    action = jax.jit(cem.decode_action)(continuous, discrete)
    # A valid unit (sin, cos) within +-MAX_YAW and a one-hot gripper command.
    np.testing.assert_allclose(
      jnp.hypot(action[:, 3], action[:, 4]), 1.0, rtol=1e-6
    )
    yaw = jnp.arctan2(action[:, 3], action[:, 4])
    self.assertTrue(np.all(np.abs(yaw) <= MAX_YAW + 1e-6))
    np.testing.assert_array_equal(action[:, 5] + action[:, 6], 1.0)
    np.testing.assert_array_equal(action[:, 6], discrete)
    continuous_back, discrete_back = jax.jit(cem.encode_action)(action)
    np.testing.assert_allclose(continuous_back, continuous, atol=1e-5)
    np.testing.assert_array_equal(discrete_back, discrete)
    self.assertEqual(discrete_back.dtype, jnp.int32)

  def test_encode_clips_as_the_env_does(self):
    # T = 2 -> 1; yaw = atan2(1, 0) = pi/2 -> 0.25 -> 1; close 0.7 > open 0.2.
    action = jnp.array([2.0, 0.0, -3.0, 1.0, 0.0, 0.2, 0.7])
    continuous, discrete = cem.encode_action(action)
    np.testing.assert_allclose(continuous, [1.0, 0.0, -1.0, 1.0], rtol=1e-6)
    self.assertEqual(int(discrete), 1)


if __name__ == "__main__":
  absltest.main()
