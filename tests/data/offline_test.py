"""Offline datasets: the collector, the transition index and the sampler."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision import train
from jaxrl_vision import types
from jaxrl_vision.data import offline
from jaxrl_vision.envs import catch

ROWS, COLS = 6, 5


def catch_expert(model, state, key, episode_key):
  """Privileged: move the paddle toward the ball's column (0/1/2 actions)."""
  del model, key, episode_key
  p = state.physics
  return (jnp.sign(p.ball[1] - p.paddle) + 1).astype(jnp.int32)


def random_policy(model, state, key, episode_key):
  del model, state, episode_key
  return jax.random.randint(key, (), 0, 3, jnp.int32)


def assert_catch_padding(test, ep):
  """Catch (6 rows, horizon 8) ends after 5 steps; padding: no reward, no
  termination, frozen observations."""
  np.testing.assert_array_equal(ep.length, 5)
  np.testing.assert_array_equal(ep.reward[:, 5:], 0.0)
  test.assertFalse(np.any(ep.terminated[:, 5:]))
  np.testing.assert_array_equal(ep.terminated[:, 4], True)
  for t in range(6, 9):
    np.testing.assert_array_equal(ep.obs[:, t], ep.obs[:, 5])


def assert_expert_catches_random_misses(test, collect):
  """`collect(weights)` of [catch_expert, random_policy]: returns the
  random policy's episodes."""
  expert = collect([1.0, 0.0])
  np.testing.assert_array_equal(expert.policy, 0)
  np.testing.assert_array_equal(expert.success, 1.0)
  np.testing.assert_array_equal(expert.reward[:, 4], 1.0)
  random = collect([0.0, 1.0])
  np.testing.assert_array_equal(random.policy, 1)
  test.assertLess(float(np.mean(random.success)), 0.6)
  return random


class CollectorTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    env = catch.make_catch(rows=ROWS, cols=COLS)
    # A horizon past the natural end (rows - 1 = 5) leaves padding steps.
    cls.env = env._replace(spec=env.spec._replace(max_episode_steps=8))
    cls.model = cls.env.init_model()

  def collect(self, weights, num=64, seed=0):
    collect = offline.make_collector(
      self.env, [catch_expert, random_policy], weights
    )
    return jax.jit(collect, static_argnums=2)(
      self.model, jax.random.key(seed), num
    )

  def test_shapes_and_padding(self):
    ep = self.collect([0.5, 0.5], num=8)
    chex.assert_shape(ep.obs, (8, 9, ROWS, COLS, 3))  # o_0 .. o_8
    chex.assert_shape(ep.action, (8, 8))
    assert_catch_padding(self, ep)

  def test_expert_always_catches_and_random_mostly_misses(self):
    assert_expert_catches_random_misses(self, self.collect)

  def test_mix_follows_weights_and_lands_between(self):
    ep = self.collect([0.3, 0.7], num=256)
    frac_expert = float(np.mean(ep.policy == 0))
    self.assertBetween(frac_expert, 0.2, 0.4)
    # Expert episodes all succeed; the mix's rate sits between the two.
    np.testing.assert_array_equal(ep.success[ep.policy == 0], 1.0)
    self.assertBetween(float(np.mean(ep.success)), 0.35, 0.75)

  def test_stored_frames_replay_the_env(self):
    ep = self.collect([0.5, 0.5], num=4, seed=3)
    # Re-simulate episode 0 from its first frame's physics: each stored
    # action must lead to the stored next frame. The reset key is the second
    # of the four the collector splits from the episode's key.
    e = 0
    state = self.env.reset(
      self.model,
      jax.random.split(jax.random.split(jax.random.key(3), 4)[e], 4)[1],
    )
    np.testing.assert_array_equal(state.obs, ep.obs[e, 0])
    for t in range(int(ep.length[e])):
      state = self.env.step(self.model, state, ep.action[e, t])
      np.testing.assert_array_equal(state.obs, ep.obs[e, t + 1])
      self.assertEqual(float(state.reward), float(ep.reward[e, t]))

  def test_episode_key_is_fixed_within_and_differs_across_episodes(self):
    def episode_key_policy(model, state, key, episode_key):
      """Acts 31 bits of the episode key (Catch clips any move to +-1)."""
      del model, state, key
      return (jax.random.key_data(episode_key)[-1] >> 1).astype(jnp.int32)

    num = 16
    collect = offline.make_collector(self.env, [episode_key_policy], [1.0])
    ep = jax.jit(collect, static_argnums=2)(self.model, jax.random.key(0), num)
    action = np.asarray(ep.action)  # [16, 8]
    # Fails if the per-step key is passed (the actions would change within
    # an episode) ...
    np.testing.assert_array_equal(
      action, np.broadcast_to(action[:, :1], action.shape)
    )
    # ... or if one key is shared by all episodes (all rows would match;
    # 31-bit values of distinct keys collide with probability ~1e-7).
    self.assertLen(set(action[:, 0].tolist()), num)

  def test_bad_weights_raise(self):
    with self.assertRaises(ValueError):
      offline.make_collector(self.env, [catch_expert], [0.5, 0.5])
    with self.assertRaises(ValueError):
      offline.make_collector(self.env, [catch_expert], [-1.0])


class SteppedCollectorTest(absltest.TestCase):
  """`make_stepped_collector`: the policy mix stepped from the host over
  shared env programs."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    env = catch.make_catch(rows=ROWS, cols=COLS)
    cls.env = env._replace(spec=env.spec._replace(max_episode_steps=8))
    cls.programs = train.make_episode_programs(
      cls.env, cls.env.init_model(), 64
    )

  def collect(self, weights, seed=0):
    collect = offline.make_stepped_collector(
      [catch_expert, random_policy], weights
    )
    return collect(self.programs, jax.random.key(seed))

  def test_shapes_padding_and_replay(self):
    ep = self.collect([0.5, 0.5], seed=3)
    chex.assert_shape(ep.obs, (64, 9, ROWS, COLS, 3))  # o_0 .. o_8
    chex.assert_shape(ep.action, (64, 8))
    np.testing.assert_array_equal(ep.action[:, 5:], 0)
    assert_catch_padding(self, ep)
    # The worlds are the programs' start from the key's second half; each
    # stored action leads to the stored next frame and reward.
    carry, _ = self.programs.start(
      self.programs.model, jax.random.split(jax.random.key(3))[1]
    )
    state = carry.env_state
    np.testing.assert_array_equal(state.obs, ep.obs[:, 0])
    step = jax.vmap(self.env.step, in_axes=(None, 0, 0))
    for t in range(5):
      state = step(self.programs.model, state, ep.action[:, t])
      np.testing.assert_array_equal(state.obs, ep.obs[:, t + 1])
      np.testing.assert_array_equal(state.reward, ep.reward[:, t])
    # Both policies acted, and the random one's moves vary.
    self.assertBetween(float(np.mean(ep.policy == 0)), 0.3, 0.7)
    self.assertLen(np.unique(ep.action[ep.policy == 1, :5]), 3)

  def test_expert_catches_random_mostly_misses_and_shares_the_program(self):
    random = assert_expert_catches_random_misses(self, self.collect)
    np.testing.assert_array_equal(random.success, random.reward.sum(1) > 0)
    # An evaluation over the same programs compiles no other env step.
    train.run_episodes(
      self.programs,
      jax.jit(lambda s, k: jnp.zeros((64,), jnp.int32)),
      jax.random.key(1),
    )
    self.assertEqual(self.programs.advance._cache_size(), 1)

  def test_bad_weights_raise(self):
    with self.assertRaises(ValueError):
      offline.make_stepped_collector([catch_expert], [0.5, 0.5])
    with self.assertRaises(ValueError):
      offline.make_stepped_collector([catch_expert], [-1.0])


class IndexAndSamplerTest(absltest.TestCase):
  def test_discounted_returns_hand_computed(self):
    reward = jnp.array([[1.0, 2.0, 3.0, 9.0], [5.0, 9.0, 9.0, 9.0]])
    returns = offline.discounted_returns(reward, jnp.array([3, 1]), 0.5)
    # 3; 2 + 0.5 * 3 = 3.5; 1 + 0.5 * 3.5 = 2.75; padding (the 9s) -> 0.
    np.testing.assert_allclose(
      returns, [[2.75, 3.5, 3.0, 0.0], [5.0, 0.0, 0.0, 0.0]]
    )

  def test_transition_index_hand_computed(self):
    # lengths 2, 0, 3 -> (0,0) (0,1) (2,0) (2,1) (2,2)
    np.testing.assert_array_equal(
      offline.transition_index(np.array([2, 0, 3])),
      [[0, 0], [0, 1], [2, 0], [2, 1], [2, 2]],
    )

  def test_sampler_pairs_frames_within_episodes(self):
    # obs value = 100 * episode + step, so a correct pair differs by 1.
    num_e, horizon = 3, 4
    obs = (100 * np.arange(num_e)[:, None] + np.arange(horizon + 1)).astype(
      np.float32
    )
    length = np.array([4, 1, 2], np.int32)
    terminated = np.zeros((num_e, horizon), bool)
    terminated[np.arange(num_e), length - 1] = True
    episodes = offline.Episodes(
      obs=jnp.asarray(obs),
      action=jnp.asarray(obs[:, :-1]),
      reward=jnp.asarray(obs[:, :-1] * 0.5),
      terminated=jnp.asarray(terminated),
      length=jnp.asarray(length),
      success=jnp.zeros(num_e),
      policy=jnp.zeros(num_e, jnp.int32),
    )
    index = jnp.asarray(offline.transition_index(length))
    sample = jax.jit(offline.make_sampler(512))
    batch = sample(episodes, index, jax.random.key(0))
    self.assertIsInstance(batch, types.Transition)
    np.testing.assert_array_equal(batch.obs_t - batch.obs_tm1, 1.0)
    np.testing.assert_array_equal(batch.action_tm1, batch.obs_tm1)
    e, t = np.divmod(np.asarray(batch.obs_tm1).astype(int), 100)
    self.assertTrue(np.all(t < length[e]))  # never a padding step
    # discount is 0 exactly on each episode's last step.
    np.testing.assert_array_equal(batch.discount_t == 0, t == length[e] - 1)
    # All 7 transitions are drawn (uniform over transitions).
    self.assertLen(set(zip(e.tolist(), t.tolist(), strict=True)), 7)
    self.assertIsNone(batch.mc_return)
    # With gamma, each transition carries its episode's return from o_t.
    with_returns = jax.jit(offline.make_sampler(512, gamma=0.5))(
      episodes, index, jax.random.key(0)
    )
    returns = np.asarray(
      offline.discounted_returns(episodes.reward, episodes.length, 0.5)
    )
    np.testing.assert_allclose(with_returns.mc_return, returns[e, t])


if __name__ == "__main__":
  absltest.main()
