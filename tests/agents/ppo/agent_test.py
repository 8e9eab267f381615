"""Surreal-PPO's learner iteration: early stop, publish and beta, the
LSTM reset at episode starts."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.agents.ppo import agent as ppo
from jaxrl_vision.networks.policies import Gaussian

B, T, A, D = 4, 8, 3, 5


def _segments(key, starts=None):
  ks = jax.random.split(key, 4)
  obs = {"proprio": jax.random.normal(ks[0], (B, T, D))}
  actions = jax.random.normal(ks[1], (B, T, A)) * 0.3
  if starts is None:
    starts = jnp.zeros((B, T), bool).at[:, 0].set(True)
  return ppo.Segments(
    obs=obs,
    final_obs={"proprio": jnp.roll(obs["proprio"], -1, axis=1)},
    actions=actions,
    rewards=jax.random.normal(ks[2], (B, T)),
    terminated=jnp.zeros((B, T), bool),
    ends=jnp.zeros((B, T), bool),
    starts=starts,
    behaviour=Gaussian(jnp.zeros((B, T, A)), jnp.full((B, T, A), 0.4)),
    carry=(jnp.zeros((B, 6)), jnp.zeros((B, 6))),
  )


def _agent(**kwargs):
  args = dict(lstm_size=6, hidden_sizes=(16,), horizon=3, learning_rate=1e-3)
  return ppo.make_ppo(A, **dict(args, **kwargs))


class LearnTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.seg = _segments(jax.random.key(1))
    self.obs = {"proprio": jnp.zeros((1, D))}

  def test_early_stop_after_the_kl_passes_four_targets(self):
    # KL(ref || pi) is 0 before the first step: with a tiny target the
    # first epoch runs and the second stops; with a loose one all run.
    for target, want in ((1e-9, 1.0), (10.0, 5.0)):
      agent = _agent(kl_target=target, actor_epochs=5)
      state = agent.init(jax.random.key(0), self.obs)
      _, metrics = jax.jit(agent.learn)(state, self.seg)
      self.assertEqual(float(metrics["actor_epochs"]), want, target)

  def test_publish_every_n_segments_adapts_beta(self):
    # publish_every = 2 minibatches of B: the reference stays, then moves.
    agent = _agent(publish_every=2 * B, kl_target=1e-6)
    state = agent.init(jax.random.key(0), self.obs)
    learn = jax.jit(agent.learn)
    state, _ = learn(state, self.seg)
    same = jax.tree.map(np.array_equal, state.reference, state.params)
    self.assertFalse(all(jax.tree.leaves(same)))
    self.assertEqual(int(state.publishes), 0)
    self.assertEqual(float(state.beta), 1.0)
    state, _ = learn(state, self.seg)
    same = jax.tree.map(np.array_equal, state.reference, state.params)
    self.assertTrue(all(jax.tree.leaves(same)))
    self.assertEqual(int(state.publishes), 1)
    self.assertEqual(int(state.consumed), 0)
    self.assertAlmostEqual(float(state.beta), 1.5)  # KL >> 2 x 1e-6
    # The z-filter counted every observation and was published too.
    self.assertAlmostEqual(float(state.zfilter.count), 2 * B * T, places=3)
    self.assertEqual(
      float(state.reference_zfilter.count), float(state.zfilter.count)
    )

  def test_warm_zfilter_starts_from_given_observations(self):
    agent = _agent()
    cold = agent.init(jax.random.key(0), self.obs)
    warm_obs = {"proprio": jnp.arange(3 * D, dtype=jnp.float32).reshape(3, D)}
    warm = agent.init(jax.random.key(0), self.obs, warm_obs=warm_obs)
    same = jax.tree.map(np.array_equal, cold.params, warm.params)
    self.assertTrue(all(jax.tree.leaves(same)))  # same parameters
    for zf in (warm.zfilter, warm.reference_zfilter):
      self.assertAlmostEqual(float(zf.count), 3.0, places=3)
      np.testing.assert_allclose(zf.total, warm_obs["proprio"].sum(0))

  def test_reward_scale_scales_the_return_targets(self):
    state = _agent().init(jax.random.key(0), self.obs)
    zero_critic = jax.tree.map(jnp.zeros_like, state.params)
    state = state._replace(params=zero_critic, reference=zero_critic)
    targets = {}
    for scale in (1.0, 0.1):
      learn = jax.jit(_agent(reward_scale=scale).learn)
      targets[scale] = float(learn(state, self.seg)[1]["return_target"])
    # V = 0 everywhere: the targets are the scaled rewards' sums.
    self.assertNotAlmostEqual(targets[1.0], 0.0, places=3)
    self.assertAlmostEqual(targets[0.1], 0.1 * targets[1.0], places=5)

  def test_lstm_restarts_at_an_episode_start(self):
    agent = _agent()
    state = agent.init(jax.random.key(0), self.obs)
    starts = jnp.zeros((B, T), bool).at[:, 0].set(True).at[:, 4].set(True)
    seg = _segments(jax.random.key(2), starts)
    other = seg._replace(
      obs={"proprio": seg.obs["proprio"].at[:, :4].add(3.0)},
      carry=(jnp.ones((B, 6)), jnp.ones((B, 6))),
    )

    def policy(s):
      x = jnp.swapaxes(
        agent.network.encode(state.params, None, s.obs["proprio"]), 0, 1
      )
      _, dist, value = agent.network.unroll(
        state.params, s.carry, x, jnp.swapaxes(s.starts, 0, 1)
      )
      return dist.mean, value

    (m1, v1), (m2, v2) = policy(seg), policy(other)
    np.testing.assert_allclose(m1[4:], m2[4:], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v1[4:], v2[4:], rtol=1e-6, atol=1e-7)
    self.assertFalse(np.allclose(m1[1:4], m2[1:4]))

  def test_feedforward_unroll_equals_steps(self):
    # lstm_size 0 runs every step at once; it must equal stepping.
    agent = _agent(lstm_size=0)
    state = agent.init(jax.random.key(0), self.obs)
    net, params = agent.network, state.params
    x = jnp.swapaxes(net.encode(params, None, self.seg.obs["proprio"]), 0, 1)
    starts = jnp.swapaxes(self.seg.starts, 0, 1)
    carry = net.initial_carry(B)
    _, dist, value = net.unroll(params, carry, x, starts)
    for t in range(T):
      _, d, v = net.step(params, carry, x[t], starts[t])
      np.testing.assert_allclose(dist.mean[t], d.mean, rtol=1e-6, atol=1e-7)
      np.testing.assert_allclose(value[t], v, rtol=1e-6, atol=1e-7)


if __name__ == "__main__":
  absltest.main()
