"""Surreal-ES: centred ranks and antithetic pairs by hand, the gradient
estimate on a linear objective, a quadratic it must climb, observation
normalisation and discretised actions."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.agents.es import agent as es


class RanksTest(absltest.TestCase):
  def test_centered_ranks_by_hand(self):
    r = es.centered_ranks(jnp.array([3.0, -1.0, 10.0, 0.0, 5.0]))
    np.testing.assert_allclose(r, [0.0, -0.5, 0.5, -0.25, 0.25])
    # Invariant to any increasing transform of the returns.
    x = jnp.array([0.3, 2.0, -7.0, 1.0])
    np.testing.assert_allclose(
      es.centered_ranks(x), es.centered_ranks(jnp.exp(x) * 4)
    )


class ESTest(absltest.TestCase):
  def _es(self, **kw):
    return es.make_es(2, hidden_sizes=(4,), **kw)

  def test_antithetic_pairs_from_keys(self):
    agent = self._es(population_size=6, sigma=0.1)
    state = agent.init(jax.random.key(0), 3)
    key = jax.random.key(1)
    members = agent.ask(state, key)
    for leaf, theta in zip(
      jax.tree.leaves(members), jax.tree.leaves(state.params), strict=True
    ):
      self.assertEqual(leaf.shape, (6,) + theta.shape)
      # Members 2i and 2i + 1 mirror each other about theta.
      np.testing.assert_allclose(
        (leaf[0::2] + leaf[1::2]) / 2,
        jnp.broadcast_to(theta, leaf[0::2].shape),
        atol=1e-6,
      )
      self.assertGreater(float(jnp.abs(leaf[0] - leaf[2]).max()), 0.0)
    # The same key regenerates the same population; another does not.
    again = agent.ask(state, key)
    other = agent.ask(state, jax.random.key(2))
    a, b, c = (jax.tree.leaves(m)[0] for m in (members, again, other))
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.allclose(a, c))

  def test_gradient_on_a_linear_objective(self):
    # F = w . theta over one leaf; with many pairs g follows w (ranks keep
    # the direction of a linear objective); the reversed objective flips it.
    agent = es.make_es(1, population_size=2000, sigma=0.01, hidden_sizes=())
    state = agent.init(jax.random.key(0), 5)
    w = jax.random.normal(jax.random.key(3), (5, 1))
    key = jax.random.key(4)
    members = agent.ask(state, key)
    returns = jnp.einsum("pij,ij->p", members["Dense_0"]["kernel"], w)
    g = agent.gradient(state.params, key, returns)["Dense_0"]["kernel"].ravel()
    cos = float(g @ w.ravel() / (jnp.linalg.norm(g) * jnp.linalg.norm(w)))
    self.assertGreater(cos, 0.95)
    back = agent.gradient(state.params, key, -returns)["Dense_0"]["kernel"]
    np.testing.assert_allclose(back.ravel(), -g, rtol=1e-5)
    # tell steps theta along g (Adam, no decay: every coordinate's sign).
    agent = es.make_es(
      1, population_size=2000, sigma=0.01, l2=0.0, hidden_sizes=()
    )
    new, _ = agent.tell(state, key, returns, es.obs_stats(jnp.zeros((1, 5))))
    step = new.params["Dense_0"]["kernel"] - state.params["Dense_0"]["kernel"]
    np.testing.assert_array_equal(np.sign(step.ravel()), np.sign(g))

  def test_climbs_a_quadratic(self):
    agent = es.make_es(
      1,
      population_size=64,
      sigma=0.05,
      learning_rate=0.05,
      l2=0.0,
      hidden_sizes=(),
    )
    state = agent.init(jax.random.key(0), 4)
    target = jnp.array([[0.5], [-1.0], [0.25], [2.0]])
    none = es.obs_stats(jnp.zeros((0, 4)))

    @jax.jit
    def iteration(state, key):
      members = agent.ask(state, key)
      k = members["Dense_0"]["kernel"]
      returns = -jnp.sum((k - target) ** 2, axis=(1, 2))
      return agent.tell(state, key, returns, none)

    start = float(jnp.sum((state.params["Dense_0"]["kernel"] - target) ** 2))
    for key in jax.random.split(jax.random.key(5), 200):
      state, _ = iteration(state, key)
    end = float(jnp.sum((state.params["Dense_0"]["kernel"] - target) ** 2))
    self.assertLess(end, 0.01 * start)

  def test_observation_normalisation(self):
    obs = jnp.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    stats = es.obs_stats(obs, mask=jnp.array([True, True, False]))
    self.assertEqual(float(stats.count), 2.0)
    z = es.normalize(stats, jnp.array([[3.0, 10.0], [100.0, 10.0]]))
    np.testing.assert_allclose(z[0], [1.0, 0.0], atol=1e-6)  # mean 2, std 1
    self.assertEqual(float(z[1, 0]), es.OBS_CLIP)
    empty = es.obs_stats(jnp.zeros((0, 2)))
    np.testing.assert_allclose(es.normalize(empty, obs), jnp.clip(obs, -5, 5))

  def test_discretised_actions(self):
    agent = es.make_es(2, action_bins=5, hidden_sizes=())
    state = agent.init(jax.random.key(0), 3)
    params = jax.tree.map(jnp.zeros_like, state.params)
    # Scores [dim 0: bin 4 highest, dim 1: bin 1 highest].
    bias = jnp.zeros((10,)).at[4].set(1.0).at[5 + 1].set(1.0)
    params["Dense_0"]["bias"] = bias
    a = agent.act(params, state.obs_stats, jnp.zeros((1, 3)))
    np.testing.assert_allclose(a, [[1.0, -0.5]])
    noisy = agent.act(
      params, state.obs_stats, jnp.zeros((1, 3)), jax.random.key(1)
    )
    self.assertLess(float(jnp.abs(noisy - a).max()), 0.05)
    with self.assertRaisesRegex(ValueError, "even"):
      es.make_es(2, population_size=5)


if __name__ == "__main__":
  absltest.main()
