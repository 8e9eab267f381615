"""The tabletop scene shared by the manipulation tasks, written as MJCF.

A floor plane (the tray bottom, z = 0), optionally a 30x30 cm tray with 5 cm
walls, a Cartesian parallel-jaw gripper and a few free objects, all built from
primitives that both MJX collision and the JAX ray-cast camera support (no
ellipsoid-box pairs, no cylinders, one dummy material for `mjx.ray`).

The gripper is four joints on one body (slide x, y, z and a yaw hinge) plus
two slide fingers, each driven by a position actuator. Its frame origin is
between the fingertips, so the z joint is the fingertips' height above the
tray floor. Gravity compensation holds it up; joint damping is integrated
implicitly by MuJoCo's Euler integrator, so the gains below are stable at
dt = 5 ms and a 3 cm set-point step settles (to < 1 mm) in about 0.08 s.

Contacts are filtered with contype/conaffinity bits so only the pairs that
matter exist (MJX checks every candidate pair on every substep):

  floor, wall planes   contype 1, conaffinity 0   -> touch objects only
  objects              contype 1, conaffinity 3   -> touch all of the above
  fingers              contype 2, conaffinity 0   -> touch objects only
  palm, wall boxes     contype 0, conaffinity 0   -> visual only

The walls collide through invisible planes (group 3, 0.5 mm behind the visual
boxes' inner faces): plane-box makes 4 contacts where box-box would be
checked with the costlier separating-axis code.
"""

from typing import NamedTuple

import numpy as np

# Geometry (metres).
TRAY_HALF = 0.15  # inner half-width of the tray
WALL_HEIGHT = 0.05
WALL_THICKNESS = 0.01
FINGER_HALF = (0.006, 0.012, 0.025)  # finger box half-sizes (x, y, z)
FINGER_OPEN = 0.045  # finger joint when open: inner face 4.5 cm off centre
PALM_HALF = (0.05, 0.015, 0.01)
WORKSPACE_LOW = (-0.12, -0.12, 0.004)  # gripper set-point limits (x, y, z)
WORKSPACE_HIGH = (0.12, 0.12, 0.25)
WRIST_CAMERA_HEIGHT = 0.045  # above the fingertips
HANDS = ("left_", "right_")  # name prefixes of a two-gripper robot's parts

# The scene's cameras, what the agent may see through.
CAMERAS = {
  "overhead": "fixed, over the shoulder (QT-Opt's and Visionary's view)",
  "wrist": (
    f"{WRIST_CAMERA_HEIGHT * 100:g} cm above the fingertips, looking down; "
    "moves with the gripper in x-y-z but not with its yaw (MuJoCo's track "
    "mode), so image axes stay world axes"
  ),
}

# Gains. Arm axes: moving mass ~0.46 kg (+ armature); omega ~ 60 rad/s,
# critically damped. Fingers: stiff and force-limited, so the grip force is
# set by `FINGER_FORCE` whatever the object's width.
ARM_KP = 2000.0
ARM_DAMPING = 60.0
YAW_KP = 20.0
YAW_DAMPING = 0.5
FINGER_KP = 400.0
FINGER_DAMPING = 10.0
FINGER_FORCE = 4.0

# Contact bits.
_STATIC = 'contype="1" conaffinity="0"'
_OBJECT = 'contype="1" conaffinity="3" solref="0.01 1"'
_FINGER = 'contype="2" conaffinity="0" solref="0.01 1"'
HANDLE = 'contype="0" conaffinity="2" solref="0.01 1"'  # touches fingers only
_VISUAL = 'contype="0" conaffinity="0"'

OBJECT_DENSITY = 800.0  # kg/m^3


class ObjectSpec(NamedTuple):
  """A free object: its primitive type and default MJCF size."""

  kind: str  # "box" (half-sizes), "sphere" (radius) or "capsule" (r, half)
  size: tuple[float, ...]
  extra: str = ""  # MJCF of more geoms on the same body (a pot's handles)


# Object families of the grasp task (spec C.2): box sides 2-4 cm, spheres of
# radius 1.5-2.5 cm, capsules of radius 1-1.5 cm and half-length 1.5-3 cm.
# The defaults are the middles of the ranges `randomize_objects` samples.
GRASP_FAMILIES = {
  "box": ObjectSpec("box", (0.015, 0.015, 0.015)),
  "sphere": ObjectSpec("sphere", (0.02,)),
  "capsule": ObjectSpec("capsule", (0.0125, 0.0225)),
}
CUBE = ObjectSpec("box", (0.02, 0.02, 0.02))  # stack task: 4 cm cubes


def _fmt(values) -> str:
  return " ".join(f"{v:.6g}" for v in np.ravel(values))


def _walls() -> list[str]:
  """Visual wall boxes and the invisible collision planes behind them."""
  h, t, z = TRAY_HALF, WALL_THICKNESS / 2, WALL_HEIGHT / 2
  outer = h + 2 * t
  lines = []
  for name, pos, size in (
    ("wall_px", (h + t, 0, z), (t, outer, z)),
    ("wall_nx", (-h - t, 0, z), (t, outer, z)),
    ("wall_py", (0, h + t, z), (h, t, z)),
    ("wall_ny", (0, -h - t, z), (h, t, z)),
  ):
    lines.append(
      f'<geom name="{name}" type="box" pos="{_fmt(pos)}" '
      f'size="{_fmt(size)}" rgba="0.55 0.45 0.35 1" {_VISUAL}/>'
    )
  # A plane's normal is its local z; zaxis points it into the tray.
  d = h + 0.0005
  for name, pos, zaxis in (
    ("wall_plane_px", (d, 0, z), (-1, 0, 0)),
    ("wall_plane_nx", (-d, 0, z), (1, 0, 0)),
    ("wall_plane_py", (0, d, z), (0, -1, 0)),
    ("wall_plane_ny", (0, -d, z), (0, 1, 0)),
  ):
    lines.append(
      f'<geom name="{name}" type="plane" pos="{_fmt(pos)}" '
      f'zaxis="{_fmt(zaxis)}" size="{h:.6g} {z:.6g} 0.01" group="3" '
      f'rgba="0.55 0.45 0.35 1" condim="1" priority="1" {_STATIC}/>'
    )
  return lines


def gripper_xml(prefix: str = "", attached: str = "") -> str:
  """The Cartesian gripper's MJCF body; `prefix` starts every name in it
  (a second gripper needs one, `HANDS`). The body sits at the origin, so
  its x, y, z joints are the fingertips' world position. `attached`: MJCF
  of child bodies fixed in the hand (in the fingertips' frame; the objects
  of a task that has the robot hold them, Bimanual Peg-in-hole)."""
  fx, fy, fz = FINGER_HALF
  lo, hi = WORKSPACE_LOW, WORKSPACE_HIGH
  arm = f'damping="{ARM_DAMPING}" armature="0.05"'
  finger = f'damping="{FINGER_DAMPING}" armature="0.02"'
  palm_z = 2 * fz + PALM_HALF[2]
  p = prefix
  fingers = "".join(
    f"""
      <body name="{prefix}finger_{side}" gravcomp="1">
        <joint name="{prefix}finger_{side}" type="slide" axis="{sign} 0 0"
          range="0 {FINGER_OPEN}" {finger}/>
        <geom name="{prefix}finger_{side}" type="box" size="{fx} {fy} {fz}"
          pos="{sign * fx} 0 {fz}" mass="0.05" friction="1.5 0.005 0.0001"
          rgba="0.8 0.8 0.85 1" {_FINGER}/>
      </body>"""
    for side, sign in (("left", 1), ("right", -1))
  )
  return f"""
    <body name="{p}gripper" gravcomp="1">
      <joint name="{p}x" type="slide" axis="1 0 0" range="{lo[0]} {hi[0]}"
        {arm}/>
      <joint name="{p}y" type="slide" axis="0 1 0" range="{lo[1]} {hi[1]}"
        {arm}/>
      <joint name="{p}z" type="slide" axis="0 0 1" range="0 {hi[2] + 0.05}"
        {arm}/>
      <joint name="{p}yaw" type="hinge" axis="0 0 1" limited="false"
        damping="{YAW_DAMPING}" armature="0.002"/>
      <geom name="{p}palm" type="box" size="{_fmt(PALM_HALF)}"
        pos="0 0 {palm_z}" mass="0.3" rgba="0.25 0.25 0.3 1" {_VISUAL}/>
      <site name="{p}grasp" pos="0 0 0.02"/>
      <camera name="{p}wrist" mode="track" pos="0 0 {WRIST_CAMERA_HEIGHT}"
        xyaxes="1 0 0 0 1 0" fovy="75"/>
{fingers}{attached}    </body>"""


def gripper_actuator_xml(prefix: str = "") -> str:
  """The Cartesian gripper's actuators (names as `gripper_xml(prefix)`)."""
  lo, hi = WORKSPACE_LOW, WORKSPACE_HIGH
  p = prefix
  lines = []
  for i, axis in enumerate("xyz"):
    lines.append(
      f'<position name="{p}{axis}" joint="{p}{axis}" kp="{ARM_KP}" '
      f'ctrlrange="{lo[i]} {hi[i]}"/>'
    )
  lines.append(
    f'<position name="{p}yaw" joint="{p}yaw" kp="{YAW_KP}" '
    'ctrlrange="-3.1416 3.1416"/>'
  )
  for side in ("left", "right"):
    lines.append(
      f'<position name="{p}finger_{side}" joint="{p}finger_{side}" '
      f'kp="{FINGER_KP}" ctrlrange="0 {FINGER_OPEN}" '
      f'forcerange="{-FINGER_FORCE} {FINGER_FORCE}"/>'
    )
  return "\n    ".join(lines)


def _object(index: int, spec: ObjectSpec) -> str:
  # Objects start parked well apart; reset places them in the tray.
  x = -0.1 + 0.1 * index
  return f"""
    <body name="object{index}" pos="{x:.6g} 0 0.1">
      <freejoint name="object{index}"/>
      <geom name="object{index}" type="{spec.kind}" size="{_fmt(spec.size)}"
        density="{OBJECT_DENSITY}" rgba="1 1 1 1" {_OBJECT}/>{spec.extra}
    </body>"""


def scene_xml(
  objects: tuple[ObjectSpec, ...],
  *,
  walls: bool = True,
  max_contact_points: int = -1,
  solver: str = "Newton",
  jacobian: str = "sparse",
  robot: tuple[str, str] | None = None,
) -> str:
  """Returns the MJCF of the scene.

  Args:
    objects: the free objects, in order; body, joint and geom `object<i>`
      (none where the robot holds the task's objects, `robot`).
    walls: whether to build the tray walls.
    max_contact_points: if > 0, MJX keeps only this many deepest contacts
      of all candidate pairs (fewer constraint rows for the solver). The
      tasks leave it off: with it, a vmapped MJX step of this scene hung on
      XLA:CPU (jax 0.10.2) at batch 64 exactly (65 and 128 ran).
    robot: (worldbody MJCF, actuator MJCF) of the robot
      (`envs.robots.scene_parts`); None: the Cartesian gripper.

  Returns:
    An MJCF string for `mujoco.MjModel.from_xml_string`.
  """
  for spec in objects:
    if spec.kind not in ("box", "sphere", "capsule"):
      raise ValueError(f"unsupported object kind {spec.kind!r}")
  custom = ""
  if max_contact_points > 0:
    custom = (
      "<custom>"
      f'<numeric name="max_contact_points" data="{max_contact_points}"/>'
      "</custom>"
    )
  robot_body, robot_actuators = robot or (
    gripper_xml(),
    gripper_actuator_xml(),
  )
  body = "\n    ".join(_walls()) if walls else ""
  body += "".join(_object(i, s) for i, s in enumerate(objects))
  return f"""<mujoco model="tray">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.005" iterations="4" ls_iterations="6"
    cone="pyramidal" solver="{solver}" jacobian="{jacobian}"/>
  {custom}
  <visual><global offwidth="640" offheight="640"/></visual>
  <asset><material name="dummy" rgba="1 1 1 1"/></asset>
  <worldbody>
    <light name="sun" pos="0 0 1" dir="0.3 0.2 -1" directional="true"/>
    <geom name="floor" type="plane" size="1 1 0.01"
      rgba="0.42 0.44 0.46 1" {_STATIC}/>
    <camera name="overhead" pos="0 -0.36 0.36" xyaxes="1 0 0 0 0.7071 0.7071"
      fovy="45"/>
    {robot_body}
    {body}
  </worldbody>
  <actuator>
    {robot_actuators}
  </actuator>
</mujoco>
"""
