"""What a task needs of a robot: pure functions of the MJX state.

A task picks a robot (`gripper.make_gripper`, `arm7.make_arm7`); it does not
define one. The robot's joints and fingers are the first `num_qpos` qpos
entries of the scene; its fingers are the geoms `finger_left` and
`finger_right` and its fingertip centre is `tip(data)`.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Robot(NamedTuple):
  """name; action_size; proprio_size; num_qpos: the robot's qpos entries;
  start_qpos(key) -> [num_qpos] an episode's start;
  rest_ctrl(qpos) -> [nu] actuator set-points holding that pose;
  control(data, action) -> (ctrl [nu], closed ()): the set-points an agent
    action commands for the next step (held over its substeps);
  tip(data) -> [3] the fingertips' centre; yaw(data) -> () the jaws' heading;
  fingers(data) -> [2] finger openings (metres); finger_speed(data) -> ();
  proprio(data, closed) -> [proprio_size] float32;
  cartesian_action(model, data, translation [3], dyaw, close, step_s) ->
    the action that moves the fingertips by `translation` metres and turns
    the jaws by `dyaw` over one agent step of `step_s` seconds (scripted
    experts are written in these terms, for any robot);
  random_action(key) -> a uniformly random action;
  add_noise(action, key, scale) -> the action with Gaussian exploration
    noise (scale in units of the action's range)."""

  name: str
  action_size: int
  proprio_size: int
  num_qpos: int
  start_qpos: Callable[[jax.Array], jax.Array]
  rest_ctrl: Callable[[jax.Array], jax.Array]
  control: Callable[..., tuple[jax.Array, jax.Array]]
  tip: Callable[..., jax.Array]
  yaw: Callable[..., jax.Array]
  fingers: Callable[..., jax.Array]
  finger_speed: Callable[..., jax.Array]
  proprio: Callable[..., jax.Array]
  cartesian_action: Callable[..., jax.Array]
  random_action: Callable[[jax.Array], jax.Array]
  add_noise: Callable[..., jax.Array]


# Both robots' actions are [moves..., grip]: continuous moves in [-1, 1] and
# the fingers' set-point from open (-1) to shut (+1) last.


def random_action(key: jax.Array, num_moves: int) -> jax.Array:
  """Uniform moves and a coin flip between open and shut."""
  move_key, grip_key = jax.random.split(key)
  move = jax.random.uniform(move_key, (num_moves,), minval=-1.0, maxval=1.0)
  grip = jnp.where(jax.random.bernoulli(grip_key), 1.0, -1.0)
  return jnp.concatenate([move, grip[None]]).astype(jnp.float32)


def add_noise(action: jax.Array, key: jax.Array, scale: float) -> jax.Array:
  """Gaussian noise on the moves (the grip kept), clipped to [-1, 1]."""
  moves = action[:-1]
  noisy = jnp.clip(moves + scale * jax.random.normal(key, moves.shape), -1, 1)
  return jnp.concatenate([noisy, action[-1:]]).astype(jnp.float32)
