"""Surreal-PPO's rule against NumPy references and hand-computed cases."""

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.agents.ppo import losses


def _gae_reference(
  rewards, values, next_values, terminated, ends, gamma, lam, h
):
  """Loops over positions and window steps; an episode end stops the
  window; a truncation bootstraps from its final observation's value."""
  adv, ret = [], []
  for j in range(len(rewards) - h + 1):
    a = r = 0.0
    for k in range(h):
      t = j + k
      boot = 0.0 if terminated[t] else gamma * next_values[t]
      a += (gamma * lam) ** k * (rewards[t] + boot - values[t])
      r += gamma**k * rewards[t]
      if ends[t] or k == h - 1:
        r += gamma**k * boot
        break
    adv.append(a)
    ret.append(r)
  return np.array(adv), np.array(ret)


class TruncatedGaeTest(parameterized.TestCase):
  @parameterized.product(end_at=(None, 3, 0, 7), terminal=(True, False))
  def test_matches_numpy_with_an_end_inside(self, end_at, terminal):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=8).astype(np.float32)
    values = rng.normal(size=9).astype(np.float32)
    next_values = values[1:].copy()
    ends = np.zeros(8, bool)
    if end_at is not None:
      ends[end_at] = True
      next_values[end_at] = 5.0  # the final observation's value
    terminated = ends & terminal
    adv, ret = losses.truncated_gae(
      *map(jnp.asarray, (rewards, values[:-1], next_values, terminated, ends)),
      gamma=0.9,
      lam=0.8,
      horizon=3,
    )
    want_adv, want_ret = _gae_reference(
      rewards, values[:-1], next_values, terminated, ends, 0.9, 0.8, 3
    )
    self.assertEqual(adv.shape, (6,))
    np.testing.assert_allclose(adv, want_adv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, want_ret, rtol=1e-5, atol=1e-6)

  def test_nothing_leaks_back_across_an_episode_end(self):
    # The next episode's rewards and values cannot move the finished
    # episode's advantages or returns.
    rng = np.random.default_rng(1)
    rewards, values = rng.normal(size=(2, 10)).astype(np.float32)
    next_values = np.append(values[1:], 0.3).astype(np.float32)
    ends = np.zeros(10, bool)
    ends[4] = True
    args = dict(gamma=0.99, lam=0.95, horizon=5)
    before = losses.truncated_gae(
      rewards, values, next_values, ends & False, ends, **args
    )
    rewards[5:] += 100.0
    values[5:] -= 50.0
    next_values[5:] += 7.0
    after = losses.truncated_gae(
      rewards, values, next_values, ends & False, ends, **args
    )
    for b, a in zip(before, after, strict=True):
      np.testing.assert_allclose(b[:5], a[:5], rtol=1e-6)
      self.assertFalse(np.allclose(b[5:], a[5:]))

  def test_reference_shape_25_steps_horizon_5(self):
    # Without a done: the spec's closed forms, 21 positions.
    rewards = jnp.arange(25, dtype=jnp.float32) / 10
    values = jnp.linspace(0.0, 1.0, 26)
    no = jnp.zeros(25, bool)
    adv, ret = losses.truncated_gae(
      rewards, values[:-1], values[1:], no, no, gamma=0.995, lam=0.97, horizon=5
    )
    self.assertEqual(adv.shape, (21,))
    j = 4
    deltas = [
      float(rewards[t] + 0.995 * values[t + 1] - values[t])
      for t in range(j, j + 5)
    ]
    self.assertAlmostEqual(
      float(adv[j]),
      sum((0.995 * 0.97) ** k * d for k, d in enumerate(deltas)),
      places=5,
    )
    self.assertAlmostEqual(
      float(ret[j]),
      sum(0.995**k * float(rewards[j + k]) for k in range(5))
      + 0.995**5 * float(values[j + 5]),
      places=5,
    )

  def test_bad_horizon(self):
    with self.assertRaisesRegex(ValueError, "horizon"):
      z = jnp.zeros(4)
      losses.truncated_gae(z, z, z, z, z, gamma=1, lam=1, horizon=5)


class BetaTest(parameterized.TestCase):
  @parameterized.parameters(
    (1.0, 0.031, 1.5),  # KL > 2 x 0.015: up
    (1.0, 0.030, 1.0),  # at 2 x target: unchanged
    (1.0, 0.007, 1.0 / 1.5),  # KL < 0.5 x target: down
    (1.0, 0.0075, 1.0),  # at 0.5 x target: unchanged
    (34.0, 1.0, 51.0),  # range checked before scaling: one step past 35
    (35.0, 1.0, 35.0),  # at the maximum: no further
    (1.0 / 35.0, 0.0, 1.0 / 35.0),  # at the minimum
  )
  def test_rule_and_range(self, beta, mean_kl, want):
    got = losses.adapt_beta(jnp.float32(beta), jnp.float32(mean_kl))
    self.assertAlmostEqual(float(got), want, places=5)

  def test_early_stop_at_four_targets(self):
    self.assertFalse(bool(losses.stop_early(jnp.float32(0.06))))
    self.assertTrue(bool(losses.stop_early(jnp.float32(0.0601))))


class ActorLossTest(absltest.TestCase):
  def _dist(self, mean, std):
    return losses.Gaussian(jnp.asarray(mean), jnp.asarray(std))

  def test_kl_and_log_prob_by_hand(self):
    p = self._dist([[0.0]], [[1.0]])
    q = self._dist([[1.0]], [[2.0]])
    # log 2 + (1 + 1) / 8 - 1/2
    self.assertAlmostEqual(float(losses.kl(p, q)[0]), np.log(2) - 0.25, 6)
    self.assertAlmostEqual(float(losses.kl(p, p)[0]), 0.0, 6)
    self.assertAlmostEqual(
      float(losses.log_prob(p, jnp.array([[1.0]]))[0]),
      -0.5 - 0.5 * np.log(2 * np.pi),
      6,
    )

  def test_surrogate_penalty_and_hinge(self):
    actions = jnp.zeros((2, 1))
    adv = jnp.array([1.0, -1.0])
    pi = self._dist([[0.0], [0.0]], [[1.0], [1.0]])
    p = np.exp(-0.5 * np.log(2 * np.pi))  # density at the mean
    # Behaviour = policy: ratio 1; reference = policy: no KL.
    loss, m = losses.actor_loss(pi, pi, pi, actions, adv, jnp.float32(2.0))
    self.assertAlmostEqual(float(loss), 0.0, 6)
    self.assertAlmostEqual(float(m["ratio"]), 1.0, 6)
    # A reference 0.1 away in mean: KL = 0.005 per example, under the
    # hinge; penalty beta x KL.
    ref = self._dist([[0.1], [0.1]], [[1.0], [1.0]])
    loss, m = losses.actor_loss(pi, pi, ref, actions, adv, jnp.float32(2.0))
    self.assertAlmostEqual(float(m["kl"]), 0.005, 6)
    self.assertAlmostEqual(float(loss), 2.0 * 0.005, 6)
    # 0.3 away: KL 0.045 > 0.03, hinge 250 x 0.015^2 added.
    ref = self._dist([[0.3], [0.3]], [[1.0], [1.0]])
    loss, _ = losses.actor_loss(pi, pi, ref, actions, adv, jnp.float32(1.0))
    self.assertAlmostEqual(float(loss), 0.045 + 250 * 0.015**2, 5)
    # A tiny behaviour density: the denominator floors at 0.01.
    far = self._dist([[50.0], [50.0]], [[1.0], [1.0]])
    adv1 = jnp.array([1.0, 1.0])
    loss, m = losses.actor_loss(pi, far, pi, actions, adv1, jnp.float32(0.0))
    self.assertAlmostEqual(float(m["ratio"]), p / 0.01, 4)


class ScheduleTest(absltest.TestCase):
  def test_staircase(self):
    step = (1e-4 - 5e-5) / 12
    for publishes, want in (
      (0, 1e-4),
      (99, 1e-4),
      (100, 1e-4 - step),
      (1150, 1e-4 - 11 * step),
      (1200, 5e-5),
      (5000, 5e-5),
    ):
      self.assertAlmostEqual(
        float(losses.lr_staircase(jnp.float32(publishes))), want, 10
      )


class ExplainedVarianceTest(absltest.TestCase):
  def test_by_hand(self):
    ret = jnp.array([1.0, 2.0, 3.0, 4.0])  # var 1.25
    ev = losses.explained_variance
    self.assertAlmostEqual(float(ev(ret, ret)), 1.0)
    self.assertAlmostEqual(float(ev(jnp.full(4, 9.0), ret)), 0.0)
    # residuals (0, 0, 0, 1): var 0.1875 -> 1 - 0.1875 / 1.25
    v = ret.at[3].add(-1.0)
    self.assertAlmostEqual(float(ev(v, ret)), 0.85, places=6)


class ZFilterTest(absltest.TestCase):
  def test_stats_and_clip(self):
    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    b = rng.normal(3.0, 2.0, size=(30, 4)).astype(np.float32)
    stats = losses.zfilter_init(4)
    stats = losses.zfilter_update(stats, jnp.asarray(a))
    stats = losses.zfilter_update(stats, jnp.asarray(b))
    both = np.concatenate([a, b])
    x = both[:3]
    want = np.clip((x - both.mean(0)) / both.std(0), -5, 5)
    got = losses.zfilter_apply(stats, jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    far = losses.zfilter_apply(stats, jnp.full((4,), 1e3))
    np.testing.assert_allclose(far, 5.0)


if __name__ == "__main__":
  absltest.main()
