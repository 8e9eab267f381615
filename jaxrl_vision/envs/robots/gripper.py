"""The Cartesian parallel-jaw gripper as a `Robot` (the CPU default).

Four position-controlled joints (slide x, y, z and a yaw hinge) and two
slide fingers; its MJCF and gains live in `envs.manipulation.scene`. The
frame's origin is the fingertips' centre, so qpos[:3] is `tip`.

  action   [5] float32 in [-1, 1], continuous as robosuite's: a[0:3] moves
           the set-point by up to `common.MAX_TRANSLATION` (3 cm) per axis
           from the measured position, a[3] turns it by up to
           `common.MAX_YAW` (0.25 rad), a[4] is the fingers' set-point from
           open (-1) to shut (+1); "closed" means a[4] > 0. (QT-Opt's tasks
           keep `common`'s [7] action with (sin, cos) yaw and one-hot
           open/close scores: under Gaussian exploration that yaw is a
           random walk and the fingers chatter, which Surreal-PPO on the
           suite does not recover from.)
  proprio  [14] float32: tip x, y, z (metres), sin and cos of the yaw,
           finger openings (1 = open), the 6 joint velocities and the close
           command (0 / 1).
"""

import functools

import jax
import jax.numpy as jnp
import mujoco

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import robot as robot_lib

PROPRIO_SIZE = 14
ACTION_SIZE = 5


def body_xml() -> str:
  return scene.gripper_xml()


def actuator_xml() -> str:
  return scene.gripper_actuator_xml()


def proprio(data, closed) -> jax.Array:
  yaw = data.qpos[3]
  return jnp.concatenate(
    [
      data.qpos[:3],
      jnp.stack([jnp.sin(yaw), jnp.cos(yaw)]),
      data.qpos[4:6] / scene.FINGER_OPEN,
      data.qvel[: common.NUM_GRIPPER_DOF],
      jnp.asarray(closed, jnp.float32)[None],
    ]
  ).astype(jnp.float32)


GRIPS = ("linear", "binary", "incremental")
# "incremental": the command's largest change per step, of its [-1, 1]
# range (robosuite 1.x: 0.01 per 2 ms simulation step, 0.25 per 20 Hz action).
GRIP_SPEED = 0.25


def control(
  data, action, grip: str = "linear", grip_speed: float = GRIP_SPEED
) -> tuple[jax.Array, jax.Array]:
  """(ctrl [6] set-points of x, y, z, yaw and the fingers, closed ()).

  The fingers' set-point from a[4], by `grip`:
    linear       a[4] mapped from open (-1) to shut (+1);
    binary       shut when a[4] > 0, else open;
    incremental  the set-point in force (data.ctrl) moved `grip_speed` x
                 a[4] towards shut (a velocity command): one contrary step
                 only loosens the jaws. robosuite 1.x's grippers move by
                 `grip_speed` x sign(a[4]); here a Gaussian policy whose
                 grip mean sits near 0 would then open or shut at full
                 speed on the sign of its noise (a held pot, restored from
                 the expert's lifted state, fell within 5 steps in 39 % of
                 64 worlds and within 20 in all, under noise of std 0.165;
                 a greedy mean of -0.001 dropped all 64 within 5).
  `closed` is the command's sign (a[4] > 0)."""
  a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
  low = jnp.asarray(scene.WORKSPACE_LOW, jnp.float32)
  high = jnp.asarray(scene.WORKSPACE_HIGH, jnp.float32)
  xyz = jnp.clip(data.qpos[:3] + common.MAX_TRANSLATION * a[:3], low, high)
  yaw = jnp.clip(data.qpos[3] + common.MAX_YAW * a[3], -jnp.pi, jnp.pi)
  if grip == "binary":
    shut = jnp.where(a[4] > 0, 1.0, -1.0)
  elif grip == "incremental":
    before = 1.0 - 2.0 * data.ctrl[4] / scene.FINGER_OPEN
    shut = jnp.clip(before + grip_speed * a[4], -1.0, 1.0)
  elif grip == "linear":
    shut = a[4]
  else:
    raise ValueError(f"grip must be one of {GRIPS}: {grip!r}")
  finger = scene.FINGER_OPEN * (1.0 - shut) / 2.0
  ctrl = jnp.concatenate([xyz, yaw[None], jnp.stack([finger, finger])])
  return ctrl.astype(jnp.float32), (a[4] > 0).astype(jnp.float32)


def cartesian_action(model, data, translation, dyaw, close, step_s):
  """The action moving the set-point by `translation` metres and `dyaw`."""
  del model, data, step_s  # the action is a set-point displacement
  t = jnp.clip(translation / common.MAX_TRANSLATION, -1.0, 1.0)
  turn = jnp.clip(dyaw / common.MAX_YAW, -1.0, 1.0)
  grip = jnp.where(close, 1.0, -1.0)
  return jnp.concatenate([t, jnp.stack([turn, grip])]).astype(jnp.float32)


random_action = functools.partial(robot_lib.random_action, num_moves=4)
add_noise = robot_lib.add_noise


def make_gripper(mj_model: mujoco.MjModel) -> robot_lib.Robot:
  """The gripper's pure functions for a scene of `scene.scene_xml`."""
  del mj_model  # its joints are checked by `common.make_layout`
  return robot_lib.Robot(
    name="gripper",
    action_size=ACTION_SIZE,
    proprio_size=PROPRIO_SIZE,
    num_qpos=common.NUM_GRIPPER_DOF,
    start_qpos=common.gripper_start_qpos,
    rest_ctrl=lambda qpos: qpos[: common.NUM_GRIPPER_DOF],
    control=control,
    tip=lambda data: data.qpos[:3],
    yaw=lambda data: data.qpos[3],
    fingers=lambda data: data.qpos[4:6],
    finger_speed=lambda data: jnp.max(jnp.abs(data.qvel[4:6])),
    proprio=proprio,
    cartesian_action=cartesian_action,
    random_action=random_action,
    add_noise=add_noise,
  )
