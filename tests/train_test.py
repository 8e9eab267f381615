"""Tests for the off-policy trainer, including a DQN-on-Catch smoke test."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision import train
from jaxrl_vision.agents.dqn import agent as dqn
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.envs import catch
from jaxrl_vision.networks import q_networks

BALL = (255, 204, 51)


def make_trainer(
  *,
  rows=4,
  cols=3,
  channels=(4,),
  hidden_sizes=(16,),
  learning_rate=1e-3,
  epsilon_decay_steps=500,
  capacity=1000,
  batch_size=16,
  min_size=16,
  num_envs=4,
  unroll_length=4,
  num_updates_per_iteration=2,
  num_iterations=5,
  num_eval_episodes=8,
):
  env = catch.make_catch(rows=rows, cols=cols)
  network = q_networks.make_discrete_q_network(
    num_actions=env.spec.num_actions,
    channels=channels,
    kernel_sizes=(3,) * len(channels),
    strides=(1,) * len(channels),
    hidden_sizes=hidden_sizes,
  )
  agent = dqn.make_dqn(
    network,
    env.spec.num_actions,
    learning_rate=learning_rate,
    discount=0.99,
    max_grad_norm=10.0,
    huber_delta=1.0,
    target_update_tau=0.05,
    epsilon_start=1.0,
    epsilon_end=0.05,
    epsilon_decay_steps=epsilon_decay_steps,
  )
  buffer = uniform.make_uniform_replay(
    capacity=capacity, batch_size=batch_size, min_size=min_size
  )
  return train.make_off_policy_train(
    env,
    env.init_model(),
    agent,
    buffer,
    num_envs=num_envs,
    unroll_length=unroll_length,
    num_updates_per_iteration=num_updates_per_iteration,
    num_iterations=num_iterations,
    num_eval_episodes=num_eval_episodes,
  )


def has_ball(obs_row):
  """[..., W, 3] -> [...] whether the row shows the ball."""
  return np.any(np.all(np.asarray(obs_row) == BALL, axis=-1), axis=-1)


class ReduceMetricsTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed(self):
    metrics = {
      "sum/episode/return": jnp.float32(3.0),
      "sum/episode/success": jnp.float32(1.0),
      "count/episode": jnp.float32(2.0),
      "sum/learner/loss": jnp.float32(0.0),
      "count/learner": jnp.float32(0.0),
      "first_nonfinite": jnp.int32(7),
    }
    out = self.variant(train.reduce_metrics)(metrics)
    self.assertSetEqual(
      set(out),
      {
        "episode/return",
        "episode/success",
        "episode/count",
        "learner/loss",
        "learner/count",
        "first_nonfinite",
      },
    )
    np.testing.assert_allclose(out["episode/return"], 1.5)  # 3 / 2
    np.testing.assert_allclose(out["episode/success"], 0.5)  # 1 / 2
    np.testing.assert_allclose(out["episode/count"], 2.0)
    self.assertTrue(np.isnan(out["learner/loss"]))  # no updates: 0 / 0
    np.testing.assert_allclose(out["learner/count"], 0.0)
    self.assertEqual(int(out["first_nonfinite"]), 7)  # passes through


class MakeChunkTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    ("all_finite", (), (), -1),
    ("nan_at_2", (2,), (), 2),
    ("inf_at_3", (), (3,), 3),
    ("first_of_two", (3,), (1,), 1),
    ("nan_at_0", (0,), (), 0),
  )
  def test_first_nonfinite(self, nan_at, inf_at, expected):
    def step(i):  # the state is just the iteration counter
      value = i.astype(jnp.float32)
      is_nan = jnp.isin(i, jnp.array(nan_at, jnp.int32))
      is_inf = jnp.isin(i, jnp.array(inf_at, jnp.int32))
      value = jnp.where(is_nan, jnp.nan, jnp.where(is_inf, jnp.inf, value))
      return i + 1, {"sum/x/value": value, "count/x": jnp.float32(1)}

    chunk = self.variant(train.make_chunk(step, length=5))
    state, metrics = chunk(jnp.int32(0))
    self.assertEqual(int(state), 5)
    self.assertEqual(int(metrics["first_nonfinite"]), expected)
    self.assertEqual(metrics["first_nonfinite"].dtype, jnp.int32)
    np.testing.assert_allclose(metrics["x/count"], 5.0)
    if expected == -1:
      # (0 + 1 + 2 + 3 + 4) / 5 = 2
      np.testing.assert_allclose(metrics["x/value"], 2.0)
    else:
      self.assertFalse(np.isfinite(metrics["x/value"]))


class OffPolicyTrainTest(chex.TestCase):
  def test_train_under_jit_and_vmap_over_seeds(self):
    # Catch with 4 rows: every episode lasts exactly 3 steps.
    num_seeds, num_iterations, num_envs, unroll = 2, 5, 4, 4
    trainer = make_trainer(
      num_envs=num_envs,
      unroll_length=unroll,
      num_iterations=num_iterations,
      min_size=16,
    )
    self.assertEqual(trainer.env_steps_per_iteration, 16)
    run = jax.jit(
      jax.vmap(chex.assert_max_traces(lambda k: train.train(trainer, k), n=1))
    )
    states, metrics = run(jax.random.split(jax.random.key(0), num_seeds))
    np.testing.assert_array_equal(states.iteration, [5, 5])
    # 16 items per iteration reach min_size = 16 at once: 5 * 2 updates.
    np.testing.assert_array_equal(states.agent.step, [10, 10])
    np.testing.assert_array_equal(states.buffer.size, [80, 80])  # 5 * 16
    chex.assert_shape(metrics["count/learner"], (2, 5))
    np.testing.assert_array_equal(metrics["count/learner"], 2.0)
    chex.assert_tree_all_finite(metrics)
    chex.assert_tree_all_finite(states.agent.params)
    # In 20 steps each of 4 worlds ends 6 episodes (at steps 3, 6, ..., 18).
    np.testing.assert_array_equal(
      jnp.sum(metrics["count/episode"], axis=1), [24.0, 24.0]
    )

    # Each seed is its own run: its own init, worlds and updates.
    leaf = jax.tree.leaves(states.agent.params)[0]
    self.assertFalse(np.allclose(leaf[0], leaf[1]))
    data = states.buffer.data
    self.assertFalse(np.array_equal(data.obs_tm1[0], data.obs_tm1[1]))
    loss = metrics["sum/learner/loss"]
    self.assertFalse(np.allclose(loss[0], loss[1]))

    for seed in range(num_seeds):
      # Each iteration adds its [T, N] unroll flattened time-major, so the
      # (unwrapped) buffer is one [5 * T, N] time-major trajectory.
      traj = jax.tree.map(
        lambda x, seed=seed: np.asarray(x[seed, :80]).reshape(
          (num_iterations * unroll, num_envs) + x.shape[2:]
        ),
        data,
      )
      per_seed = jax.tree.map(lambda x, seed=seed: x[seed], metrics)
      self._check_transitions(traj, per_seed)

    run(jax.random.split(jax.random.key(1), num_seeds))  # no retrace

  def _check_transitions(self, traj, metrics):
    terminal = traj.discount_t == 0.0  # [T, N]
    # Episodes start together and last 3 steps: steps 2, 5, ..., 17 end them.
    self.assertTrue(np.all(terminal[2::3]))
    self.assertEqual(int(terminal.sum()), 24)
    # Catch pays +-1 exactly on the terminal step and 0 elsewhere.
    np.testing.assert_array_equal(traj.reward_t != 0.0, terminal)
    self.assertTrue(np.all(np.abs(traj.reward_t[terminal]) == 1.0))
    # obs_t is the true successor: on a terminal step, the finished episode's
    # last frame, whose ball is on the bottom row (possibly under the paddle),
    # not the fresh reset frame; the next step starts from the ball in row 0.
    ball_above_bottom = has_ball(traj.obs_t[:, :, :-1]).any(axis=-1)  # [T, N]
    np.testing.assert_array_equal(ball_above_bottom, ~terminal)
    self.assertTrue(np.all(has_ball(traj.obs_tm1[1:, :, 0])[terminal[:-1]]))
    # Mid-episode, the next step starts from obs_t.
    mid = ~terminal[:-1]
    np.testing.assert_array_equal(traj.obs_t[:-1][mid], traj.obs_tm1[1:][mid])
    # Episode metrics sum the final rewards (Catch's only reward).
    np.testing.assert_allclose(
      jnp.sum(metrics["sum/episode/return"]), traj.reward_t.sum()
    )
    np.testing.assert_allclose(
      jnp.sum(metrics["sum/episode/success"]), (traj.reward_t > 0).sum()
    )


class DQNCatchSmokeTest(chex.TestCase):
  def test_dqn_learns_catch(self):
    num_iterations = 400
    trainer = make_trainer(
      rows=10,
      cols=5,
      channels=(16,),
      hidden_sizes=(64,),
      learning_rate=1e-3,
      epsilon_decay_steps=500,
      capacity=10_000,
      batch_size=64,
      min_size=256,
      num_envs=16,
      unroll_length=4,
      num_updates_per_iteration=2,
      num_iterations=num_iterations,
      num_eval_episodes=100,
    )
    state, metrics = jax.jit(lambda k: train.train(trainer, k))(
      jax.random.key(0)
    )
    result = jax.jit(trainer.evaluate)(state.agent, jax.random.key(1))

    # 64 items per iteration reach min_size = 256 in iteration 3 (0-based),
    # so (400 - 3) * 2 = 794 updates; 400 * 64 = 25600 items wrap 10000 slots.
    self.assertEqual(int(state.iteration), 400)
    self.assertEqual(int(state.agent.step), 794)
    self.assertEqual(int(state.buffer.size), 10_000)
    self.assertEqual(int(state.buffer.insert_pos), 5600)  # 25600 % 10000
    chex.assert_shape(metrics["count/episode"], (num_iterations,))
    chex.assert_tree_all_finite(state.agent.params)
    # Learning is skipped until can_sample, then runs 2 updates an iteration.
    np.testing.assert_array_equal(metrics["count/learner"][:3], 0.0)
    np.testing.assert_array_equal(metrics["count/learner"][3:], 2.0)
    np.testing.assert_array_equal(metrics["sum/learner/loss"][:3], 0.0)

    # Greedy eval: random play scores about -0.6 on this Catch.
    self.assertGreaterEqual(float(result["eval/return"]), 0.8)
    # Catch returns are +-1, so success = (return + 1) / 2.
    np.testing.assert_allclose(
      result["eval/success"], (result["eval/return"] + 1) / 2, atol=1e-6
    )
    # Training returns improve too, even with epsilon-greedy exploration.
    first = train.reduce_metrics(jax.tree.map(lambda x: x[:50].sum(), metrics))
    last = train.reduce_metrics(jax.tree.map(lambda x: x[-50:].sum(), metrics))
    self.assertLess(float(first["episode/return"]), 0.0)
    self.assertGreater(float(last["episode/return"]), 0.5)


if __name__ == "__main__":
  absltest.main()
