"""Nut-and-peg Assembly, the Robotics Suite's sixth task (spec surreal.md
§2.3-2.4, robosuite's `SawyerNutAssembly`), with primitive geoms.

Two nuts lie on the tray floor; each belongs on its own peg. A nut is a
square ring (outer 5 cm, hole 2.8 cm, 1.2 cm thick: four boxes) with a
handle (4 x 1.4 x 1.2 cm box) sticking out of one side; the handle is the
nut's body frame (its main geom), the ring hangs off it at `-HANDLE_X`
along the body's x. The pegs are fixed: a square one (a 1.8 cm box) for
the gold "square nut" and a round one (a capsule, radius 0.9 cm) for the
silver "round nut" (robosuite's round nut has a round hole; a ring of
boxes is what MJX and the JAX camera draw cheaply, so both holes are
square and the nuts differ by colour and by the peg they belong to). The
pegs are 6 cm tall at (-/+`PEG_X`, `PEG_Y`); the nuts start in the tray's
-y half in random order at (-/+`SLOT_X`, `SLOT_Y`) +-1 cm, their handles
pointing towards -y +-45 degrees. Nuts do not collide with each other
(their rings are `contype` 0: one nut's ring with the other's, sixteen
box pairs, were most of a step's contact work); each collides with the
floor, the walls, the pegs and the fingers. `num_nuts` 1 keeps the square
nut only (robosuite's `NutAssemblySquare`).

Heights are scaled to this scene by `HEIGHT_SCALE` = 0.5 as in Bin
Picking: a nut is on its peg below 2.5 cm (robosuite's table + 0.05 m)
and the lift target is 10 cm (0.2 m); x-y distances keep robosuite's
constants.

  observation  obs_mode "state":  {"proprio": [P], "object": [14 N]}
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [P]}
               nut i's 14 features at [14 i, 14 i + 14): the ring's centre
               (3), the nut's quaternion (4), its handle minus the
               fingertips (3), the centre minus its peg's base (3), and 1
               if it is on its peg (1). robosuite's 14 are the position,
               the quaternion and the pose in the gripper's frame.
  action       the robot's (`envs.robots`).
  reward       robosuite's `reward_shaping=True`:
                 sum_i on_peg_i + max(reach, grasp, lift, hover)
               over the nuts not yet on their pegs ("left"):
                 reach = 0.1 (1 - tanh(10 min_left d(fingertips, handle)))
                 grasp = 0.35 if the left finger touches a geom of a left
                         nut and the right finger one
                 lift  = grasp > 0: 0.35 + 0.15 (1 - tanh(15 min_left
                         max(LIFT_TARGET - z, 0))), else 0
                 hover = max_left [lift + 0.2 (1 - tanh(10 d_xy(centre,
                         its peg)))]
               all 0 once both nuts are on; the maximum is N.
  success      every nut on its peg: the ring's centre within 3 cm of the
               peg in x and in y, below `ON_PEG_Z`, and the fingertips
               away from it (1 - tanh(10 d) < 0.6, d > 4.2 cm).
  episode      `episode_length` agent steps, never terminated.

`metrics` holds success, nuts_on_pegs (the count) and the four stages.
`expert_action` (privileged state; its phase read from the state) takes
the nearest nut not on its peg: jaws pre-shaped and turned across the
handle, grasp from above, lift the ring clear of the pegs, carry it over
its peg, lower it around the peg, open, rise. `straight_descent`, the
reference without the x-y skill: the same grasp straight below the
fingertips, then a lift, carrying nowhere.

Measured (success at the last of 60 steps, 64 worlds of `randomize_model`
each): the expert 64/64 (both nuts on after 38-44 steps), the straight
descent 0/64 and random actions 0/64 (neither ever put a nut on its peg).
With num_nuts=1 (32 worlds, 30 steps): expert 32/32 (by step 16-19),
straight descent 0/32, random 0/32. The scene's 4 solver iterations threw
resting nuts into the air (an unconverged Newton solve with twenty resting
contacts a nut) and failed 2 of 32 expert worlds; `SOLVER_ITERATIONS` = 12
fixes that at ~30 % more time a step (68 env steps/s at 192 worlds here).
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

NUTS = ("square", "round")
COLORS = ((0.85, 0.68, 0.2), (0.78, 0.8, 0.84))  # gold, silver
RING_OUTER = 0.025  # half-widths of the ring and of its hole
RING_INNER = 0.014
RING_HALF_HEIGHT = 0.006
HANDLE_HALF = (0.02, 0.007, RING_HALF_HEIGHT)
HANDLE_X = RING_OUTER + HANDLE_HALF[0]  # handle centre to ring centre
# The square peg's half-width, the round one's radius: its half-diagonal
# (1.06 cm) is inside the hole at any yaw.
PEG_HALF = 0.0075
PEG_HEIGHT = 0.06
PEG_X, PEG_Y = 0.055, 0.065
SLOT_X, SLOT_Y = 0.055, -0.035  # nut start slots (ring centres)
SLOT_JITTER = 0.01
HANDLE_YAW = -np.pi / 2  # handles point towards -y ...
YAW_RANGE = np.pi / 4  # ... +- this
PEGS = np.array([[-PEG_X, PEG_Y], [PEG_X, PEG_Y]])  # nut i's peg is PEGS[i]
HEIGHT_SCALE = 0.5  # robosuite's heights -> this scene's
ON_PEG_XY = 0.03
ON_PEG_Z = 0.05 * HEIGHT_SCALE
LIFT_TARGET = 0.2 * HEIGHT_SCALE
# The expert's.
HOVER_HEIGHT = 0.08  # fingertips' travel height while open
PRESHAPE = -0.2  # grip set-point while open: inner faces 2.7 cm off centre
CLEAR = PEG_HEIGHT + 0.008  # carry in x-y once the ring's bottom is this high
NEAR_PEG = 0.003  # metres: lower the ring once its centre is this near
RELEASE_Z = ON_PEG_Z - 0.005  # open once the ring's centre is this low
# (released higher, a ring tilted as the jaws opened and wedged on the peg)
SOLVER_ITERATIONS = (
  12  # the scene's 4 (module docstring, make_nut_assembly_task)
)
FEATURES_PER_NUT = 14
METRICS = ("success", "nuts_on_pegs", "reach", "grasp", "lift", "hover")


def _fmt(values) -> str:
  return " ".join(f"{v:.6g}" for v in np.ravel(values))


def _box(name, pos, half, rgb, contact) -> str:
  return f"""
      <geom name="{name}" type="box" pos="{_fmt(pos)}"
        size="{_fmt(half)}" density="{scene.OBJECT_DENSITY}"
        rgba="{_fmt(rgb)} 1" {contact}/>"""


def ring_xml(index: int) -> str:
  """The ring's four walls, geoms of nut `index`'s (handle) body
  (`scene.ObjectSpec.extra`), touching the floor, walls, pegs and
  fingers but not the other nut's ring."""
  mid, wall = (RING_OUTER + RING_INNER) / 2, (RING_OUTER - RING_INNER) / 2
  h = RING_HALF_HEIGHT
  walls = (
    ((-HANDLE_X + mid, 0, 0), (wall, RING_OUTER, h)),
    ((-HANDLE_X - mid, 0, 0), (wall, RING_OUTER, h)),
    ((-HANDLE_X, mid, 0), (RING_INNER, wall, h)),
    ((-HANDLE_X, -mid, 0), (RING_INNER, wall, h)),
  )
  contact = 'contype="0" conaffinity="3" solref="0.01 1"'
  return "".join(
    _box(f"ring{index}_{k}", pos, half, COLORS[index], contact)
    for k, (pos, half) in enumerate(walls)
  )


def pegs_xml() -> str:
  """The fixed pegs: a square box and a round capsule, touching objects."""
  (sx, sy), (rx, ry) = PEGS
  z, radius = PEG_HEIGHT / 2, PEG_HALF
  return f"""
    <geom name="peg_square" type="box" pos="{sx:.6g} {sy:.6g} {z:.6g}"
      size="{PEG_HALF} {PEG_HALF} {z:.6g}" rgba="0.5 0.4 0.2 1"
      contype="1" conaffinity="0"/>
    <geom name="peg_round" type="capsule" pos="{rx:.6g} {ry:.6g} {z:.6g}"
      size="{radius} {z - radius:.6g}" rgba="0.45 0.47 0.5 1"
      contype="1" conaffinity="0"/>"""


NUT_SPECS = tuple(
  scene.ObjectSpec("box", HANDLE_HALF, ring_xml(i)) for i in range(len(NUTS))
)


def centres(handle_pos: jax.Array, xmat: jax.Array) -> jax.Array:
  """[N, 3] ring centres from the handles' positions [N, 3] and frames
  [N, 3, 3]."""
  return handle_pos - HANDLE_X * xmat[:, :, 0]


def on_pegs(centre: jax.Array) -> jax.Array:
  """[N] bool, robosuite's `on_peg`: each ring centre ([N, 3], nut i
  belongs on peg i) within `ON_PEG_XY` of its peg in x and in y and below
  `ON_PEG_Z`."""
  n = centre.shape[0]
  near = jnp.all(jnp.abs(centre[:, :2] - PEGS[:n]) < ON_PEG_XY, -1)
  return near & (centre[:, 2] < ON_PEG_Z)


def placed(centre: jax.Array, tip: jax.Array) -> jax.Array:
  """[N] bool, robosuite's `objects_on_pegs`: on its peg (`on_pegs`) with
  the fingertips ([3]) away from it."""
  return on_pegs(centre) & base.gripper_away(centre, tip)


def staged_rewards(
  centre: jax.Array,
  handle: jax.Array,
  tip: jax.Array,
  touch: jax.Array,
  done: jax.Array,
) -> dict[str, jax.Array]:
  """robosuite's nut-assembly `staged_rewards` (reach to the handles,
  grasp, lift, hover; `base.staged_rewards`), float32 scalars, over the
  nuts not `done`.

  Args:
    centre: [N, 3] ring centres (nut i belongs on peg i).
    handle: [N, 3] handle centres.
    tip: [3] the fingertips' centre.
    touch: [N, 2] bool, whether any geom of each nut touches the left /
      right finger.
    done: [N] bool, `placed`.
  """
  off = centre[:, :2] - PEGS[: centre.shape[0]]
  return base.staged_rewards(
    handle, centre[:, 2], off, tip, touch, done, LIFT_TARGET
  )


def make_nut_assembly_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 60,
  substeps_per_action: int = 10,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
  num_nuts: int = 2,
) -> common.ManipulationTask:
  """Builds Nut-and-peg Assembly, its expert and its per-world randomiser
  (`common.randomize_world`: the whole nut's mass, ring included, x[0.5,
  2], friction; the nuts keep their sizes).

  Args: as `lift.make_lift_task` (no placement; robot "gripper" only),
  and
    num_nuts: 2 (the full task) or 1 (the square nut only).
  """
  base.check_args(
    "nut_assembly",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
    robot,
  )
  if robot != "gripper":
    raise ValueError(
      f"nut_assembly is built for the Cartesian gripper: robot must be "
      f"'gripper'; got {robot!r}"
    )
  if num_nuts not in (1, 2) or isinstance(num_nuts, bool):
    raise ValueError(
      f"nut_assembly has the nuts {NUTS}: num_nuts must be 1 or 2; got "
      f"{num_nuts!r}"
    )
  n = num_nuts
  body, actuators = robots.scene_parts(robot)
  s = base.make_scene(
    NUT_SPECS[:n],
    robot,
    camera,
    image_size,
    substeps_per_action,
    robot_parts=(body + pegs_xml(), actuators),
  )
  # Twenty resting contacts a nut: with the scene's 4 Newton iterations an
  # unconverged solve threw a nut resting on its peg into the air while
  # the gripper lifted the other one.
  s.mj_model.opt.iterations = SOLVER_ITERATIONS
  s.mj_model.opt.ls_iterations = SOLVER_ITERATIONS
  layout, arm = s.layout, s.robot
  bodies, handles = layout.object_bodies, layout.object_geoms
  nut_geoms = np.array(
    [
      [handles[i]] + [s.mj_model.geom(f"ring{i}_{k}").id for k in range(4)]
      for i in range(n)
    ]
  )  # [N, 5]
  colors = jnp.asarray(COLORS[:n], jnp.float32)
  pegs = jnp.asarray(PEGS[:n], jnp.float32)
  peg_bases = jnp.concatenate([pegs, jnp.zeros((n, 1))], -1)

  def nut_touch(data):
    """[N, 2] bool: any geom of each nut touches the left / right finger."""
    touch = common.touching(data, nut_geoms.reshape(-1), layout.finger_geoms)
    return jnp.any(touch.reshape(n, 5, 2), axis=1)

  def features(data):
    handle, tip = data.xpos[bodies], arm.tip(data)
    centre = centres(handle, data.xmat[bodies])
    on = placed(centre, tip).astype(jnp.float32)[:, None]
    per_nut = [centre, data.xquat[bodies], handle - tip, centre - peg_bases, on]
    return jnp.concatenate(per_nut, -1).reshape(-1)

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def score(data):
    """robosuite's reward and (success, nuts_on_pegs, the stages)."""
    handle, tip = data.xpos[bodies], arm.tip(data)
    centre = centres(handle, data.xmat[bodies])
    done = placed(centre, tip)
    stages = staged_rewards(centre, handle, tip, nut_touch(data), done)
    count = jnp.sum(done).astype(jnp.float32)
    reward = count + jnp.max(jnp.stack(list(stages.values())))
    success = jnp.all(done).astype(jnp.float32)
    return reward, dict(stages, success=success, nuts_on_pegs=count)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    order_key, jitter_key, yaw_key, grip_key = jax.random.split(key, 4)
    qpos = model.qpos0.at[: arm.num_qpos].set(arm.start_qpos(grip_key))
    slots = jnp.array([[-SLOT_X, SLOT_Y], [SLOT_X, SLOT_Y]])
    slots = slots[jax.random.permutation(order_key, 2)[:n]]
    xy = slots + jax.random.uniform(
      jitter_key, (n, 2), minval=-SLOT_JITTER, maxval=SLOT_JITTER
    )
    yaw = HANDLE_YAW + jax.random.uniform(
      yaw_key, (n,), minval=-YAW_RANGE, maxval=YAW_RANGE
    )
    direction = jnp.stack([jnp.cos(yaw), jnp.sin(yaw)], -1)
    handle_xy = xy + HANDLE_X * direction
    for i, adr in enumerate(layout.object_qpos):
      quat = jnp.stack([jnp.cos(yaw[i] / 2), 0.0, 0.0, jnp.sin(yaw[i] / 2)])
      pose = jnp.concatenate(
        [handle_xy[i], jnp.array([RING_HALF_HEIGHT]), quat]
      )
      qpos = jax.lax.dynamic_update_slice(qpos, pose, (adr,))
    return base.first_state(s, model, qpos, colors, observe, METRICS)

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def act(model, state, key, noise_scale, aim_offset, skilled):
    """The expert (`skilled`) or the straight descent: see the module
    docstring. Stateless: the phase is read from the state."""
    p = state.physics
    data = p.data
    tip, yaw = arm.tip(data), arm.yaw(data)
    handle, xmat = data.xpos[bodies], data.xmat[bodies]
    centre = centres(handle, xmat)
    closed = p.gripper_closed > 0.5
    touch = nut_touch(data)
    both = jnp.all(touch, -1)
    # Held: both fingers on a nut, or one on a nut off the floor (contacts
    # flicker while a held nut moves fast).
    aloft = centre[:, 2] > 2 * RING_HALF_HEIGHT
    held = both | (jnp.any(touch, -1) & aloft)
    holding = closed & jnp.any(held)
    left = ~on_pegs(centre)
    done = ~jnp.any(left) & ~holding
    # The held nut, else the nearest (x-y, by its handle) not on its peg.
    gap = jnp.linalg.norm(handle[:, :2] - tip[:2], axis=-1)
    nearest = jnp.argmin(jnp.where(left, gap, jnp.inf))
    pick = common.one_hot_select(
      jnp.where(holding, jnp.argmax(held), nearest), n
    )
    grip_at, ring, peg = pick(handle), pick(centre), pick(pegs)
    # Holding: lift the ring over the pegs, carry its centre over its peg
    # once clear, lower it around the peg (keep lowering once it is
    # around), open once it is low on the peg.
    err = peg - ring[:2] if skilled else jnp.zeros(2)
    bottom = ring[2] - RING_HALF_HEIGHT
    around = (jnp.linalg.norm(err) < 2 * NEAR_PEG) & (bottom < PEG_HEIGHT)
    lower = skilled & ((jnp.linalg.norm(err) < NEAR_PEG) | around)
    z_goal = jnp.where(lower, RING_HALF_HEIGHT, LIFT_TARGET)
    xy = jnp.where((bottom > CLEAR) | lower, err, 0.0)
    carry = jnp.concatenate([xy, (z_goal - ring[2])[None]])
    release = lower & (ring[2] < RELEASE_Z)

    # Open: the grasp from above, jaws turned across the handle.
    axis = pick(xmat[:, :, 0])
    turn = base.wrap_half(jnp.arctan2(axis[1], axis[0]) + jnp.pi / 2 - yaw)
    aim = grip_at
    if not skilled:
      aim = grip_at.at[:2].set(tip[:2])
    elif aim_offset is not None:
      aim = grip_at.at[:2].add(aim_offset)
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
      carry_turn=jnp.float32(0),
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
    """Scripted nut assembly from privileged state (module docstring).

    `aim_offset` ([2] metres): grasps aim that far (x-y) off the handle."""
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
    object_size=FEATURES_PER_NUT * n,
    episode_length=episode_length,
    reset=reset,
    step=step,
    expert_action=expert_action,
    observe=observe,
    straight_descent=straight_descent,
  )


make_nut_assembly = common.env_factory(make_nut_assembly_task)
