"""Surreal-DDPG's pieces against NumPy references and hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.agents.ddpg import losses


def _n_step_reference(rewards, terminated, ends, gamma, n):
  """Loops: from each position, sum up to n rewards, stopping after the
  first step that ends the episode; bootstrap gamma^m unless it
  terminated."""
  out = []
  for t in range(len(rewards) - n + 1):
    ret, m = 0.0, 0
    for i in range(n):
      ret += gamma**i * rewards[t + i]
      m = i + 1
      if ends[t + i]:
        break
    last = t + m - 1
    out.append((ret, 0.0 if terminated[last] else gamma**m, last))
  return [np.array(x) for x in zip(*out, strict=True)]


class NStepTest(parameterized.TestCase):
  @parameterized.product(
    n=(1, 3, 6), end_at=(None, 0, 4, 9), terminal=(True, False)
  )
  def test_matches_numpy_with_an_end_inside(self, n, end_at, terminal):
    rng = np.random.default_rng(n)
    rewards = rng.normal(size=10).astype(np.float32)
    ends = np.zeros(10, bool)
    if end_at is not None:
      ends[end_at] = True
      ends[(end_at + 5) % 10] = True  # a second, shorter episode
    terminated = ends & terminal
    got = losses.n_step_targets(
      jnp.asarray(rewards), jnp.asarray(terminated), jnp.asarray(ends), 0.9, n
    )
    want = _n_step_reference(rewards, terminated, ends, 0.9, n)
    for g, w in zip(got, want, strict=True):
      np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)

  def test_by_hand(self):
    # n = 3, gamma 0.5; the episode terminates at step 1, the next one is
    # truncated at step 3.
    r = jnp.array([1.0, 2.0, 4.0, 8.0, 16.0])
    ends = jnp.array([False, True, False, True, False])
    term = jnp.array([False, True, False, False, False])
    ret, disc, last = losses.n_step_targets(r, term, ends, 0.5, 3)
    np.testing.assert_allclose(ret, [1 + 1, 2, 4 + 4])
    np.testing.assert_allclose(disc, [0.0, 0.0, 0.25])
    np.testing.assert_array_equal(last, [1, 1, 3])

  def test_rejects_a_horizon_past_the_window(self):
    with self.assertRaisesRegex(ValueError, "n <= window length 4"):
      losses.n_step_targets(
        jnp.zeros(4), jnp.zeros(4, bool), jnp.zeros(4, bool), 0.9, 5
      )


class NoiseTest(absltest.TestCase):
  def test_actor_sigmas(self):
    np.testing.assert_allclose(
      losses.actor_sigmas(4, 2.0), [0.0, 0.5, 1.0, 1.5]
    )
    np.testing.assert_allclose(losses.actor_sigmas(1, 1.5), [0.5])

  def test_ou_statistics(self):
    # From 0, with theta dt << 1 the process is nearly a random walk: after
    # k steps its variance is sigma^2 dt (1 - (1 - theta dt)^(2k)) /
    # (1 - (1 - theta dt)^2); with mu != 0 its mean moves to mu as
    # 1 - (1 - theta dt)^k. theta and dt large enough to see both.
    theta, dt, sigma, mu, k = 2.0, 0.05, 1.5, 0.7, 30
    x = jnp.zeros((20000, 1))
    step = jax.jit(
      lambda x, key: losses.ou_step(x, key, sigma, theta=theta, dt=dt, mu=mu)
    )
    for key in jax.random.split(jax.random.key(0), k):
      x = step(x, key)
    a = 1 - theta * dt
    want_mean = mu * (1 - a**k)
    want_var = sigma**2 * dt * (1 - a ** (2 * k)) / (1 - a**2)
    self.assertAlmostEqual(float(x.mean()), want_mean, delta=0.02)
    self.assertAlmostEqual(float(x.var()), want_var, delta=0.03 * want_var)

  def test_ou_noise_scales_per_actor(self):
    sig = losses.actor_sigmas(3, 3.0)[:, None]  # 0, 1, 2
    x = losses.ou_step(jnp.zeros((3, 4)), jax.random.key(1), sig)
    np.testing.assert_array_equal(x[0], 0.0)  # the noiseless actor
    unit = np.sqrt(losses.OU_DT) * jax.random.normal(jax.random.key(1), (3, 4))
    np.testing.assert_allclose(x, sig * unit, rtol=1e-6)


if __name__ == "__main__":
  absltest.main()
