"""Catch from pixels: a tiny pure-JAX task for fast tests and smoke runs.

A ball falls one row per step from a random column of the top row; the agent
moves a paddle along the bottom row (0: left, 1: stay, 2: right). The episode
ends when the ball reaches the bottom row: +1 if the paddle is under it, else
-1 (bsuite's Catch). Observations are RGB images whose colours come from the
model, so appearance randomisation is `vmap` over a batched model like any
other env in this project.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_vision import types


class CatchModel(NamedTuple):
  background: jax.Array  # [3] float32 in [0, 1]
  ball_color: jax.Array  # [3] float32 in [0, 1]
  paddle_color: jax.Array  # [3] float32 in [0, 1]


class CatchPhysics(NamedTuple):
  ball: jax.Array  # [2] int32, (row, col)
  paddle: jax.Array  # () int32, column on the bottom row
  t: jax.Array  # () int32, steps taken in this episode


def make_catch(
  rows: int = 10, cols: int = 5, pixel_scale: int = 1
) -> types.Env:
  """Returns Catch as an `Env`; images are [rows*scale, cols*scale, 3] uint8."""
  if rows < 2 or cols < 1 or pixel_scale < 1:
    raise ValueError(
      f"catch needs rows >= 2, cols >= 1, pixel_scale >= 1; got {rows=}, "
      f"{cols=}, {pixel_scale=}"
    )
  max_steps = rows - 1

  def render(model: CatchModel, physics: CatchPhysics) -> jax.Array:
    r, c = jnp.arange(rows)[:, None], jnp.arange(cols)[None, :]
    ball = (r == physics.ball[0]) & (c == physics.ball[1])  # [rows, cols]
    paddle = (r == rows - 1) & (c == physics.paddle)
    image = jnp.where(ball[..., None], model.ball_color, model.background)
    image = jnp.where(paddle[..., None], model.paddle_color, image)
    image = jnp.repeat(jnp.repeat(image, pixel_scale, 0), pixel_scale, 1)
    return jnp.round(image * 255).astype(jnp.uint8)

  def reset(model: CatchModel, key: jax.Array) -> types.EnvState:
    physics = CatchPhysics(
      ball=jnp.stack([0, jax.random.randint(key, (), 0, cols)]).astype(
        jnp.int32
      ),
      paddle=jnp.int32(cols // 2),
      t=jnp.int32(0),
    )
    return types.EnvState(
      physics=physics,
      obs=render(model, physics),
      reward=jnp.float32(0),
      terminated=jnp.bool_(False),
      truncated=jnp.bool_(False),
      metrics={"success": jnp.float32(0)},
      info={},
    )

  def step(
    model: CatchModel, state: types.EnvState, action: jax.Array
  ) -> types.EnvState:
    p = state.physics
    paddle = jnp.clip(
      p.paddle + jnp.asarray(action, jnp.int32) - 1, 0, cols - 1
    )
    ball = p.ball.at[0].add(1)
    physics = CatchPhysics(ball=ball, paddle=paddle, t=p.t + 1)
    terminated = ball[0] == rows - 1
    caught = terminated & (ball[1] == paddle)
    reward = jnp.where(terminated, jnp.where(caught, 1.0, -1.0), 0.0)
    return types.EnvState(
      physics=physics,
      obs=render(model, physics),
      reward=reward.astype(jnp.float32),
      terminated=terminated,
      truncated=jnp.bool_(False),
      metrics={"success": caught.astype(jnp.float32)},
      info=state.info,
    )

  def init_model() -> CatchModel:
    return CatchModel(
      background=jnp.array([0.1, 0.1, 0.1], jnp.float32),
      ball_color=jnp.array([1.0, 0.8, 0.2], jnp.float32),
      paddle_color=jnp.array([0.2, 0.6, 1.0], jnp.float32),
    )

  spec = types.EnvSpec(
    obs_shape=(rows * pixel_scale, cols * pixel_scale, 3),
    obs_dtype=jnp.uint8,
    num_actions=3,
    action_shape=(),
    max_episode_steps=max_steps,
  )
  return types.Env(reset=reset, step=step, init_model=init_model, spec=spec)
