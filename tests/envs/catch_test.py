"""Tests for the pixel Catch env."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.envs import catch

# The default model's colours as uint8: round(255 * c).
BACKGROUND = (26, 26, 26)  # 255 * 0.1 = 25.5 -> 26
BALL = (255, 204, 51)  # 255 * (1.0, 0.8, 0.2)
PADDLE = (51, 153, 255)  # 255 * (0.2, 0.6, 1.0)
LEFT, STAY, RIGHT = 0, 1, 2


def expected_image(rows, cols, ball, paddle, scale=1):
  """The image Catch should draw, built independently with numpy."""
  image = np.empty((rows, cols, 3), np.uint8)
  image[...] = BACKGROUND
  if 0 <= ball[0] < rows:
    image[ball[0], ball[1]] = BALL
  image[rows - 1, paddle] = PADDLE  # the paddle is drawn over the ball
  return image.repeat(scale, 0).repeat(scale, 1)


def with_physics(state, ball, paddle, t=0):
  physics = catch.CatchPhysics(
    ball=jnp.array(ball, jnp.int32),
    paddle=jnp.int32(paddle),
    t=jnp.int32(t),
  )
  return state._replace(physics=physics)


class CatchResetTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    ("small", 4, 3, 1),
    ("default", 10, 5, 1),
    ("scaled", 6, 4, 3),
  )
  def test_reset(self, rows, cols, scale):
    env = catch.make_catch(rows=rows, cols=cols, pixel_scale=scale)
    state = self.variant(env.reset)(env.init_model(), jax.random.key(3))

    chex.assert_shape(state.obs, (rows * scale, cols * scale, 3))
    self.assertEqual(state.obs.dtype, jnp.uint8)
    self.assertEqual(env.spec.obs_shape, (rows * scale, cols * scale, 3))
    self.assertEqual(env.spec.max_episode_steps, rows - 1)
    ball_col = int(state.physics.ball[1])
    self.assertEqual(int(state.physics.ball[0]), 0)
    self.assertBetween(ball_col, 0, cols - 1)
    self.assertEqual(int(state.physics.paddle), cols // 2)
    self.assertEqual(int(state.physics.t), 0)
    np.testing.assert_array_equal(
      state.obs,
      expected_image(rows, cols, (0, ball_col), cols // 2, scale),
    )
    self.assertEqual(float(state.reward), 0.0)
    self.assertFalse(state.terminated)
    self.assertFalse(state.truncated)

  def test_reset_draws_every_column(self):
    env = catch.make_catch(rows=4, cols=5)
    states = jax.vmap(env.reset, in_axes=(None, 0))(
      env.init_model(), jax.random.split(jax.random.key(0), 200)
    )
    np.testing.assert_array_equal(states.physics.ball[:, 0], 0)
    # 200 draws miss one of 5 columns with probability ~5 * 0.8**200.
    columns = set(np.asarray(states.physics.ball[:, 1]))
    self.assertSetEqual(columns, set(range(5)))

  def test_pixel_scale_repeats_each_cell(self):
    model = catch.make_catch(rows=5, cols=4).init_model()
    key = jax.random.key(7)
    small = catch.make_catch(rows=5, cols=4).reset(model, key).obs
    big = catch.make_catch(rows=5, cols=4, pixel_scale=3).reset(model, key).obs
    chex.assert_shape(big, (15, 12, 3))
    np.testing.assert_array_equal(big, small.repeat(3, 0).repeat(3, 1))

  @parameterized.named_parameters(
    ("one_row", dict(rows=1)),
    ("no_cols", dict(cols=0)),
    ("zero_scale", dict(pixel_scale=0)),
  )
  def test_invalid_sizes_raise(self, kwargs):
    with self.assertRaises(ValueError):
      catch.make_catch(**kwargs)


class CatchStepTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.env_10x5 = catch.make_catch(rows=10, cols=5)
    cls.model_10x5 = cls.env_10x5.init_model()
    cls.step_10x5 = staticmethod(jax.jit(cls.env_10x5.step))  # compiled once

  def setUp(self):
    super().setUp()
    self.env = catch.make_catch(rows=6, cols=5)
    self.model = self.env.init_model()
    self.start = self.env.reset(self.model, jax.random.key(0))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # paddle' = clip(paddle + action - 1, 0, cols - 1)
    ("left", 2, LEFT, 1),
    ("stay", 2, STAY, 2),
    ("right", 2, RIGHT, 3),
    ("left_at_edge", 0, LEFT, 0),  # clip(-1) = 0
    ("right_at_edge", 4, RIGHT, 4),  # clip(5) = 4
  )
  def test_paddle_moves_and_clips(self, paddle, action, expected):
    state = with_physics(self.start, (1, 3), paddle, t=1)
    step = self.variant(self.env.step)
    next_state = step(self.model, state, jnp.int32(action))
    self.assertEqual(int(next_state.physics.paddle), expected)
    # The ball falls one row and keeps its column.
    np.testing.assert_array_equal(next_state.physics.ball, [2, 3])
    self.assertEqual(int(next_state.physics.t), 2)
    np.testing.assert_array_equal(
      next_state.obs, expected_image(6, 5, (2, 3), expected)
    )
    self.assertEqual(float(next_state.reward), 0.0)
    self.assertFalse(next_state.terminated)

  @parameterized.named_parameters(
    # cols=5: the paddle starts in column 2 and the episode lasts 9 steps.
    ("catch_left_edge", 0, True),
    ("catch_middle", 2, True),
    ("catch_right_edge", 4, True),
    ("miss_left_edge", 0, False),
    ("miss_middle", 2, False),
    ("miss_right_edge", 4, False),
  )
  def test_episode_ends_after_rows_minus_one_steps(self, ball_col, catches):
    rows = 10
    env, model, step = self.env_10x5, self.model_10x5, self.step_10x5
    state = with_physics(env.reset(model, jax.random.key(1)), (0, ball_col), 2)
    # Walk the paddle to the ball's column, or to the far side to miss.
    target = ball_col if catches else (4 if ball_col < 2 else 0)
    for t in range(rows - 1):
      paddle = int(state.physics.paddle)
      action = STAY + int(np.sign(target - paddle))
      state = step(model, state, jnp.int32(action))
      is_last = t == rows - 2
      self.assertEqual(bool(state.terminated), is_last, msg=f"step {t}")
      if not is_last:
        self.assertEqual(float(state.reward), 0.0, msg=f"step {t}")
    np.testing.assert_array_equal(state.physics.ball, [rows - 1, ball_col])
    self.assertEqual(int(state.physics.t), rows - 1)
    self.assertEqual(int(state.physics.paddle), target)
    self.assertEqual(float(state.reward), 1.0 if catches else -1.0)
    self.assertEqual(float(state.metrics["success"]), float(catches))
    self.assertFalse(state.truncated)


class CatchRandomisationTest(chex.TestCase):
  def test_vmap_over_batched_model(self):
    env = catch.make_catch(rows=4, cols=3)
    base = env.init_model()
    backgrounds = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], jnp.float32)
    models = base._replace(
      background=backgrounds,
      ball_color=jnp.broadcast_to(base.ball_color, (2, 3)),
      paddle_color=jnp.broadcast_to(base.paddle_color, (2, 3)),
    )
    model_axes = catch.CatchModel(background=0, ball_color=0, paddle_color=0)
    key = jax.random.key(0)
    states = jax.jit(jax.vmap(env.reset, in_axes=(model_axes, None)))(
      models, key
    )
    chex.assert_shape(states.obs, (2, 4, 3, 3))
    # Same key, so same ball and paddle; only the background differs.
    balls = states.physics.ball
    np.testing.assert_array_equal(balls[0], balls[1])
    self.assertFalse(np.array_equal(states.obs[0], states.obs[1]))
    # Row 1 never holds the ball or the paddle, so it is pure background.
    np.testing.assert_array_equal(states.obs[0, 1], [[0, 0, 0]] * 3)
    np.testing.assert_array_equal(states.obs[1, 1], [[255, 0, 0]] * 3)

    actions = jnp.array([LEFT, RIGHT], jnp.int32)
    next_states = jax.vmap(env.step, in_axes=(model_axes, 0, 0))(
      models, states, actions
    )
    np.testing.assert_array_equal(next_states.physics.paddle, [0, 2])
    np.testing.assert_array_equal(next_states.obs[1, 0], [[255, 0, 0]] * 3)


if __name__ == "__main__":
  absltest.main()
