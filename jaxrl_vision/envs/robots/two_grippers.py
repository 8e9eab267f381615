"""Two Cartesian grippers as one `Robot` (Bimanual Lifting on the CPU).

Each hand is `gripper`'s design (slide x, y, z, a yaw hinge, two slide
fingers, position actuators) with its names prefixed by `scene.HANDS`:
the left hand's six joints are qpos[0:6], the right hand's qpos[6:12], and
their actuators ctrl[0:6] and ctrl[6:12]. Both bodies sit at the origin, so
each hand's qpos[:3] is its fingertips' world position; the hands never
collide with each other (fingers only touch objects, `scene`).

Every field keeps `Robot`'s meaning per hand, with a leading hand axis of
2 where the one-gripper robot has none:

  action   [10] float32 in [-1, 1]: [left 5, right 5], each `gripper`'s
           (dx, dy, dz, turn, grip), except that a hand's grip is a
           velocity: it moves its fingers' set-point by a[4] x a quarter of
           the way from open to shut per step (`GRIP`; robosuite 1.x's
           grippers move by its sign). A held pot, restored from the
           expert's lifted state, under Gaussian moves of std 0.165 around
           0 fell: with the binary grip (shut while > 0) in all 16 worlds
           by step 10; with robosuite's sign-driven velocity in 39 % of 64
           by step 5 and in all by step 20, and under a steady grip of
           -0.001 in all by step 5; with this one it is still up in 78 %
           at step 20 (the hands' independent moves then drop it).
  proprio  [28] float32: [left 14, right 14], each `gripper`'s.
  closed   [2] float32: each hand's close command (0 / 1).
  tip [2, 3], yaw [2], fingers [2, 2], finger_speed [2];
  cartesian_action(model, data, translation [2, 3], dyaw [2], close [2],
  step_s) -> [10].

An episode starts with both hands 10 cm up, the left one at x = -`START_X`,
the right one at +`START_X` (each +-2 cm in x and y), jaws open and turned
a quarter turn (they close along y, across handles that stick out along x).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import gripper
from jaxrl_vision.envs.robots import robot as robot_lib

NUM_HANDS = 2
ACTION_SIZE = NUM_HANDS * gripper.ACTION_SIZE
PROPRIO_SIZE = NUM_HANDS * gripper.PROPRIO_SIZE
NUM_QPOS = NUM_HANDS * common.NUM_GRIPPER_DOF
START_X = 0.07  # metres: each hand starts this far left / right of centre
START_NOISE = 0.02  # metres, uniform per axis in x and y
START_YAW = np.pi / 2
GRIP = "incremental"  # gripper.control's grip


class Hand(NamedTuple):
  """One hand's slice of the state, read as `gripper`'s functions read
  `mjx.Data` (its qpos[:6], qvel[:6], ctrl[:6])."""

  qpos: jax.Array  # [6] x, y, z, yaw, finger_left, finger_right
  qvel: jax.Array  # [6]
  ctrl: jax.Array  # [6] the set-points in force


def hand(data, i: int) -> Hand:
  dof = common.NUM_GRIPPER_DOF
  return Hand(
    qpos=data.qpos[i * dof : (i + 1) * dof],
    qvel=data.qvel[i * dof : (i + 1) * dof],
    ctrl=data.ctrl[i * dof : (i + 1) * dof],
  )


def _per_hand(fn, data) -> jax.Array:
  return jnp.stack([fn(hand(data, i)) for i in range(NUM_HANDS)])


def body_xml() -> str:
  return "".join(scene.gripper_xml(p) for p in scene.HANDS)


def actuator_xml() -> str:
  return "\n    ".join(scene.gripper_actuator_xml(p) for p in scene.HANDS)


def start_qpos(key: jax.Array) -> jax.Array:
  """[12]: both hands 10 cm up over their side, jaws open across x."""
  xy = jax.random.uniform(
    key, (NUM_HANDS, 2), minval=-START_NOISE, maxval=START_NOISE
  )
  xy = xy.at[:, 0].add(jnp.array([-START_X, START_X]))
  rest = jnp.array([0.10, START_YAW, scene.FINGER_OPEN, scene.FINGER_OPEN])
  rest = jnp.broadcast_to(rest, (NUM_HANDS, 4))
  return jnp.concatenate([xy, rest], -1).reshape(-1).astype(jnp.float32)


def _split(action: jax.Array) -> jax.Array:
  return jnp.reshape(action, (NUM_HANDS, gripper.ACTION_SIZE))


def control(data, action) -> tuple[jax.Array, jax.Array]:
  """(ctrl [12] set-points, left hand's then right's, closed [2])."""
  actions = _split(jnp.asarray(action, jnp.float32))
  outs = [
    gripper.control(hand(data, i), actions[i], grip=GRIP)
    for i in range(NUM_HANDS)
  ]
  ctrl = jnp.concatenate([c for c, _ in outs])
  return ctrl, jnp.stack([c for _, c in outs])


def proprio(data, closed) -> jax.Array:
  closed = jnp.broadcast_to(jnp.asarray(closed, jnp.float32), (NUM_HANDS,))
  return jnp.concatenate(
    [gripper.proprio(hand(data, i), closed[i]) for i in range(NUM_HANDS)]
  )


def cartesian_action(model, data, translation, dyaw, close, step_s):
  """[10]: each hand's `gripper.cartesian_action` (rows of the [2, ...]
  arguments)."""
  close = jnp.broadcast_to(close, (NUM_HANDS,))
  return jnp.concatenate(
    [
      gripper.cartesian_action(
        model, data, translation[i], dyaw[i], close[i], step_s
      )
      for i in range(NUM_HANDS)
    ]
  )


def random_action(key: jax.Array) -> jax.Array:
  keys = jax.random.split(key, NUM_HANDS)
  return jnp.concatenate([gripper.random_action(k) for k in keys])


def add_noise(action: jax.Array, key: jax.Array, scale: float) -> jax.Array:
  """Each hand's moves get Gaussian noise, its grip is kept."""
  keys = jax.random.split(key, NUM_HANDS)
  actions = _split(action)
  return jnp.concatenate(
    [gripper.add_noise(actions[i], keys[i], scale) for i in range(NUM_HANDS)]
  )


def make_two_grippers(mj_model: mujoco.MjModel) -> robot_lib.Robot:
  """The two hands' pure functions for a scene of `scene.scene_xml` with
  this robot's parts."""
  del mj_model  # the joints are checked by `common.make_layout`
  one = gripper.make_gripper(None)  # each hand's readers, per `hand`
  return robot_lib.Robot(
    name="two_grippers",
    action_size=ACTION_SIZE,
    proprio_size=PROPRIO_SIZE,
    num_qpos=NUM_QPOS,
    start_qpos=start_qpos,
    rest_ctrl=lambda qpos: qpos[:NUM_QPOS],
    control=control,
    tip=lambda data: _per_hand(one.tip, data),
    yaw=lambda data: _per_hand(one.yaw, data),
    fingers=lambda data: _per_hand(one.fingers, data),
    finger_speed=lambda data: _per_hand(one.finger_speed, data),
    proprio=proprio,
    cartesian_action=cartesian_action,
    random_action=random_action,
    add_noise=add_noise,
  )
