"""A 7-DoF arm with joint-velocity control: the seed's Sawyer, from primitives.

The kinematic chain is Rethink Sawyer's (link offsets and joint axes of its
URDF, as robosuite models it; inertias diagonal in each link's frame, masses
as published), drawn with capsules, mounted on the tabletop at `BASE_POS`
facing the tray, so the overhead camera sees it from the front as robosuite's
`agentview` does. Its flange carries the parallel-jaw fingers of the
Cartesian gripper (`envs.manipulation.scene`), so a grasp is the same
contact problem for both robots. Links are visual only (contype 0): the arm
passes through the tray walls but its fingers collide with objects.

  action   [8] float32 in [-1, 1]: seven joint velocities scaled to
           +-`MAX_JOINT_SPEED` (rad/s), held for the agent step (10 Hz with
           20 substeps of 5 ms), and the fingers' set-point from open (-1)
           to shut (+1) (robosuite's convention); "closed" is a[7] > 0.
  proprio  [30] float32, robosuite's `robot-state`: sin q (7), cos q (7),
           q' (7), finger openings (2, 1 = open), fingertip-centre position
           (3), hand quaternion (4).

Velocity actuators (force = kv (u - q')) with gravity compensation of the
links hold the commanded speeds; the armature (a geared motor's reflected
inertia) keeps the explicit integration stable at dt = 5 ms.

`cartesian_action` maps a Cartesian command of the fingertips (translation
this step, a yaw step, close) to joint velocities by damped least squares on
the fingertip Jacobian, keeping the jaws pointing down: what the scripted
experts of the Cartesian gripper need to drive the arm.
"""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx
from mujoco.mjx._src import support

from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import robot as robot_lib

NUM_JOINTS = 7
ACTION_SIZE = 8
PROPRIO_SIZE = 30
MAX_JOINT_SPEED = 1.0  # rad/s at |action| = 1
BASE_POS = (0.0, 0.56, 0.0)  # the tray's centre is 0.56 m in front of it
HOME_TIP = (0.0, 0.0, 0.10)  # the fingertips' start, above the tray centre
START_NOISE = 0.02  # rad, robosuite's initial joint noise (std)
MAX_TIP_SPEED = 0.3  # m/s, the Cartesian commands' limit
DAMPING = 0.05  # damped least squares (metres, radians)

# Sawyer's chain: (body, parent offset, parent-to-body quaternion, joint
# range, mass, diagonal inertia); every joint turns about its body's z.
_CHAIN = (
  ("l0", (0, 0, 0.08), (1, 0, 0, 0), (-3.0503, 3.0503), 5.3213, (0.065, 0.051, 0.019)),
  ("l1", (0.081, 0.05, 0.237), (0.5, -0.5, 0.5, 0.5), (-3.8095, 2.2736), 4.505, (0.022, 0.022, 0.0097)),
  ("l2", (0, -0.14, 0.1425), (0.707107, 0.707107, 0, 0), (-3.0426, 3.0426), 1.745, (0.026, 0.026, 0.0029)),
  ("l3", (0, -0.042, 0.26), (0.707107, -0.707107, 0, 0), (-3.0439, 3.0439), 2.5097, (0.010, 0.0097, 0.0037)),
  ("l4", (0, -0.125, -0.1265), (0.707107, 0.707107, 0, 0), (-2.9761, 2.9761), 1.1136, (0.0137, 0.0135, 0.0013)),
  ("l5", (0, 0.031, 0.275), (0.707107, -0.707107, 0, 0), (-2.9761, 2.9761), 1.5625, (0.0047, 0.0042, 0.0019)),
  ("l6", (0, -0.11, 0.1053), (0.0616248, 0.06163, -0.704416, 0.704416), (-4.7124, 4.7124), 0.3292, (0.00036, 0.00031, 0.00021)),
)  # fmt: skip
_HAND = ((0, 0, 0.0245), (0.707107, 0, 0, 0.707107))  # flange on l6
# Capsules drawn from each body's origin to its child's (the link's bone).
_RADII = (0.07, 0.06, 0.055, 0.05, 0.045, 0.04, 0.035)
_ARMATURE = (0.5, 0.5, 0.3, 0.3, 0.1, 0.1, 0.1)  # kg m^2
_KV = (100.0, 100.0, 60.0, 60.0, 20.0, 20.0, 20.0)  # N m s / rad
_VISUAL = 'contype="0" conaffinity="0"'
JOINTS = tuple(f"j{i}" for i in range(NUM_JOINTS))


def _fmt(values) -> str:
  return " ".join(f"{v:.6g}" for v in np.ravel(values))


def _tip_body() -> str:
  """The fingers of the Cartesian gripper under the flange: body `tip` has
  its origin between the fingertips and its z axis back toward the flange
  (up, when the jaws point down), as the Cartesian gripper's frame."""
  fx, fy, fz = scene.FINGER_HALF
  palm = scene.PALM_HALF
  length = 2 * fz + 2 * palm[2]  # flange to fingertips
  fingers = "".join(
    f"""
          <body name="finger_{side}" gravcomp="1">
            <joint name="finger_{side}" type="slide" axis="{sign} 0 0"
              range="0 {scene.FINGER_OPEN}" damping="{scene.FINGER_DAMPING}"
              armature="0.02"/>
            <geom name="finger_{side}" type="box" size="{fx} {fy} {fz}"
              pos="{sign * fx} 0 {fz}" mass="0.05"
              friction="1.5 0.005 0.0001" rgba="0.8 0.8 0.85 1"
              contype="2" conaffinity="0" solref="0.01 1"/>
          </body>"""
    for side, sign in (("left", 1), ("right", -1))
  )
  return f"""
        <body name="tip" pos="0 0 {length:.6g}" quat="0 1 0 0" gravcomp="1">
          <geom name="palm" type="box" size="{_fmt(palm)}"
            pos="0 0 {2 * fz + palm[2]:.6g}" mass="0.3"
            rgba="0.25 0.25 0.3 1" {_VISUAL}/>
          <site name="grasp" pos="0 0 0.02"/>{fingers}
        </body>"""


def body_xml() -> str:
  """The arm's MJCF bodies (worldbody children)."""
  closing = ""
  inner = f"""
      <body name="hand" pos="{_fmt(_HAND[0])}" quat="{_fmt(_HAND[1])}"
        gravcomp="1">
        <geom type="cylinder" size="0.035 0.012" pos="0 0 0.012"
          rgba="0.1 0.1 0.1 1" mass="0.2" {_VISUAL}/>{_tip_body()}
      </body>"""
  offsets = [c[1] for c in _CHAIN[1:]] + [_HAND[0]]
  lines = []
  for (name, pos, quat, rng, mass, inertia), child, radius in zip(
    _CHAIN, offsets, _RADII, strict=True
  ):
    bone = np.asarray(child, float)
    fromto = f"0 0 0 {_fmt(bone)}" if np.linalg.norm(bone) > 1e-6 else None
    geom = (
      f'<geom type="capsule" fromto="{fromto}" size="{radius}" '
      f'rgba="0.5 0.1 0.1 1" mass="0" {_VISUAL}/>'
      if fromto
      else f'<geom type="sphere" size="{radius}" rgba="0.5 0.1 0.1 1" '
      f'mass="0" {_VISUAL}/>'
    )
    i = len(lines)
    lines.append(
      f"""
      <body name="{name}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">
        <inertial pos="0 0 0" mass="{mass}" diaginertia="{_fmt(inertia)}"/>
        <joint name="{JOINTS[i]}" axis="0 0 1" range="{rng[0]} {rng[1]}"
          damping="1" armature="{_ARMATURE[i]}"/>
        {geom}"""
    )
    closing += "\n      </body>"
  base_quat = (np.sqrt(0.5), 0.0, 0.0, -np.sqrt(0.5))  # forward = -y
  return (
    f"""
    <body name="arm_base" pos="{_fmt(BASE_POS)}" quat="{_fmt(base_quat)}">
      <geom type="cylinder" size="0.08 0.04" pos="0 0 0.04"
        rgba="0.2 0.2 0.2 1" {_VISUAL}/>"""
    + "".join(lines)
    + inner
    + closing
    + "\n    </body>"
  )


def actuator_xml() -> str:
  lines = [
    f'<velocity name="{j}" joint="{j}" kv="{kv}" '
    f'ctrlrange="{-MAX_JOINT_SPEED} {MAX_JOINT_SPEED}"/>'
    for j, kv in zip(JOINTS, _KV, strict=True)
  ]
  for side in ("left", "right"):
    lines.append(
      f'<position name="finger_{side}" joint="finger_{side}" '
      f'kp="{scene.FINGER_KP}" ctrlrange="0 {scene.FINGER_OPEN}" '
      f'forcerange="{-scene.FINGER_FORCE} {scene.FINGER_FORCE}"/>'
    )
  return "\n    ".join(lines)


def home_qpos(mj_model: mujoco.MjModel, tip=HOME_TIP) -> np.ndarray:
  """[7] joint angles that put the fingertips at `tip` pointing down, by
  damped least squares on the host (once, when a task is built)."""
  data = mujoco.MjData(mj_model)
  tip_id = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_BODY, "tip")
  # An elbow-up start: shoulder forward, elbow bent, wrist down.
  q = np.array([0.0, -1.0, 0.0, 1.9, 0.0, 0.7, 1.5708])
  target = np.asarray(tip, float)
  jacp = np.zeros((3, mj_model.nv))
  jacr = np.zeros((3, mj_model.nv))
  for _ in range(300):
    data.qpos[:NUM_JOINTS] = q
    mujoco.mj_kinematics(mj_model, data)
    mujoco.mj_comPos(mj_model, data)
    err = np.concatenate(
      [target - data.xpos[tip_id], _down_error(data.xmat[tip_id], 0.0, np)]
    )
    if np.linalg.norm(err) < 1e-6:
      break
    mujoco.mj_jacBody(mj_model, data, jacp, jacr, tip_id)
    jac = np.concatenate([jacp, jacr])[:, :NUM_JOINTS]
    q = q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
  return q.astype(np.float32)


def _down_error(xmat, yaw, xp=jnp):
  """Rotation vector (world frame, small angle) from the frame `xmat` to
  the jaws-down frame of heading `yaw`: x = (cos, sin, 0), z = up (the tip
  frame's z points back toward the flange). `xp`: numpy or jax.numpy."""
  c, s = xp.cos(yaw), xp.sin(yaw)
  want = xp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
  have = xp.reshape(xmat, (3, 3))
  return 0.5 * sum(xp.cross(have[:, i], want[:, i]) for i in range(3))


def compiler_options() -> dict[str, str] | None:
  """XLA options for programs that step this arm. On XLA:CPU (jax 0.10,
  MuJoCo 4.0) the fusion pass duplicates work along the 13-body chain
  exponentially: `mjx.kinematics` of an 8-hinge chain took 860 ms (6: 5 ms)
  and an arm substep 3.2 ms inside a scan; without the pass 0.15 ms per
  world-substep at 32 worlds (the Cartesian gripper: 0.044 fused, 0.11
  unfused). Other backends keep their defaults."""
  if jax.default_backend() == "cpu":
    return {"xla_disable_hlo_passes": "fusion"}
  return None


random_action = functools.partial(robot_lib.random_action, num_moves=NUM_JOINTS)
add_noise = robot_lib.add_noise


def make_arm7(mj_model: mujoco.MjModel) -> robot_lib.Robot:
  """The arm's pure functions for a scene built with `body_xml` and
  `actuator_xml` (its joints the first qpos entries)."""

  def name2id(kind, name):
    return mujoco.mj_name2id(mj_model, kind, name)

  joints = [name2id(mujoco.mjtObj.mjOBJ_JOINT, j) for j in JOINTS]
  fingers = [
    name2id(mujoco.mjtObj.mjOBJ_JOINT, f"finger_{s}") for s in ("left", "right")
  ]
  if list(mj_model.jnt_qposadr[joints + fingers]) != list(range(9)):
    raise ValueError("the arm's joints and fingers must be qpos[:9]")
  tip_id = name2id(mujoco.mjtObj.mjOBJ_BODY, "tip")
  home = home_qpos(mj_model)
  open_fingers = np.full((2,), scene.FINGER_OPEN, np.float32)

  def start_qpos(key):
    noise = START_NOISE * jax.random.normal(key, (NUM_JOINTS,))
    return jnp.concatenate([home + noise, open_fingers])

  def rest_ctrl(qpos):
    del qpos
    return jnp.concatenate([jnp.zeros(NUM_JOINTS), open_fingers])

  def control(data, action):
    action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    closed = action[7] > 0
    finger = scene.FINGER_OPEN * (1.0 - action[7]) / 2.0
    ctrl = jnp.concatenate(
      [MAX_JOINT_SPEED * action[:NUM_JOINTS], jnp.stack([finger, finger])]
    )
    return ctrl, closed.astype(jnp.float32)

  def tip(data):
    return data.xpos[tip_id]

  def yaw(data):
    xmat = data.xmat[tip_id]
    return jnp.arctan2(xmat[1, 0], xmat[0, 0])

  def proprio(data, closed):
    del closed
    q = data.qpos[:NUM_JOINTS]
    return jnp.concatenate(
      [
        jnp.sin(q),
        jnp.cos(q),
        data.qvel[:NUM_JOINTS],
        data.qpos[7:9] / scene.FINGER_OPEN,
        tip(data),
        data.xquat[tip_id],
      ]
    ).astype(jnp.float32)

  def cartesian_action(model, data, translation, dyaw, close, step_s):
    """Joint velocities that move the fingertips by `translation` (metres)
    and turn the jaws by `dyaw` over the next `step_s` seconds, jaws
    kept pointing down; `close` the gripper command."""
    velocity = translation / step_s
    speed = jnp.linalg.norm(velocity)
    velocity = velocity * jnp.minimum(1.0, MAX_TIP_SPEED / (speed + 1e-9))
    turn = _down_error(data.xmat[tip_id], yaw(data) + dyaw) / step_s
    # A reset state holds positions only: the Jacobian needs com_pos's
    # motion axes (cdof) and subtree centres.
    data = mjx.com_pos(model, data)
    jacp, jacr = support.jac(model, data, data.xpos[tip_id], tip_id)
    jac = jnp.concatenate([jacp.T, jacr.T])[:, :NUM_JOINTS]  # [6, 7]
    twist = jnp.concatenate([velocity, turn])
    lam = jnp.eye(6) * DAMPING**2
    qdot = jac.T @ jnp.linalg.solve(jac @ jac.T + lam, twist)
    gripper = jnp.where(close, 1.0, -1.0)
    return jnp.concatenate(
      [jnp.clip(qdot / MAX_JOINT_SPEED, -1.0, 1.0), gripper[None]]
    ).astype(jnp.float32)

  return robot_lib.Robot(
    name="arm7",
    action_size=ACTION_SIZE,
    proprio_size=PROPRIO_SIZE,
    num_qpos=NUM_JOINTS + 2,
    start_qpos=start_qpos,
    rest_ctrl=rest_ctrl,
    control=control,
    tip=tip,
    yaw=yaw,
    fingers=lambda data: data.qpos[7:9],
    finger_speed=lambda data: jnp.max(jnp.abs(data.qvel[7:9])),
    proprio=proprio,
    cartesian_action=cartesian_action,
    random_action=random_action,
    add_noise=add_noise,
  )
