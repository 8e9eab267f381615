"""Tests for env wrappers."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import catch
from jaxrl_vision.envs import wrappers

ROWS, COLS = 4, 3  # episodes last ROWS - 1 = 3 steps
STAY = 1


def rollout(env, model, key, actions):
  """Runs `actions` [T] from reset; returns the reset state and [T] states."""
  state = env.reset(model, key)

  def body(state, action):
    state = env.step(model, state, action)
    return state, state

  _, states = jax.lax.scan(body, state, actions)
  return state, states


def row_has_ball(obs_row):
  return np.any(np.all(np.asarray(obs_row) == [255, 204, 51], axis=-1))


class AutoResetTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.raw = catch.make_catch(rows=ROWS, cols=COLS)
    self.env = wrappers.auto_reset(self.raw)
    self.model = self.raw.init_model()

  def test_reset_sets_final_obs_to_obs(self):
    state = jax.jit(self.env.reset)(self.model, jax.random.key(0))
    np.testing.assert_array_equal(state.info["final_obs"], state.obs)
    self.assertIn("reset_key", state.info)
    self.assertEqual(self.env.spec, self.raw.spec)

  def test_terminal_step_resets_and_keeps_final_obs(self):
    wrapped = jax.jit(self.env.step)
    raw_step = jax.jit(self.raw.step)
    state = self.env.reset(self.model, jax.random.key(1))
    # The raw env, started from the same physics, is the reference.
    raw = self.raw.reset(self.model, jax.random.key(0))._replace(
      physics=state.physics
    )
    for t in range(ROWS - 1):
      state = wrapped(self.model, state, jnp.int32(STAY))
      raw = raw_step(self.model, raw, jnp.int32(STAY))
      # reward, terminated and metrics describe the step just taken.
      self.assertEqual(float(state.reward), float(raw.reward))
      self.assertEqual(bool(state.terminated), bool(raw.terminated))
      self.assertEqual(
        float(state.metrics["success"]), float(raw.metrics["success"])
      )
      np.testing.assert_array_equal(state.info["final_obs"], raw.obs)
      if t < ROWS - 2:  # mid-episode: nothing is reset
        np.testing.assert_array_equal(state.obs, raw.obs)
        np.testing.assert_array_equal(state.physics.ball, raw.physics.ball)

    # The last step ended the episode: +1 or -1 and the ball on the bottom row.
    self.assertTrue(state.terminated)
    self.assertIn(float(state.reward), (-1.0, 1.0))
    self.assertEqual(int(state.info["final_obs"].shape[0]), ROWS)
    self.assertFalse(row_has_ball(state.info["final_obs"][0]))
    # ...while `obs` and `physics` already belong to a fresh episode.
    self.assertEqual(int(state.physics.t), 0)
    self.assertEqual(int(state.physics.ball[0]), 0)
    self.assertEqual(int(state.physics.paddle), COLS // 2)
    self.assertTrue(row_has_ball(state.obs[0]))
    self.assertFalse(np.array_equal(state.obs, state.info["final_obs"]))

    # The next step continues the new episode, not the finished one.
    state = wrapped(self.model, state, jnp.int32(STAY))
    self.assertFalse(state.terminated)
    self.assertEqual(float(state.reward), 0.0)
    self.assertEqual(int(state.physics.t), 1)
    self.assertEqual(int(state.physics.ball[0]), 1)
    np.testing.assert_array_equal(state.info["final_obs"], state.obs)

  def test_fresh_obs_matches_fresh_physics(self):
    # Over several episodes, obs after a reset is the image of the new physics.
    _, states = jax.jit(
      lambda key: rollout(self.env, self.model, key, jnp.ones(12, jnp.int32))
    )(jax.random.key(2))
    for t in range(12):
      ball = np.asarray(states.physics.ball[t])
      obs = np.asarray(states.obs[t])
      expected = np.full((ROWS, COLS, 3), 26, np.uint8)
      expected[ball[0], ball[1]] = [255, 204, 51]
      expected[ROWS - 1, int(states.physics.paddle[t])] = [51, 153, 255]
      np.testing.assert_array_equal(obs, expected, err_msg=f"step {t}")
    # Episodes end every 3 steps: steps 2, 5, 8, 11.
    np.testing.assert_array_equal(
      np.flatnonzero(states.terminated), [2, 5, 8, 11]
    )
    # The reset key advances, so new episodes do not all repeat one column.
    new_episode_cols = states.physics.ball[np.array([2, 5, 8, 11]), 1]
    self.assertGreater(len(np.unique(new_episode_cols)), 1)

  def test_reproducible_with_same_key(self):
    actions = jax.random.randint(jax.random.key(9), (12,), 0, 3)
    run = jax.jit(lambda key: rollout(self.env, self.model, key, actions))
    first = run(jax.random.key(5))
    again = run(jax.random.key(5))
    other = run(jax.random.key(6))

    def as_data(tree):  # typed keys compare through their raw data
      return jax.tree.map(
        lambda x: (
          jax.random.key_data(x)
          if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
          else x
        ),
        tree,
      )

    chex.assert_trees_all_equal(as_data(first), as_data(again))
    # New episodes draw new balls; a different key gives another sequence.
    self.assertFalse(
      np.array_equal(first[1].physics.ball, other[1].physics.ball)
    )


if __name__ == "__main__":
  absltest.main()
