"""Tests for the DQN agent."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision import types
from jaxrl_vision.agents.dqn import agent as dqn
from jaxrl_vision.networks import q_networks

NUM_ACTIONS = 3
OBS_SHAPE = (6, 5, 3)


def make_network():
  return q_networks.make_discrete_q_network(
    num_actions=NUM_ACTIONS,
    channels=(4,),
    kernel_sizes=(3,),
    strides=(1,),
    hidden_sizes=(16,),
  )


def make_agent(network, **overrides):
  config = dict(
    learning_rate=1e-2,
    discount=0.9,
    max_grad_norm=10.0,
    huber_delta=1.0,
    target_update_tau=0.1,
    epsilon_start=1.0,
    epsilon_end=0.1,
    epsilon_decay_steps=10,
  )
  config.update(overrides)
  return dqn.make_dqn(network, NUM_ACTIONS, **config)


def random_obs(key, num):
  return jax.random.randint(key, (num,) + OBS_SHAPE, 0, 256).astype(jnp.uint8)


def random_batch(key, num):
  keys = jax.random.split(key, 5)
  return types.Transition(
    obs_tm1=random_obs(keys[0], num),
    action_tm1=jax.random.randint(keys[1], (num,), 0, NUM_ACTIONS),
    reward_t=jax.random.uniform(keys[2], (num,), minval=-1, maxval=1),
    discount_t=(jax.random.uniform(keys[3], (num,)) < 0.8).astype(jnp.float32),
    obs_t=random_obs(keys[4], num),
  )


def params_close(a, b):
  pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  return all(np.allclose(x, y) for x, y in pairs)


class DQNAgentTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.network = make_network()
    cls.obs = random_obs(jax.random.key(0), 8)  # [8, 6, 5, 3] uint8
    cls.batch = random_batch(jax.random.key(1), 16)
    # Compiled once and shared, since compiling dominates these tests' time.
    # (staticmethod: a plain function class attribute would bind `self`.)
    agent = make_agent(cls.network)  # tau = 0.1, eval_epsilon = 0
    cls.init = staticmethod(jax.jit(agent.init))
    cls.act = staticmethod(jax.jit(agent.act, static_argnames="deterministic"))
    cls.update = staticmethod(jax.jit(agent.update))
    cls.q_values = staticmethod(jax.jit(cls.network.apply))
    # The optimiser is the same for every config here, so one state serves all.
    cls.state = cls.init(jax.random.key(0), cls.obs[:1])

  def test_init(self):
    state = self.state
    self.assertEqual(int(state.step), 0)
    chex.assert_trees_all_equal(state.params, state.target_params)
    chex.assert_tree_all_finite(state.params)
    other = self.init(jax.random.key(1), self.obs[:1])
    self.assertFalse(params_close(other.params, state.params))

  def test_act_shapes_and_single_trace(self):
    agent = make_agent(self.network)
    state = self.state
    act = jax.jit(chex.assert_max_traces(agent.act, n=1))
    for i in range(3):  # a retrace fails here
      # A new step and new obs change values only, never shapes.
      state = state._replace(step=state.step + 1)
      obs = random_obs(jax.random.key(10 + i), 8)
      action, info = act(state, obs, jax.random.key(i))
    chex.assert_shape(action, (8,))
    self.assertEqual(action.dtype, jnp.int32)
    self.assertTrue(np.all((action >= 0) & (action < NUM_ACTIONS)))
    chex.assert_shape(info["q_max"], (8,))
    chex.assert_shape(info["epsilon"], ())
    chex.assert_tree_all_finite(info)

  @parameterized.named_parameters(
    # eps = 1 + clip(step / 10, 0, 1) * (0.1 - 1)
    ("step_0", 0, 1.0),
    ("step_5", 5, 0.55),  # 1 - 0.5 * 0.9
    ("step_20", 20, 0.1),
  )
  def test_act_epsilon_follows_schedule(self, step, expected):
    state = self.state._replace(step=jnp.int32(step))
    _, info = self.act(state, self.obs, jax.random.key(0))
    np.testing.assert_allclose(info["epsilon"], expected, rtol=1e-6)

  def test_deterministic_act_is_greedy(self):
    # eval_epsilon = 0, while epsilon_start = 1 makes training actions random.
    state = self.state
    obs = random_obs(jax.random.key(2), 64)
    q = self.q_values(state.params, obs)  # [64, 3]
    greedy = jnp.argmax(q, axis=-1)
    for i in range(3):
      action, info = self.act(state, obs, jax.random.key(i), deterministic=True)
      np.testing.assert_array_equal(action, greedy)
      np.testing.assert_allclose(info["q_max"], jnp.max(q, axis=-1), rtol=1e-6)
      self.assertEqual(float(info["epsilon"]), 0.0)
    # The greedy actions are not all the same, so the check above has teeth.
    self.assertGreater(len(np.unique(greedy)), 1)
    # Exploration (epsilon 1 at step 0) departs from greedy.
    action, _ = self.act(state, obs, jax.random.key(0), deterministic=False)
    self.assertFalse(np.array_equal(action, greedy))

  def test_eval_epsilon_is_used_when_deterministic(self):
    agent = make_agent(self.network, eval_epsilon=1.0)
    state = self.state
    obs = random_obs(jax.random.key(2), 256)
    act = jax.jit(agent.act, static_argnames="deterministic")
    action, info = act(state, obs, jax.random.key(0), deterministic=True)
    greedy = jnp.argmax(self.q_values(state.params, obs), axis=-1)
    self.assertEqual(float(info["epsilon"]), 1.0)
    # All random: about 2/3 of 256 actions differ from greedy.
    self.assertGreater(int(jnp.sum(action != greedy)), 128)

  def test_update_changes_params_and_single_trace(self):
    agent = make_agent(self.network)
    state = self.state
    update = jax.jit(chex.assert_max_traces(agent.update, n=1))
    new_state = state
    for i in range(3):
      batch = random_batch(jax.random.key(i), 16)
      new_state, metrics = update(new_state, batch)
    self.assertEqual(int(new_state.step), 3)
    self.assertFalse(params_close(new_state.params, state.params))
    self.assertSetEqual(set(metrics), {"loss", "q_mean", "grad_norm"})
    chex.assert_shape(list(metrics.values()), ())
    chex.assert_tree_all_finite(metrics)
    chex.assert_tree_all_finite(new_state.params)
    self.assertGreater(float(metrics["grad_norm"]), 0.0)

  def test_target_tau_one_copies_params(self):
    agent = make_agent(self.network, target_update_tau=1.0)
    state = self.state
    new_state, _ = jax.jit(agent.update)(state, self.batch)
    self.assertFalse(params_close(new_state.params, state.params))
    chex.assert_trees_all_close(new_state.target_params, new_state.params)

  def test_target_tau_zero_keeps_target(self):
    agent = make_agent(self.network, target_update_tau=0.0)
    state = self.state
    new_state, _ = jax.jit(agent.update)(state, self.batch)
    self.assertFalse(params_close(new_state.params, state.params))
    chex.assert_trees_all_equal(new_state.target_params, state.target_params)

  def test_target_tau_mixes(self):
    # target' = tau * params' + (1 - tau) * target, with tau = 0.1.
    state = self.state
    new_state, _ = self.update(state, self.batch)
    expected = jax.tree.map(
      lambda p, t: 0.1 * p + 0.9 * t, new_state.params, state.target_params
    )
    chex.assert_trees_all_close(new_state.target_params, expected, rtol=1e-5)

  def test_axis_name_averages_gradients(self):
    # Two halves under a named axis == one update on the whole batch, because
    # the mean of the halves' mean-loss gradients is the whole batch's.
    sharded = make_agent(self.network, axis_name="i")
    state = self.state
    whole, whole_metrics = self.update(state, self.batch)
    halves = jax.tree.map(lambda x: x.reshape((2, 8) + x.shape[1:]), self.batch)
    split, split_metrics = jax.jit(
      jax.vmap(sharded.update, in_axes=(None, 0), axis_name="i")
    )(state, halves)
    for i in range(2):
      chex.assert_trees_all_close(
        jax.tree.map(lambda x, i=i: x[i], split.params),
        whole.params,
        rtol=1e-4,
        atol=1e-6,
      )
    np.testing.assert_allclose(
      split_metrics["loss"], [whole_metrics["loss"]] * 2, rtol=1e-5
    )


if __name__ == "__main__":
  absltest.main()
