"""Bin Picking, the Robotics Suite's fifth task (spec surreal.md §2.3-2.4,
robosuite's `SawyerPickPlace`), with primitive objects.

Four objects, one per category, start in the source bin (the tray's -y
half) and each belongs in its own cell of the target bin (the +y half, a
2 x 2 grid of cells as robosuite's bin2). robosuite's meshes become
primitives (half-sizes in cm), each category its own size and colour:

  milk    box 1.5 x 1.5 x 3 (standing carton)   cell 0 (x < 0, near row)
  bread   box 3 x 1.5 x 1.2 (flat loaf)         cell 1 (x > 0, near row)
  cereal  box 2.8 x 1.5 x 3.5 (standing box)    cell 2 (x < 0, far row)
  can     capsule r 1.5, 6 cm tip to tip, lying on its side (MJX and the
          JAX camera have no cylinder-box pairs; a capsule on its round
          end does not stand)                   cell 3 (x > 0, far row)
          (its turning is damped, `ROLL_DAMPING`, for the rolling
          friction its contacts lack: released, it rolled out of its cell)

Every object is 3 cm across its narrow side, so one pre-shaped opening of
the jaws fits all of them. `num_objects` (1-4) keeps the first ones of
that list (robosuite's single-object variants; 1 = milk). The objects
start in distinct random cells of a 2 x 2 grid in the source bin (11 x
8.5 cm apart, +-0.5 cm jitter, `common.place_objects` stretched onto the
bin), at a uniform random yaw; the Cartesian gripper (the only robot:
the scripted expert placed all four objects in 4 of 8 worlds with the
7-DoF arm, so "arm7" is refused) starts open 10 cm up at x-y in +-4 cm,
between the bins. The bins are coloured floor patches (visual only: the
tray's walls hold everything in).

Heights are scaled to this scene by `HEIGHT_SCALE` = 0.5 (objects about
half robosuite's, the gripper's set-points below 25 cm): a bin region is
5 cm high (robosuite's 0.1 m) and the lift target 12.5 cm (0.25 m).
Distances in x-y and the "gripper away" test keep robosuite's constants.

  observation  obs_mode "state":  {"proprio": [P], "object": [14 N]}
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [P]}
               object i's 14 features at [14 i, 14 i + 14): position (3),
               quaternion (4), object minus fingertips (3), object minus
               its target (its cell's centre on the floor, 3), and 1 if it
               counts as in its bin (1). robosuite's 14 are the position,
               the quaternion and the pose in the gripper's frame (3 + 4);
               with one yaw joint the relative quaternion says little, so
               the target offset and the flag take its place.
  action       the robot's (`envs.robots`).
  reward       robosuite's `reward_shaping=True`:
                 sum_i in_bin_i + max(reach, grasp, lift, hover)
               over the objects not yet in their bins ("left"):
                 reach = 0.1 (1 - tanh(10 min_left d(fingertips, obj)))
                 grasp = 0.35 if the left finger touches a left object and
                         the right finger one
                 lift  = grasp > 0: 0.35 + 0.15 (1 - tanh(15 min_left
                         max(LIFT_TARGET - z, 0))), else 0
                 hover = max_left [b + 0.2 (1 - tanh(10 d_xy(obj, cell)))],
                         b = 0.5 over its cell (x-y inside it), else lift
               all 0 once every object is in; the maximum is N.
  success      every object in its bin: its centre inside its cell in x-y,
               0 < z < `BIN_HEIGHT`, and the fingertips away from it
               (1 - tanh(10 d) < 0.6, d > 4.2 cm).
  episode      `episode_length` agent steps, never terminated.

`metrics` holds success, objects_in_bins (the count) and the four stages.
`expert_action` (privileged state; its phase read from the state) takes
the nearest object not yet in its cell: jaws pre-shaped 2.7 cm open (clear
of the neighbours) and turned across its narrow side, grasp from above,
lift, carry at `LIFT_TARGET` once clear of every object, turning the jaws
across y (the object's long side along x, clear of the other cells), lower
it into its cell, open, rise. `straight_descent`, the reference without
the x-y skill: the same grasp straight below the fingertips, then a lift,
carrying nowhere.

Measured (success at the last of 108 steps, 64 worlds of
`randomize_model` each): the expert 64/64 (all four in after 95-106 steps),
the straight descent 0/64, random actions 0/64 (never more than one object
in its bin). With num_objects=1 (32 worlds, 40 steps): expert 32/32 (by
step 19-26), straight descent 1/32, random 0/32.
"""

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import robots
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import base

CATEGORIES = ("milk", "bread", "cereal", "can")
OBJECTS = (
  scene.ObjectSpec("box", (0.015, 0.015, 0.03)),
  scene.ObjectSpec("box", (0.03, 0.015, 0.012)),
  scene.ObjectSpec("box", (0.028, 0.015, 0.035)),
  scene.ObjectSpec("capsule", (0.015, 0.015)),
)
COLORS = (
  (0.95, 0.95, 0.9),  # milk
  (0.8, 0.55, 0.25),  # bread
  (0.85, 0.2, 0.15),  # cereal
  (0.25, 0.45, 0.85),  # can
)
# Centre height of each object at rest (boxes stand, the capsule lies).
REST_Z = np.array(
  [o.size[2] if o.kind == "box" else o.size[0] for o in OBJECTS]
)
# Target cells (robosuite's bin ids: 0 low x low y, 1 high x, 2 high y, 3
# both), centres and half-sizes in x-y.
CELLS = np.array(
  [[-0.055, 0.045], [0.055, 0.045], [-0.055, 0.115], [0.055, 0.115]]
)
CELL_HALF = np.array([0.055, 0.035])
# The source bin's 2 x 2 start grid: centre, half-spacing, jitter fraction.
SOURCE_CENTRE = np.array([0.0, -0.0675])
SOURCE_HALF_SPACING = np.array([0.055, 0.0425])
SOURCE_JITTER = 0.1  # of the half-spacing: +-5.5 mm in x, +-4.25 mm in y
ROLL_DAMPING = 1e-3  # N m s / rad on the can's rotation
HEIGHT_SCALE = 0.5  # robosuite's heights -> this scene's
BIN_HEIGHT = 0.1 * HEIGHT_SCALE  # an object in a bin: 0 < z < BIN_HEIGHT
LIFT_TARGET = 0.25 * HEIGHT_SCALE  # z_target of the lift stage
# The expert's.
HOVER_HEIGHT = 0.085  # fingertips' travel height (the tallest object: 7 cm)
PRESHAPE = -0.2  # grip set-point while open: inner faces 2.7 cm off centre
CLEAR = 0.075  # carry in x-y once the object's bottom is this high (the
# tallest object is 7 cm)
NEAR_CELL = 0.03  # metres: lower a carried object once this near its cell
RELEASE_GAP = 0.008  # open once the object's bottom is this low
FEATURES_PER_OBJECT = 14
METRICS = ("success", "objects_in_bins", "reach", "grasp", "lift", "hover")


def in_cells(pos: jax.Array) -> jax.Array:
  """[N] bool: each object's centre ([N, 3], object i belongs in cell i)
  inside its cell in x-y and 0 < z < `BIN_HEIGHT`."""
  n = pos.shape[0]
  inside = jnp.abs(pos[:, :2] - CELLS[:n]) < CELL_HALF
  return jnp.all(inside, -1) & (pos[:, 2] > 0.0) & (pos[:, 2] < BIN_HEIGHT)


def in_bins(pos: jax.Array, tip: jax.Array) -> jax.Array:
  """[N] bool, robosuite's `objects_in_bins`: in its cell (`in_cells`)
  with the fingertips ([3]) away from it."""
  return in_cells(pos) & base.gripper_away(pos, tip)


def staged_rewards(
  pos: jax.Array, tip: jax.Array, touch: jax.Array, placed: jax.Array
) -> dict[str, jax.Array]:
  """robosuite's `staged_rewards` (reach, grasp, lift, hover;
  `base.staged_rewards`), float32 scalars, over the objects not `placed`;
  an object over its cell counts as lifted in `hover`.

  Args:
    pos: [N, 3] object centres (object i belongs in cell i).
    tip: [3] the fingertips' centre.
    touch: [N, 2] bool, whether each object touches the left / right finger.
    placed: [N] bool, `in_bins`.
  """
  off = pos[:, :2] - CELLS[: pos.shape[0]]
  above = jnp.all(jnp.abs(off) < CELL_HALF, -1)
  return base.staged_rewards(
    pos, pos[:, 2], off, tip, touch, placed, LIFT_TARGET, above
  )


def bins_xml() -> str:
  """The bins: coloured floor patches, visual only (1 mm thick)."""
  patches = [("bin_source", SOURCE_CENTRE, (0.12, 0.075), (0.5, 0.5, 0.5))]
  patches += [
    (f"bin_{name}", centre, CELL_HALF - 0.003, np.multiply(rgb, 0.6))
    for name, centre, rgb in zip(CATEGORIES, CELLS, COLORS, strict=True)
  ]
  return "".join(
    f"""
    <geom name="{name}" type="box" pos="{x:.6g} {y:.6g} 0.0005"
      size="{hx:.6g} {hy:.6g} 0.0005" rgba="{r:.3g} {g:.3g} {b:.3g} 1"
      contype="0" conaffinity="0"/>"""
    for name, (x, y), (hx, hy), (r, g, b) in patches
  )


def make_bin_picking_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 108,
  substeps_per_action: int = 10,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
  num_objects: int = 4,
) -> common.ManipulationTask:
  """Builds Bin Picking, its expert and its per-world randomiser (mass,
  friction; the objects keep their sizes).

  Args: as `lift.make_lift_task` (no placement; robot "gripper" only),
  and
    num_objects: 1-4, the first `num_objects` of `CATEGORIES` (4: the
      full task; fewer: robosuite's single-object variants and a shorter
      horizon for CPU-sized runs).
  """
  base.check_args(
    "bin_picking",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
    robot,
  )
  if robot != "gripper":
    raise ValueError(
      f"bin_picking is built for the Cartesian gripper: robot must be "
      f"'gripper'; got {robot!r} (its expert placed all four objects in "
      f"4 of 8 worlds with 'arm7')"
    )
  if num_objects not in (1, 2, 3, 4) or isinstance(num_objects, bool):
    raise ValueError(
      f"bin_picking has one object per category {CATEGORIES}: num_objects "
      f"must be 1, 2, 3 or 4; got {num_objects!r}"
    )
  n = num_objects
  body, actuators = robots.scene_parts(robot)
  s = base.make_scene(
    OBJECTS[:n],
    robot,
    camera,
    image_size,
    substeps_per_action,
    robot_parts=(body + bins_xml(), actuators),
  )
  layout, arm = s.layout, s.robot
  bodies, geoms = layout.object_bodies, layout.object_geoms
  # The lying can would roll on for ever (condim-3 contacts have no rolling
  # friction): a little damping of its turning stands in for it, set in
  # the model before any `mjx.Model` is made from it.
  for i, spec in enumerate(OBJECTS[:n]):
    if spec.kind == "capsule":
      dof = layout.object_qvel[i]
      s.mj_model.dof_damping[dof + 3 : dof + 6] = ROLL_DAMPING
  colors = jnp.asarray(COLORS[:n], jnp.float32)
  cells = jnp.asarray(CELLS[:n], jnp.float32)
  rest_z = jnp.asarray(REST_Z[:n], jnp.float32)
  # The body axis each object's long side lies along: x (boxes), z (the
  # lying capsule).
  long_axis = np.array([0 if o.kind == "box" else 2 for o in OBJECTS[:n]])
  targets = jnp.concatenate([cells, jnp.zeros((n, 1))], -1)  # on the floor

  def features(data):
    pos, tip = data.xpos[bodies], arm.tip(data)
    placed = in_bins(pos, tip).astype(jnp.float32)[:, None]
    per_object = [pos, data.xquat[bodies], pos - tip, pos - targets, placed]
    return jnp.concatenate(per_object, -1).reshape(-1)

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def score(data):
    """robosuite's reward and (success, objects_in_bins, the stages)."""
    pos, tip = data.xpos[bodies], arm.tip(data)
    placed = in_bins(pos, tip)
    touch = common.touching(data, geoms, layout.finger_geoms)
    stages = staged_rewards(pos, tip, touch, placed)
    count = jnp.sum(placed).astype(jnp.float32)
    reward = count + jnp.max(jnp.stack(list(stages.values())))
    success = jnp.all(placed).astype(jnp.float32)
    return reward, dict(stages, success=success, objects_in_bins=count)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    place_key, grip_key = jax.random.split(key)
    qpos = model.qpos0.at[: arm.num_qpos].set(arm.start_qpos(grip_key))
    # Cells of a unit grid (+-1, jitter +-SOURCE_JITTER), stretched onto
    # the source bin.
    qpos = common.place_objects(
      model, layout, qpos, place_key, extent=1.0, jitter=SOURCE_JITTER
    )
    for adr in layout.object_qpos:
      xy = SOURCE_CENTRE + SOURCE_HALF_SPACING * qpos[adr : adr + 2]
      qpos = qpos.at[adr : adr + 2].set(xy)
    return base.first_state(s, model, qpos, colors, observe, METRICS)

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def act(model, state, key, noise_scale, aim_offset, skilled):
    """The expert (`skilled`) or the straight descent: see the module
    docstring. Stateless: the phase is read from the state."""
    p = state.physics
    data = p.data
    tip, yaw = arm.tip(data), arm.yaw(data)
    pos = data.xpos[bodies]  # [N, 3]
    closed = p.gripper_closed > 0.5
    both = jnp.all(common.touching(data, geoms, layout.finger_geoms), -1)
    holding = closed & jnp.any(both)
    left = ~in_cells(pos)
    done = ~jnp.any(left) & ~holding
    # The held object, else the nearest (x-y) one not in its cell.
    gap = jnp.linalg.norm(pos[:, :2] - tip[:2], axis=-1)
    nearest = jnp.argmin(jnp.where(left, gap, jnp.inf))
    pick = common.one_hot_select(
      jnp.where(holding, jnp.argmax(both), nearest), n
    )
    obj, obj_rest, cell = pick(pos), pick(rest_z), pick(cells)
    # Holding (both fingers on it): lift, carry at LIFT_TARGET once
    # clear of every object with the jaws turned across y, lower into the
    # cell once near it, open just above the floor.
    err = cell - obj[:2] if skilled else jnp.zeros(2)
    carry_turn = base.wrap_half(jnp.pi / 2 - yaw) if skilled else jnp.float32(0)
    lower = (jnp.linalg.norm(err) < NEAR_CELL) & (
      jnp.abs(carry_turn) < base.YAW_OK
    )
    lower = lower & skilled
    z_goal = jnp.where(lower, obj_rest + 0.002, LIFT_TARGET)
    lifted = obj[2] - obj_rest  # the object's bottom over the floor
    xy = jnp.where((lifted > CLEAR) | lower, err, 0.0)
    carry = jnp.concatenate([xy, (z_goal - obj[2])[None]])
    carry_turn = jnp.where(lifted > 0.02, carry_turn, 0.0)
    release = lower & (lifted < RELEASE_GAP)

    # Open: the grasp from above, jaws turned across its narrow side.
    xmat = data.xmat[bodies]  # [N, 3, 3]
    axes = xmat[jnp.arange(n), :, long_axis]  # [N, 3]
    turns = base.wrap_half(
      jnp.arctan2(axes[:, 1], axes[:, 0]) + jnp.pi / 2 - yaw
    )
    turn = pick(turns)
    aim = obj
    if not skilled:
      aim = obj.at[:2].set(tip[:2])
    elif aim_offset is not None:
      aim = obj.at[:2].add(aim_offset)
    return base.pick_and_place_action(
      s,
      model,
      data,
      key,
      noise_scale,
      closed=closed,
      holding=holding,
      done=done,
      aim=aim,
      turn=turn,
      carry=carry,
      carry_turn=carry_turn,
      release=release,
      hover_height=HOVER_HEIGHT,
      preshape=PRESHAPE,
    )

  def expert_action(
    model: mjx.Model,
    state: types.EnvState,
    key: jax.Array,
    noise_scale: float = 0.0,
    aim_offset: jax.Array | None = None,
  ) -> jax.Array:
    """Scripted bin picking from privileged state (module docstring).

    `aim_offset` ([2] metres): grasps aim that far (x-y) off the object."""
    return act(model, state, key, noise_scale, aim_offset, skilled=True)

  def straight_descent(model, state, key):
    """The reference without x-y skill: the expert's grasp straight below
    the fingertips, a lift, no carry."""
    return act(model, state, key, 0.0, None, skilled=False)

  return base.finish(
    s,
    obs_mode=obs_mode,
    image_size=image_size,
    depth=depth,
    frame_stack=frame_stack,
    object_size=FEATURES_PER_OBJECT * n,
    episode_length=episode_length,
    reset=reset,
    step=step,
    expert_action=expert_action,
    observe=observe,
    straight_descent=straight_descent,
  )


make_bin_picking = common.env_factory(make_bin_picking_task)
