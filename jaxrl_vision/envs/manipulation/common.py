"""Pieces shared by the MJX manipulation tasks (grasp, stack).

Everything here is a pure function of pytrees. The few static facts a task
needs about its scene (joint addresses, geom ids, object kinds) are read once
from the `mujoco.MjModel` into a `Layout` when the task is built; everything
that may differ between worlds (sizes, masses, colours, the camera pose) is
read from the traced `mjx.Model` argument.

Action (float32 [7], shared by all tasks, spec B1.1):
  a[0:3]  T, the Cartesian set-point displacement, in [-1, 1] per axis and
          scaled to +-`MAX_TRANSLATION` (3 cm), relative to the measured
          gripper position ("desired - current"), clipped to the workspace;
  a[3:5]  (sin, cos) of a yaw displacement, clipped to +-`MAX_YAW` (0.25
          rad); (0, 0) means no rotation;
  a[5:7]  (open, close) scores: the fingers close when close > open.
"""

import inspect
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import scene

MAX_TRANSLATION = 0.03  # metres per agent step and axis
MAX_YAW = 0.25  # radians per agent step
ACTION_SIZE = 7
NUM_GRIPPER_DOF = 6  # x, y, z, yaw, finger_left, finger_right
CONTACT_TOLERANCE = 1e-3  # metres: a pair this close counts as touching
CAMERA = "overhead"
# Spec C.1 randomisation ranges.
CAMERA_SHIFT = 0.01  # metres, per axis
CAMERA_TILT = np.deg2rad(2.0)  # radians, per axis of the camera frame
MASS_SCALE = (0.5, 2.0)
FRICTION_SCALE = (0.5, 1.5)


class Layout(NamedTuple):
  """Static facts about a scene, read from the `mujoco.MjModel` once."""

  object_kinds: tuple[str, ...]  # per object: "box", "sphere" or "capsule"
  object_bodies: np.ndarray  # [N] int body ids
  object_geoms: np.ndarray  # [N] int geom ids
  object_qpos: np.ndarray  # [N] int qpos address of each free joint
  object_qvel: np.ndarray  # [N] int qvel address of each free joint
  finger_geoms: np.ndarray  # [2] int geom ids (left, right); [4] with two
  # grippers (left hand's left, right; right hand's left, right)
  static_geoms: np.ndarray  # [S] int: the floor and the wall planes
  camera_id: int  # the camera the agent sees through


class ManipPhysics(NamedTuple):
  """The simulator state of one world plus per-episode task bookkeeping."""

  data: mjx.Data  # MJX state; qpos[:6] is the gripper, then the objects
  t: jax.Array  # () int32, agent steps taken in this episode
  gripper_closed: jax.Array  # () float32, 1 after a close command, else 0
  # ([2], per hand, for the two-gripper robot)
  object_rgb: jax.Array  # [N, 3] float32 in [0, 1], this episode's colours
  lighting: render.Lighting  # this episode's light
  stable_steps: jax.Array  # () int32, consecutive steps the goal held
  camera_shift: jax.Array  # [3] float32, world-frame offset of the camera
  camera_rot: jax.Array  # [3, 3] float32, rotation in the camera's frame


class ManipulationTask(NamedTuple):
  """An MJX task with its privileged helpers, all pure functions.

  env: the `types.Env` (reset, step, init_model, spec).
  expert_action(model, state, key, noise_scale, aim_offset) -> action [7]: a
    scripted policy that reads privileged state (object poses); `noise_scale`
    adds Gaussian noise to its translation and yaw (0 = deterministic);
    `aim_offset` ([2] metres, None = none) makes it reach for a point that
    far off the object it picks.
  random_action(key) -> action [7]: the uniformly random policy.
  randomize_model(model, key, num_worlds) -> (models, in_axes): per-world
    model randomisation, for `jax.vmap(env.step, in_axes=(in_axes, 0, 0))`.
  mj_model: the `mujoco.MjModel` the task was built from (host side, for
    native rendering and benchmarks).
  layout: the scene's static ids.
  observe(model, physics) -> obs: the observation of a physics state (for
    resets to recorded states, `envs.suite.curriculum`); None if the task
    does not expose it.
  robot: the `envs.robots.Robot` of a suite task (None for QT-Opt's).
  straight_descent(model, state, key) -> action: the expert without x-y
    skill (it grasps straight below where it starts), a reference policy;
    None: the expert aiming at the fingertips' own x-y (one hand, one
    target object).
  """

  env: types.Env
  expert_action: Callable[..., jax.Array]
  random_action: Callable[[jax.Array], jax.Array]
  randomize_model: Callable[..., tuple[mjx.Model, mjx.Model]]
  mj_model: mujoco.MjModel
  layout: Layout
  observe: Callable[..., Any] | None = None
  robot: Any = None  # the suite tasks' `envs.robots.Robot`
  straight_descent: Callable[..., jax.Array] | None = None


def make_layout(
  mj_model: mujoco.MjModel,
  num_objects: int,
  camera: str = CAMERA,
  robot: str = "gripper",
) -> Layout:
  """Reads object and finger ids from a model built by `scene.scene_xml`;
  `camera` (a `scene.CAMERAS` name) is the one the agent sees through. With
  the Cartesian `robot` "gripper" its joints must be the first six qpos
  entries, with "two_grippers" the two hands' (`scene.HANDS`) the first
  twelve (other robots check their own, `envs.robots`)."""
  if camera not in scene.CAMERAS:
    raise ValueError(
      f"unknown camera {camera!r}; valid cameras: {sorted(scene.CAMERAS)}"
    )

  def geom(name):
    return mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_GEOM, name)

  def body(name):
    return mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_BODY, name)

  def joint(name):
    return mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_JOINT, name)

  names = [f"object{i}" for i in range(num_objects)]
  geoms = np.array([geom(n) for n in names], int)  # int when empty too
  joints = np.array([joint(n) for n in names], int)
  kind_of = {
    int(mujoco.mjtGeom.mjGEOM_BOX): "box",
    int(mujoco.mjtGeom.mjGEOM_SPHERE): "sphere",
    int(mujoco.mjtGeom.mjGEOM_CAPSULE): "capsule",
  }
  kinds = tuple(kind_of[int(t)] for t in mj_model.geom_type[geoms])
  static = ["floor"] + [f"wall_plane_{s}" for s in ("px", "nx", "py", "ny")]
  static_ids = np.array([g for g in map(geom, static) if g >= 0])
  # "two_grippers" is two Cartesian grippers named by `scene.HANDS`.
  hands = scene.HANDS if robot == "two_grippers" else ("",)
  gripper_joints = [
    joint(p + n)
    for p in hands
    for n in ("x", "y", "z", "yaw", "finger_left", "finger_right")
  ]
  num_dof = NUM_GRIPPER_DOF * len(hands)
  if robot in ("gripper", "two_grippers") and (
    list(mj_model.jnt_qposadr[gripper_joints]) != list(range(num_dof))
  ):
    raise ValueError(
      f"the gripper joints must be the first {num_dof} qpos entries"
    )
  fingers = [geom(p + f"finger_{s}") for p in hands for s in ("left", "right")]
  return Layout(
    object_kinds=kinds,
    object_bodies=np.array([body(n) for n in names], int),
    object_geoms=geoms,
    object_qpos=mj_model.jnt_qposadr[joints],
    object_qvel=mj_model.jnt_dofadr[joints],
    finger_geoms=np.array(fingers),
    static_geoms=static_ids,
    camera_id=mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, camera),
  )


# --- Placement -------------------------------------------------------------


def _yaw_quat(yaw: jax.Array) -> jax.Array:
  return jnp.stack(
    [
      jnp.cos(yaw / 2),
      jnp.zeros_like(yaw),
      jnp.zeros_like(yaw),
      jnp.sin(yaw / 2),
    ],
    -1,
  )


def _lying_capsule_quat(yaw: jax.Array) -> jax.Array:
  """yaw about z after a quarter turn about y: the capsule's axis lies flat."""
  c, s = jnp.cos(yaw / 2), jnp.sin(yaw / 2)
  r = np.sqrt(0.5)
  # (c, 0, 0, s) * (r, 0, r, 0)
  return jnp.stack([c * r, -s * r, c * r, s * r], -1)


def rest_height(kind: str, size: jax.Array) -> jax.Array:
  """Centre height of an object resting flat on the floor (capsules lie)."""
  return size[2] if kind == "box" else size[0]


def grid_cells(num_objects: int, extent: float) -> np.ndarray:
  """Cell centres [C, 2] of the smallest square grid with >= N cells."""
  side = int(np.ceil(np.sqrt(num_objects)))
  side = max(side, 2)
  centres = np.linspace(-extent, extent, side)
  xx, yy = np.meshgrid(centres, centres, indexing="ij")
  return np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float32)


def place_objects(
  model: mjx.Model,
  layout: Layout,
  qpos: jax.Array,
  key: jax.Array,
  *,
  extent: float,
  jitter: float,
) -> jax.Array:
  """Puts the objects at rest in distinct random grid cells, random yaw.

  Objects start exactly at their resting height, so the settle at reset only
  has to absorb contact softness, not a fall.

  Args:
    model: the (possibly per-world) MJX model; sizes come from it.
    layout: the scene's static ids.
    qpos: [nq] float32 generalised positions to write into.
    key: randomness for cells, jitter and yaw.
    extent: cell centres lie on a grid spanning [-extent, extent]^2.
    jitter: uniform +-jitter (metres) around each cell centre.

  Returns:
    qpos [nq] with every object's free joint set.
  """
  num = len(layout.object_kinds)
  cells = grid_cells(num, extent)
  cell_key, jitter_key, yaw_key = jax.random.split(key, 3)
  chosen = jax.random.permutation(cell_key, cells.shape[0])[:num]
  xy = jnp.asarray(cells)[chosen] + jax.random.uniform(
    jitter_key, (num, 2), minval=-jitter, maxval=jitter
  )
  yaw = jax.random.uniform(yaw_key, (num,), minval=-jnp.pi, maxval=jnp.pi)
  sizes = model.geom_size[layout.object_geoms]  # [N, 3]
  for i, kind in enumerate(layout.object_kinds):
    z = rest_height(kind, sizes[i])
    quat = (
      _lying_capsule_quat(yaw[i]) if kind == "capsule" else _yaw_quat(yaw[i])
    )
    pose = jnp.concatenate([xy[i], z[None], quat])
    qpos = jax.lax.dynamic_update_slice(qpos, pose, (layout.object_qpos[i],))
  return qpos


# --- Appearance ------------------------------------------------------------


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """[..., 3] hue, saturation, value in [0, 1] -> [..., 3] rgb in [0, 1]."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  k = jnp.stack([5.0, 3.0, 1.0])  # r, g, b
  k = jnp.mod(k + h[..., None] * 6.0, 6.0)
  f = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
  return v[..., None] - v[..., None] * s[..., None] * f


def random_colors(
  key: jax.Array, num: int, hue_range: tuple[float, float]
) -> jax.Array:
  """[num, 3] saturated colours with hues drawn from `hue_range`.

  Disjoint hue ranges give separable train and test appearance.
  """
  hue_key, sat_key, val_key = jax.random.split(key, 3)
  hue = jax.random.uniform(
    hue_key, (num,), minval=hue_range[0], maxval=hue_range[1]
  )
  sat = jax.random.uniform(sat_key, (num,), minval=0.6, maxval=1.0)
  val = jax.random.uniform(val_key, (num,), minval=0.6, maxval=1.0)
  return hsv_to_rgb(jnp.stack([jnp.mod(hue, 1.0), sat, val], -1))


def random_lighting(key: jax.Array) -> render.Lighting:
  """A light from above with a random tilt and brightness."""
  dir_key, diffuse_key, ambient_key = jax.random.split(key, 3)
  tilt = jax.random.uniform(dir_key, (2,), minval=-0.5, maxval=0.5)
  return render.Lighting(
    direction=jnp.concatenate([tilt, jnp.array([-1.0])]),
    diffuse=jax.random.uniform(diffuse_key, (), minval=0.5, maxval=0.8),
    ambient=jax.random.uniform(ambient_key, (), minval=0.2, maxval=0.4),
  )


def _rotation_xyz(angles: jax.Array) -> jax.Array:
  """[3, 3] rotation Rz @ Ry @ Rx for small angles [3] (radians)."""
  cx, cy, cz = jnp.cos(angles)
  sx, sy, sz = jnp.sin(angles)
  rx = jnp.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
  ry = jnp.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  rz = jnp.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
  return rz @ ry @ rx


def random_camera_jitter(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(shift [3], rotation [3, 3]): +-1 cm per axis, +-2 degrees per axis."""
  shift_key, tilt_key = jax.random.split(key)
  shift = jax.random.uniform(
    shift_key, (3,), minval=-CAMERA_SHIFT, maxval=CAMERA_SHIFT
  )
  tilt = jax.random.uniform(
    tilt_key, (3,), minval=-CAMERA_TILT, maxval=CAMERA_TILT
  )
  return shift.astype(jnp.float32), _rotation_xyz(tilt).astype(jnp.float32)


def no_camera_jitter() -> tuple[jax.Array, jax.Array]:
  return jnp.zeros(3, jnp.float32), jnp.eye(3, dtype=jnp.float32)


def jitter_camera(
  data: mjx.Data, camera_id: int, shift: jax.Array, rot: jax.Array
) -> mjx.Data:
  """`data` with camera `camera_id` moved by `shift` (world frame) and turned
  by `rot` (in its own frame). Only the copy handed to the camera changes:
  the physics never sees it."""
  xpos, xmat = jnp.asarray(data.cam_xpos), jnp.asarray(data.cam_xmat)
  xpos = xpos.at[camera_id].add(shift)
  xmat = xmat.at[camera_id].set(xmat[camera_id] @ rot)
  return data.replace(cam_xpos=xpos, cam_xmat=xmat)


def observe(
  camera: render.Camera,
  layout: Layout,
  model: mjx.Model,
  physics: ManipPhysics,
  depth: bool = False,
) -> dict[str, jax.Array]:
  """The agent's observation: camera image, gripper state, height, aperture
  (and with `depth` the camera's z-depth, "depth": [H, W] float32 metres).

  Objects are white in the model and take this episode's colour here: the
  camera shades every geom as rgba * (ambient + diffuse * Lambert), so
  multiplying an object's pixels by its colour equals rendering it in that
  colour (up to uint8 rounding). Per-episode colours thus stay in the state
  and the model is never modified inside a trace.

  Returns:
    {"image": [H, W, 3] uint8, "gripper_closed": () float32 (the command),
     "height": () float32 fingertip height above the tray floor (metres),
     "aperture": () float32 measured finger opening, 1 = open, 0 = shut:
     a gripper closed on an object stops in between, as a real gripper's
     position sensor reports}.
  """
  data = jitter_camera(
    physics.data, layout.camera_id, physics.camera_shift, physics.camera_rot
  )
  frame = camera.render(model, data, physics.lighting)
  # Tint table over geom ids, with a last row for background pixels (-1).
  ngeom = model.geom_size.shape[0]
  tint = jnp.ones((ngeom + 1, 3), jnp.float32)
  tint = tint.at[layout.object_geoms].set(physics.object_rgb)
  seg = jnp.where(frame.segmentation < 0, ngeom, frame.segmentation)
  image = jnp.round(frame.rgb.astype(jnp.float32) * tint[seg])
  extra = {"depth": frame.depth} if depth else {}
  return extra | {
    "image": image.astype(jnp.uint8),
    "gripper_closed": physics.gripper_closed.astype(jnp.float32),
    "height": physics.data.qpos[2].astype(jnp.float32),
    "aperture": jnp.clip(
      jnp.mean(physics.data.qpos[4:6]) / scene.FINGER_OPEN, 0.0, 1.0
    ).astype(jnp.float32),
  }


# --- Control ---------------------------------------------------------------


def setpoint(data: mjx.Data, action: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Maps an agent action to actuator set-points.

  Args:
    data: the current MJX state.
    action: [7] float32 (T[3], sin, cos, open, close); see the module doc.

  Returns:
    (ctrl [6] float32 set-points of x, y, z, yaw and the two fingers,
     closed () float32: 1 if the fingers are commanded closed).
  """
  action = jnp.asarray(action, jnp.float32)
  low = jnp.asarray(scene.WORKSPACE_LOW, jnp.float32)
  high = jnp.asarray(scene.WORKSPACE_HIGH, jnp.float32)
  xyz = jnp.clip(
    data.qpos[:3] + MAX_TRANSLATION * jnp.clip(action[:3], -1.0, 1.0),
    low,
    high,
  )
  dyaw = jnp.clip(jnp.arctan2(action[3], action[4]), -MAX_YAW, MAX_YAW)
  yaw = jnp.clip(data.qpos[3] + dyaw, -jnp.pi, jnp.pi)
  closed = action[6] > action[5]
  finger = jnp.where(closed, 0.0, scene.FINGER_OPEN)
  ctrl = jnp.concatenate([xyz, yaw[None], jnp.stack([finger, finger])])
  return ctrl.astype(jnp.float32), closed.astype(jnp.float32)


def lift_setpoint(
  data: mjx.Data, substep: jax.Array, num_substeps: int, height: float
) -> jax.Array:
  """Scripted lift: fingers closed, z ramped up by `height`, x/y/yaw held.

  The ramp reaches its top after 60% of the step's substeps, so the gripper
  has the rest of the step to catch up with its set-point.
  """
  start = data.qpos[:4]
  frac = jnp.minimum((substep + 1) / (0.6 * num_substeps), 1.0)
  z = jnp.minimum(start[2] + height * frac, scene.WORKSPACE_HIGH[2])
  return jnp.stack([start[0], start[1], z, start[3], 0.0, 0.0]).astype(
    jnp.float32
  )


def simulate(model: mjx.Model, data: mjx.Data, ctrls: jax.Array) -> mjx.Data:
  """Runs one `mjx.step` per row of `ctrls` [K, 6] (K static), in a scan."""

  def substep(d, ctrl):
    return mjx.step(model, d.replace(ctrl=ctrl)), None

  data, _ = jax.lax.scan(substep, data, ctrls)
  return data


def gripper_start_qpos(key: jax.Array) -> jax.Array:
  """[6] random start: x, y in +-4 cm, z = 10 cm, yaw 0, fingers open."""
  xy = jax.random.uniform(key, (2,), minval=-0.04, maxval=0.04)
  rest = jnp.array([0.10, 0.0, scene.FINGER_OPEN, scene.FINGER_OPEN])
  return jnp.concatenate([xy, rest]).astype(jnp.float32)


def reset_data(
  model: mjx.Model,
  qpos: jax.Array,
  num_settle_substeps: int,
  ctrl: jax.Array | None = None,
) -> mjx.Data:
  """Fresh MJX state at `qpos`, at rest.

  With `num_settle_substeps` = 0 only positions are computed: kinematics
  and the camera pose, which is all the first observation needs when
  objects were placed exactly at rest. The state holds no contacts
  (`touching` is False everywhere) until the first step, whose `mjx.step`
  computes its own: nothing reads a reset state's contacts, and collision
  is most of a reset's cost (3.7 of 6.9 s of its compile on the 2-core
  CPU), paid inside every step of `wrappers.auto_reset`. With > 0 the
  scene is simulated that long, for placements that may overlap. `ctrl`:
  the actuators' set-points (default: the Cartesian gripper's, its pose).
  """
  ctrl = qpos[:NUM_GRIPPER_DOF] if ctrl is None else ctrl
  data = mjx.make_data(model).replace(qpos=qpos, ctrl=ctrl)
  if num_settle_substeps <= 0:
    data = mjx.kinematics(model, data)
    return mjx.camlight(model, data)
  ctrls = jnp.broadcast_to(ctrl, (num_settle_substeps,) + ctrl.shape)
  return simulate(model, data, ctrls)


# --- Privileged queries ----------------------------------------------------


def touching(data: mjx.Data, geoms_a, geoms_b) -> jax.Array:
  """[A, B] bool: whether each geom of `geoms_a` touches each of `geoms_b`.

  A contact counts when its distance is below `CONTACT_TOLERANCE`. MJX
  contacts are a fixed-size list; far pairs simply have large distances.
  """
  contact = data._impl.contact  # pylint: disable=protected-access
  g1, g2 = contact.geom1, contact.geom2  # [C]
  close = contact.dist < CONTACT_TOLERANCE  # [C]
  a = jnp.asarray(geoms_a)[:, None, None]
  b = jnp.asarray(geoms_b)[None, :, None]
  pair = ((g1 == a) & (g2 == b)) | ((g1 == b) & (g2 == a))  # [A, B, C]
  return jnp.any(pair & close, axis=-1)


def object_yaw_targets(
  layout: Layout, data: mjx.Data, yaw: jax.Array | None = None
) -> jax.Array:
  """[N] gripper yaw displacement that would align the jaws with each object.

  Boxes: close on a pair of faces (90 degree symmetry). Lying capsules: close
  across the axis (180 degree symmetry). Spheres: any yaw (0). `yaw`: the
  jaws' heading (default: the Cartesian gripper's yaw joint).
  """
  yaw = data.qpos[3] if yaw is None else yaw
  xmat = data.xmat[layout.object_bodies]  # [N, 3, 3]
  out = []
  for i, kind in enumerate(layout.object_kinds):
    if kind == "box":
      target, period = jnp.arctan2(xmat[i, 1, 0], xmat[i, 0, 0]), jnp.pi / 2
    elif kind == "capsule":
      axis = jnp.arctan2(xmat[i, 1, 2], xmat[i, 0, 2])
      target, period = axis + jnp.pi / 2, jnp.pi
    else:
      target, period = yaw, jnp.pi
    delta = jnp.mod(target - yaw + period / 2, period) - period / 2
    out.append(delta)
  return jnp.stack(out)


def one_hot_select(
  index: jax.Array, num: int
) -> Callable[[jax.Array], jax.Array]:
  """Returns x -> x[index] along axis 0, as a one-hot weighted sum."""
  weights = (jnp.arange(num) == index).astype(jnp.float32)

  def pick(x):
    return jnp.tensordot(weights, x.astype(jnp.float32), axes=1)

  return pick


def approach(
  grip: jax.Array,
  target: jax.Array,
  dyaw: jax.Array,
  hover_height: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The open-gripper phase of a top grasp of an object at `target`.

  Travel at `hover_height`, descend once within 1.5 cm in x-y to 1 cm below
  the object's centre, and close once within 8 mm, 6 mm of that height and
  0.2 rad of the jaw alignment `dyaw`, holding still while closing.

  Args:
    grip: [3] gripper position (fingertips).
    target: [3] the object's centre.
    dyaw: () the yaw displacement that aligns the jaws with the object.
    hover_height: travel height of the fingertips (metres).

  Returns:
    (translation [3] metres, yaw displacement (), close () bool).
  """
  xy_err = target[:2] - grip[:2]
  dist = jnp.linalg.norm(xy_err)
  grasp_z = jnp.maximum(target[2] - 0.01, scene.WORKSPACE_LOW[2])
  z_goal = jnp.where(dist < 0.015, grasp_z, hover_height)
  ready = (dist < 0.008) & (grip[2] < grasp_z + 0.006) & (jnp.abs(dyaw) < 0.2)
  move = jnp.concatenate([xy_err, (z_goal - grip[2])[None]])
  translation = jnp.where(ready, 0.0, move)
  return translation, jnp.where(ready, 0.0, dyaw), ready


def make_action(
  translation: jax.Array, dyaw: jax.Array, close: jax.Array
) -> jax.Array:
  """Encodes (T in metres [3], yaw displacement, close flag) as an action."""
  t = jnp.clip(translation / MAX_TRANSLATION, -1.0, 1.0)
  dyaw = jnp.clip(dyaw, -MAX_YAW, MAX_YAW)
  close = jnp.asarray(close, jnp.float32)
  return jnp.concatenate(
    [t, jnp.stack([jnp.sin(dyaw), jnp.cos(dyaw), 1.0 - close, close])]
  ).astype(jnp.float32)


def add_noise(action: jax.Array, key: jax.Array, scale: float) -> jax.Array:
  """Gaussian noise on T (units of the [-1, 1] range) and on the yaw."""
  t_key, yaw_key = jax.random.split(key)
  t = jnp.clip(action[:3] + scale * jax.random.normal(t_key, (3,)), -1, 1)
  dyaw = jnp.arctan2(action[3], action[4])
  dyaw += scale * MAX_YAW * jax.random.normal(yaw_key)
  return jnp.concatenate(
    [t, jnp.stack([jnp.sin(dyaw), jnp.cos(dyaw)]), action[5:]]
  ).astype(jnp.float32)


def random_action(key: jax.Array) -> jax.Array:
  """A uniformly random action [7]: T, a yaw in +-0.25 rad, and a one-hot
  (open, close) command drawn by a coin flip.

  The gripper command is one-hot like the expert's and the CEM's, so that
  in a dataset mixing policies the action's format never tells them apart
  (a learner could otherwise score actions by their format, not their
  effect).
  """
  t_key, yaw_key, grip_key = jax.random.split(key, 3)
  t = jax.random.uniform(t_key, (3,), minval=-1.0, maxval=1.0)
  dyaw = jax.random.uniform(yaw_key, (), minval=-MAX_YAW, maxval=MAX_YAW)
  close = jax.random.bernoulli(grip_key).astype(jnp.float32)
  return jnp.concatenate(
    [t, jnp.stack([jnp.sin(dyaw), jnp.cos(dyaw), 1.0 - close, close])]
  ).astype(jnp.float32)


# --- Per-world randomisation -----------------------------------------------


def _inertia(kind: str, size: jax.Array, density: float):
  """(mass, diagonal inertia [3]) of a solid primitive, as MuJoCo computes."""
  if kind == "box":
    mass = density * 8.0 * size[0] * size[1] * size[2]
    sq = jnp.square(size)
    inertia = (
      mass / 3.0 * jnp.stack([sq[1] + sq[2], sq[0] + sq[2], sq[0] + sq[1]])
    )
  elif kind == "sphere":
    r = size[0]
    mass = density * 4.0 / 3.0 * jnp.pi * r**3
    inertia = jnp.full((3,), 0.4 * mass * r * r)
  else:
    r, half = size[0], size[1]
    height = 2.0 * half
    m_cyl = density * jnp.pi * r * r * height
    m_sph = density * 4.0 / 3.0 * jnp.pi * r**3
    mass = m_cyl + m_sph
    # Cylinder about a diameter plus two hemispheres shifted to the ends.
    side = m_cyl * (3 * r * r + height * height) / 12.0 + m_sph * (
      0.4 * r * r + 0.25 * height * height + 0.375 * r * height
    )
    inertia = jnp.stack([side, side, 0.5 * m_cyl * r * r + 0.4 * m_sph * r * r])
  return mass, inertia


def _bounds(kind: str, size: jax.Array):
  """(bounding-sphere radius, aabb half extents [3]) of a primitive."""
  if kind == "box":
    return jnp.linalg.norm(size), size
  if kind == "sphere":
    return size[0], jnp.full((3,), size[0])
  return size[0] + size[1], jnp.stack([size[0], size[0], size[0] + size[1]])


def with_object_bodies(
  model: mjx.Model,
  layout: Layout,
  sizes: jax.Array | None,
  mass_scale: jax.Array,
) -> mjx.Model:
  """Returns `model` with object sizes [N, 3] and masses scaled by
  `mass_scale` [N] from the solid-primitive mass at `scene.OBJECT_DENSITY`;
  `sizes` None keeps the model's sizes and scales the masses and inertias
  MuJoCo compiled, which count every geom of a body (a pot's handles, a
  nut's ring: `scene.ObjectSpec.extra`), not the main geom's alone.

  Everything MuJoCo derives from them follows: collision bounds, inertia and
  the constant inverse weights `body_invweight0` / `dof_invweight0` that the
  constraint solver's regularisation uses (for a free body these are 1/m and
  the mean of 1/I, as `mj_setConst` computes at qpos0). Builds per-world
  models outside env steps, never inside one.
  """
  geom_size = model.geom_size
  rbound, aabb = model.geom_rbound, model.geom_aabb
  mass, inertia = model.body_mass, model.body_inertia
  body_iw, dof_iw = model.body_invweight0, model.dof_invweight0
  for i, kind in enumerate(layout.object_kinds):
    g, b = layout.object_geoms[i], layout.object_bodies[i]
    if sizes is None:
      m, inert = model.body_mass[b], model.body_inertia[b]
    else:
      geom_size = geom_size.at[g].set(sizes[i])
      r, half = _bounds(kind, sizes[i])
      rbound = rbound.at[g].set(r)
      aabb = aabb.at[g, 3:].set(half)
      m, inert = _inertia(kind, sizes[i], scene.OBJECT_DENSITY)
    m, inert = m * mass_scale[i], inert * mass_scale[i]
    mass = mass.at[b].set(m)
    inertia = inertia.at[b].set(inert)
    translational, rotational = 1.0 / m, jnp.mean(1.0 / inert)
    body_iw = body_iw.at[b].set(jnp.stack([translational, rotational]))
    dof = layout.object_qvel[i]
    dof_iw = dof_iw.at[dof : dof + 3].set(translational)
    dof_iw = dof_iw.at[dof + 3 : dof + 6].set(rotational)
  return model.replace(
    geom_size=geom_size,
    geom_rbound=rbound,
    geom_aabb=aabb,
    body_mass=mass,
    body_inertia=inertia,
    body_invweight0=body_iw,
    dof_invweight0=dof_iw,
  )


RANDOMIZED_FIELDS = (
  "geom_size",
  "geom_rbound",
  "geom_aabb",
  "geom_friction",
  "body_mass",
  "body_inertia",
  "body_invweight0",
  "dof_invweight0",
)


def batch_axes(model: mjx.Model, fields=RANDOMIZED_FIELDS) -> mjx.Model:
  """vmap in_axes for a model whose `fields` carry a leading world axis."""
  axes = jax.tree.map(lambda _: None, model)
  return axes.tree_replace({f: 0 for f in fields})


def randomize_world(
  model: mjx.Model,
  layout: Layout,
  key: jax.Array,
  num_worlds: int,
  sample_sizes: Callable[[jax.Array], jax.Array] | None = None,
) -> tuple[mjx.Model, mjx.Model]:
  """Per-world dynamics randomisation (spec C.1): object sizes (when
  `sample_sizes(key) -> [N, 3]` is given; else the model's), object masses
  x[0.5, 2] with inertia to match, and the sliding friction of every
  geom x[0.5, 1.5], drawn per geom.

  Returns:
    (models with a leading [num_worlds] axis on `RANDOMIZED_FIELDS`, the
     matching in_axes for `jax.vmap(env.step, in_axes=(in_axes, 0, 0))`).
  """
  num = len(layout.object_kinds)

  def one_world(k):
    size_key, mass_key, friction_key = jax.random.split(k, 3)
    sizes = None if sample_sizes is None else sample_sizes(size_key)
    scale = jax.random.uniform(
      mass_key, (num,), minval=MASS_SCALE[0], maxval=MASS_SCALE[1]
    )
    world = with_object_bodies(model, layout, sizes, scale)
    friction = model.geom_friction.at[:, 0].multiply(
      jax.random.uniform(
        friction_key,
        model.geom_friction.shape[:1],
        minval=FRICTION_SCALE[0],
        maxval=FRICTION_SCALE[1],
      )
    )
    world = world.replace(geom_friction=friction)
    return {f: getattr(world, f) for f in RANDOMIZED_FIELDS}

  fields = jax.vmap(one_world)(jax.random.split(key, num_worlds))
  return model.tree_replace(fields), batch_axes(model)


# --- Episode state and task assembly ---------------------------------------


def reset_state(
  model: mjx.Model,
  layout: Layout,
  camera: render.Camera,
  key: jax.Array,
  object_rgb: Callable[[jax.Array], jax.Array],
  *,
  extent: float,
  jitter: float,
  settle_substeps: int,
  randomize_lighting: bool,
  randomize_camera: bool,
  metric_names: tuple[str, ...],
) -> types.EnvState:
  """A fresh episode, shared by every task's `reset`.

  The gripper starts open at a random x-y 10 cm up, objects rest in random
  grid cells (`place_objects(extent, jitter)`), `object_rgb(key) -> [N, 3]`
  draws this episode's colours, and (if asked) the light and the camera
  jitter are drawn too. Reward 0, not done, every metric 0.
  """
  place_key, grip_key, color_key, light_key, camera_key = jax.random.split(
    key, 5
  )
  qpos = model.qpos0.at[:NUM_GRIPPER_DOF].set(gripper_start_qpos(grip_key))
  qpos = place_objects(
    model, layout, qpos, place_key, extent=extent, jitter=jitter
  )
  if randomize_lighting:
    lighting = random_lighting(light_key)
  else:
    lighting = render.default_lighting()
  if randomize_camera:
    shift, rot = random_camera_jitter(camera_key)
  else:
    shift, rot = no_camera_jitter()
  physics = ManipPhysics(
    data=reset_data(model, qpos, settle_substeps),
    t=jnp.int32(0),
    gripper_closed=jnp.float32(0),
    object_rgb=object_rgb(color_key),
    lighting=lighting,
    stable_steps=jnp.int32(0),
    camera_shift=shift,
    camera_rot=rot,
  )
  return types.EnvState(
    physics=physics,
    obs=observe(camera, layout, model, physics),
    reward=jnp.float32(0),
    terminated=jnp.bool_(False),
    truncated=jnp.bool_(False),
    metrics={name: jnp.float32(0) for name in metric_names},
    info={},
  )


def make_task(
  *,
  reset: Callable[..., types.EnvState],
  step: Callable[..., types.EnvState],
  expert_action: Callable[..., jax.Array],
  mj_model: mujoco.MjModel,
  layout: Layout,
  image_size: int,
  episode_length: int,
  sample_sizes: Callable[[jax.Array], jax.Array] | None = None,
  observe: Callable[..., Any] | None = None,
) -> ManipulationTask:
  """Assembles a `ManipulationTask` around a task's pure functions.

  `randomize_model` is `randomize_world` with this task's `sample_sizes`
  (None: object sizes stay as modelled).
  """

  def randomize_model(
    model: mjx.Model, key: jax.Array, num_worlds: int
  ) -> tuple[mjx.Model, mjx.Model]:
    return randomize_world(model, layout, key, num_worlds, sample_sizes)

  spec = types.EnvSpec(
    obs_shape=(image_size, image_size, 3),
    obs_dtype=jnp.uint8,
    num_actions=0,
    action_shape=(ACTION_SIZE,),
    max_episode_steps=episode_length,
  )

  def init_model() -> mjx.Model:
    return mjx.put_model(mj_model)

  env = types.Env(reset=reset, step=step, init_model=init_model, spec=spec)
  return ManipulationTask(
    env=env,
    expert_action=expert_action,
    random_action=random_action,
    randomize_model=randomize_model,
    mj_model=mj_model,
    layout=layout,
    observe=observe,
  )


def restore_configuration(
  model: mjx.Model,
  physics: ManipPhysics,
  qpos: jax.Array,
  qvel: jax.Array,
  closed: jax.Array,
  ctrl: jax.Array | None = None,
) -> ManipPhysics:
  """`physics` moved to a recorded configuration (joint positions and
  velocities, the gripper command, the actuators' set-points: `ctrl`, or
  physics' own) at a fresh episode's time 0; its appearance (colours,
  light, camera jitter) stays. Like `reset_data`, it holds no contacts until
  the first step computes them."""
  ctrl = physics.data.ctrl if ctrl is None else ctrl
  data = reset_data(model, qpos, 0, ctrl=ctrl).replace(qvel=qvel)
  return physics._replace(
    data=data,
    t=jnp.zeros_like(physics.t),
    gripper_closed=jnp.asarray(closed, physics.gripper_closed.dtype),
    stable_steps=jnp.zeros_like(physics.stable_steps),
  )


def env_factory(make_task_fn: Callable[..., ManipulationTask]):
  """`make(**kwargs) -> Env` for the env registry, with `make_task_fn`'s
  keywords as its signature (config validation reads them)."""

  def make(**kwargs) -> types.Env:
    return make_task_fn(**kwargs).env

  make.__signature__ = inspect.signature(make_task_fn).replace(
    return_annotation=types.Env
  )
  make.__doc__ = f"The `Env` of `{make_task_fn.__name__}` alone."
  return make


# --- Rollouts --------------------------------------------------------------


def rollout(
  env: types.Env,
  policy: Callable[[mjx.Model, types.EnvState, jax.Array], jax.Array],
  model: mjx.Model,
  key: jax.Array,
  num_steps: int,
) -> tuple[types.EnvState, types.EnvState]:
  """One episode from reset: `num_steps` steps of `policy`, in a scan.

  Args:
    env: the env.
    policy: policy(model, state, key) -> action [7].
    model: the model of this world.
    key: randomness for the reset and the policy.
    num_steps: steps to take (usually `env.spec.max_episode_steps`).

  Returns:
    (the first state, the states after each step [num_steps, ...]); vmap
    over keys (and models) for a batch of episodes.
  """
  reset_key, key = jax.random.split(key)
  first = env.reset(model, reset_key)

  def body(state, step_key):
    next_state = env.step(model, state, policy(model, state, step_key))
    return next_state, next_state

  _, states = jax.lax.scan(body, first, jax.random.split(key, num_steps))
  return first, states
