"""Surreal-DDPG's update: who trains what, the target copies, the critic's
target by hand, and a bandit it must solve."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision import types
from jaxrl_vision.agents.ddpg import agent as ddpg

B, D, A = 8, 3, 2


def _batch(key, discount=0.9):
  k1, k2, k3, k4 = jax.random.split(key, 4)
  return types.Transition(
    obs_tm1={"state": jax.random.normal(k1, (B, D))},
    action_tm1=jax.random.uniform(k2, (B, A), minval=-1, maxval=1),
    reward_t=jax.random.normal(k3, (B,)),
    discount_t=jnp.full((B,), discount),
    obs_t={"state": jax.random.normal(k4, (B, D))},
  )


def _changed(a, b):
  return {
    k: not all(
      bool(jnp.array_equal(x, y))
      for x, y in zip(jax.tree.leaves(a[k]), jax.tree.leaves(b[k]), strict=True)
    )
    for k in a
  }


class DDPGTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.batch = _batch(jax.random.key(0))

  def _init(self, agent):
    return agent.init(
      jax.random.key(1), jax.tree.map(lambda x: x[:1], self.batch.obs_tm1)
    )

  def test_each_loss_trains_its_share(self):
    # The image-free encoder has no parameters; with pixels, phi's conv is
    # the critic's (checked below).
    for actor_lr, critic_lr, want in (
      (0.0, 1e-3, {"encoder": False, "actor": False, "critic": True}),
      (1e-3, 0.0, {"encoder": False, "actor": True, "critic": False}),
    ):
      agent = ddpg.make_ddpg(
        A, actor_learning_rate=actor_lr, critic_learning_rate=critic_lr
      )
      state = self._init(agent)
      new, metrics = agent.update(state, self.batch)
      self.assertEqual(_changed(new.params, state.params), want)
      self.assertEqual(int(new.updates), 1)
      self.assertTrue(np.isfinite(float(metrics["critic_loss"])))

  def test_pixels_conv_is_trained_by_the_critic_only(self):
    obs = {
      "image": jax.random.randint(
        jax.random.key(2), (B, 36, 36, 3), 0, 255
      ).astype(jnp.uint8),
      "proprio": jnp.ones((B, 2)),
    }
    batch = self.batch._replace(obs_tm1=obs, obs_t=obs)
    agent = ddpg.make_ddpg(A, pixels=True, critic_learning_rate=0.0)
    state = agent.init(jax.random.key(1), jax.tree.map(lambda x: x[:1], obs))
    new, _ = agent.update(state, batch)
    self.assertEqual(
      _changed(new.params, state.params),
      {"encoder": False, "actor": True, "critic": False},
    )
    agent = ddpg.make_ddpg(A, pixels=True, actor_learning_rate=0.0)
    new, _ = agent.update(state, batch)
    self.assertEqual(
      _changed(new.params, state.params),
      {"encoder": True, "actor": False, "critic": True},
    )

  def test_hard_target_copy(self):
    agent = ddpg.make_ddpg(A, target_update_period=2)
    state = self._init(agent)
    one, _ = agent.update(state, self.batch)
    chex_equal = lambda a, b: all(  # noqa: E731
      bool(jnp.array_equal(x, y))
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    self.assertTrue(chex_equal(one.target, state.params))  # not yet
    self.assertFalse(chex_equal(one.params, state.params))
    two, _ = agent.update(one, self.batch)
    self.assertTrue(chex_equal(two.target, two.params))  # copied at 2

  def test_critic_target_by_hand(self):
    agent = ddpg.make_ddpg(A, critic_learning_rate=0.0, actor_learning_rate=0.0)
    state = self._init(agent)
    # A target network that differs from the online one.
    target = jax.tree.map(lambda x: x * 0.5, state.params)
    state = state._replace(target=target)
    _, metrics = agent.update(state, self.batch)
    nets, b = agent.networks, self.batch
    a_next = nets.actor(target, b.obs_t["state"])
    y = b.reward_t + b.discount_t * nets.critic(
      target, b.obs_t["state"], a_next
    )
    q = nets.critic(state.params, b.obs_tm1["state"], b.action_tm1)
    np.testing.assert_allclose(metrics["target"], jnp.mean(y), rtol=1e-5)
    np.testing.assert_allclose(
      metrics["critic_loss"], jnp.mean((q - y) ** 2), rtol=1e-5
    )

  def test_act_clips_mean_plus_noise(self):
    agent = ddpg.make_ddpg(A)
    state = self._init(agent)
    greedy = agent.act(state, self.batch.obs_tm1, jnp.zeros((B, A)))
    pushed = agent.act(state, self.batch.obs_tm1, jnp.full((B, A), 5.0))
    np.testing.assert_array_equal(pushed, 1.0)
    self.assertTrue(bool(jnp.all(jnp.abs(greedy) < 1.0)))

  def test_solves_a_bandit(self):
    # One-step episodes (discount 0), reward -(a - c)^2 with c = (0.5,
    # -0.3): the critic learns the parabola, the actor its top.
    c = jnp.array([0.5, -0.3])
    agent = ddpg.make_ddpg(
      A,
      actor_learning_rate=3e-3,
      critic_learning_rate=3e-3,
      actor_grad_clip=10.0,
    )
    state = self._init(agent)
    obs = {"state": jnp.zeros((64, D))}

    @jax.jit
    def step(state, key):
      a = jax.random.uniform(key, (64, A), minval=-1, maxval=1)
      batch = types.Transition(
        obs_tm1=obs,
        action_tm1=a,
        reward_t=-jnp.sum((a - c) ** 2, -1),
        discount_t=jnp.zeros((64,)),
        obs_t=obs,
      )
      return agent.update(state, batch)

    for key in jax.random.split(jax.random.key(3), 1500):
      state, _ = step(state, key)
    greedy = agent.act(state, {"state": jnp.zeros((1, D))}, jnp.zeros((1, A)))
    np.testing.assert_allclose(greedy[0], c, atol=0.05)


if __name__ == "__main__":
  absltest.main()
