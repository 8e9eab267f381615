"""Bimanual Lifting, the Robotics Suite's fourth task (spec surreal.md
§2.3-2.4, robosuite's `BaxterLift`), with two Cartesian grippers.

A pot (a solid 8 x 6 x 5 cm box, 0.22 kg with its handles) with two handles (5.2 x 2 x 2 cm
boxes sticking out of its -x and +x faces, 1.2 cm above its centre, geoms
of the pot's body that touch only the fingers; capsule handles rolled
between the flat fingers and slipped) rests on the tray floor at a random x-y in +-`PLACEMENT` and a yaw in +-`YAW_RANGE`. The
robot is `envs.robots.two_grippers`: the left hand starts over the -x
handle, the right hand over the +x one, 10 cm up (+-2 cm in x and y), jaws
open across the handles.

  observation  obs_mode "state":  {"proprio": [28], "object": [25]} float32
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [28]}
               object = pot position, pot quaternion, left and right handle
               positions, each handle minus its hand's fingertips, the pot
               minus each hand's fingertips: 3 + 4 + 6 + 6 + 6 = 25, the
               spec's count (robosuite's exact features differ).
  action       [10] float32 in [-1, 1]: [left, right], each hand's
               (dx, dy, dz, turn, grip), `envs.robots.two_grippers`.
  reward       the spec's row (robosuite's dense `BaxterLift`):
                 10 c clip(elev - 0.05, 0, 0.2)
                 + sum over hands of [0.5 if a finger of that hand touches
                   its handle, else 0.5 (1 - tanh(d(fingertips, handle)))]
               with c = 1[cos(tilt) >= cos 30 deg], tilt the angle between
               the pot's axis and the vertical, and elev the pot's bottom
               over the floor (its centre height less its half-height;
               robosuite's pot centre less its top offset above the
               table), so elev = 0 at rest. At most 3; the grippers'
               workspace (`scene.WORKSPACE_HIGH`, fingertips <= 25 cm)
               caps elev at ~0.22 m, so the reachable maximum is ~2.7.
  success      elev > `SUCCESS_HEIGHT` (0.10 m, the spec's "pot z > table z
               + 0.10 m", reachable: the expert lifts to ~0.19) and tilt <=
               30 degrees (the seed's condition).
  episode      `episode_length` agent steps, never terminated.

`metrics` holds success and the stage rewards: reach_left/right (each
hand's reach term above, <= 0.5), grasp_left/right (1 if that hand touches
its handle) and lift (the elevation term). `expert_action` lifts the pot
from privileged state: both hands hover over their handle, turn their jaws
across it, descend, close, wait until both grips have settled, then rise
together.
"""

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import base

POT_HALF = (0.04, 0.03, 0.025)  # metres; 0.19 kg at scene.OBJECT_DENSITY
# Handle half-sizes. 2 cm thick: shut jaws stop 1 cm off centre, where the
# fingers' actuators (kp 400) already push with their full
# `scene.FINGER_FORCE` (a 0.45 kg pot with its handles, the randomiser's
# heaviest, needs about 0.4 of the grip's friction).
HANDLE_HALF = (0.026, 0.01, 0.01)
# Handle centres in the pot's frame: the handle's inner end meets the pot's
# face, so fingers over its middle clear the pot by 1.4 cm.
HANDLE_X = POT_HALF[0] + HANDLE_HALF[0]
HANDLE_Z = 0.012
POT_COLOR = (0.75, 0.45, 0.2)  # copper
PLACEMENT = 0.02  # metres, uniform in x and y
YAW_RANGE = 0.25  # radians, uniform
SUCCESS_HEIGHT = 0.10  # metres of elevation (the pot's bottom over the floor)
MAX_TILT = np.deg2rad(30.0)
HOVER_HEIGHT = 0.08  # expert's travel height of the fingertips
LIFT_HEIGHT = 0.22  # the expert lifts the fingertips to here
LIFT_SPEED = 0.015  # metres per step: a gentle start keeps the grip
FINGER_SETTLED = 0.02  # m/s: the closing fingers have stopped
FINGER_MISSED = 0.004  # m: fingers this shut hold nothing
OBJECT_SIZE = 25
HANDS = ("left", "right")
METRICS = (
  "success",
  "reach_left",
  "reach_right",
  "grasp_left",
  "grasp_right",
  "lift",
)
ROBOTS = ("gripper", "two_grippers")  # either name: one gripper per hand


def _handle_geoms() -> str:
  """The handles' MJCF, geoms of the pot's body (`scene.ObjectSpec.extra`)."""
  return "".join(
    f"""
      <geom name="handle_{side}" type="box" size="{" ".join(map(str, HANDLE_HALF))}"
        pos="{sign * HANDLE_X:.6g} 0 {HANDLE_Z}" density="{scene.OBJECT_DENSITY}"
        rgba="0.3 0.3 0.32 1" {scene.HANDLE}/>"""
    for side, sign in (("left", -1), ("right", 1))
  )


POT = scene.ObjectSpec("box", POT_HALF, _handle_geoms())


def tilt_cos(xmat: jax.Array) -> jax.Array:
  """cos of the angle between a body's z axis and the vertical ([3, 3])."""
  return xmat[2, 2]


def lift_term(elev: jax.Array, cos_tilt: jax.Array) -> jax.Array:
  """10 c clip(elev - 0.05, 0, 0.2), c = 1[cos(tilt) >= cos 30 deg]."""
  level = cos_tilt >= np.cos(MAX_TILT)
  return 10.0 * level * jnp.clip(elev - 0.05, 0.0, 0.2)


def is_success(elev: jax.Array, cos_tilt: jax.Array) -> jax.Array:
  """Lifted above `SUCCESS_HEIGHT`, tilted no more than 30 degrees."""
  return (elev > SUCCESS_HEIGHT) & (cos_tilt >= np.cos(MAX_TILT))


def reach_term(touch: jax.Array, dist: jax.Array) -> jax.Array:
  """One hand's: 0.5 touching its handle, else 0.5 (1 - tanh(d))."""
  return jnp.where(touch, 0.5, 0.5 * (1.0 - jnp.tanh(dist)))


def make_bimanual_lift_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 50,
  substeps_per_action: int = 10,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
) -> common.ManipulationTask:
  """Builds Bimanual Lifting, its expert and its per-world randomiser (pot
  mass x[0.5, 2], friction; the pot keeps its size).

  Args: as `lift.make_lift_task` (no placement), except that `robot` must
  be "gripper" or "two_grippers" (both: a Cartesian gripper per hand) and
  `camera` "overhead" (each hand has its own wrist camera).
  """
  base.check_args(
    "bimanual_lift",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
  )
  if robot not in ROBOTS:
    raise ValueError(
      f"bimanual lifting needs a gripper per hand: robot must be one of "
      f"{ROBOTS}; got {robot!r}"
    )
  if camera != "overhead":
    raise ValueError(f"bimanual lifting sees through 'overhead': {camera!r}")
  s = base.make_scene(
    (POT,), "two_grippers", camera, image_size, substeps_per_action
  )
  layout, arm = s.layout, s.robot
  pot_body = layout.object_bodies[0]
  handle_geoms = np.array(
    [s.mj_model.geom(f"handle_{side}").id for side in HANDS]
  )
  fingers = layout.finger_geoms.reshape(len(HANDS), 2)  # [hand, finger]
  colors = jnp.asarray([POT_COLOR], jnp.float32)
  closed0 = jnp.zeros(len(HANDS), jnp.float32)

  def handles(data):
    return data.geom_xpos[handle_geoms]  # [2, 3] left, right

  def features(data):
    pot, tip = data.xpos[pot_body], arm.tip(data)
    handle = handles(data)
    return jnp.concatenate(
      [pot, data.xquat[pot_body], handle.ravel()]
      + [(handle - tip).ravel(), (pot - tip).ravel()]
    )

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def touches(data):
    """[2] bool: a finger of each hand touches that hand's handle."""
    return jnp.stack(
      [
        jnp.any(common.touching(data, handle_geoms[i : i + 1], fingers[i]))
        for i in range(len(HANDS))
      ]
    )

  def elevation(data):
    """The pot's bottom over the floor (its size is not randomised)."""
    return data.xpos[pot_body, 2] - POT_HALF[2]

  def score(data):
    """The spec's reward and its stages, float32 scalars."""
    elev = elevation(data)
    cos_tilt = tilt_cos(data.xmat[pot_body])
    touch = touches(data)
    dist = jnp.linalg.norm(handles(data) - arm.tip(data), axis=-1)
    reach = reach_term(touch, dist)
    lift = lift_term(elev, cos_tilt)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    metrics = {"success": f32(is_success(elev, cos_tilt)), "lift": f32(lift)}
    for i, side in enumerate(HANDS):
      metrics[f"reach_{side}"] = f32(reach[i])
      metrics[f"grasp_{side}"] = f32(touch[i])
    return f32(lift + jnp.sum(reach)), metrics

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    place_key, yaw_key, grip_key = jax.random.split(key, 3)
    qpos = model.qpos0.at[: arm.num_qpos].set(arm.start_qpos(grip_key))
    xy = jax.random.uniform(
      place_key, (2,), minval=-PLACEMENT, maxval=PLACEMENT
    )
    yaw = jax.random.uniform(yaw_key, (), minval=-YAW_RANGE, maxval=YAW_RANGE)
    z = jnp.float32(POT_HALF[2])  # resting on the floor
    quat = jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])
    pose = jnp.concatenate([xy, z[None], quat])
    qpos = jax.lax.dynamic_update_slice(qpos, pose, (layout.object_qpos[0],))
    return base.first_state(
      s, model, qpos, colors, observe, METRICS, gripper_closed=closed0
    )

  def expert_action(
    model: mjx.Model,
    state: types.EnvState,
    key: jax.Array,
    noise_scale: float = 0.0,
    aim_offset: jax.Array | None = None,
  ) -> jax.Array:
    """Scripted two-handed lift from privileged state; stateless (each
    hand's phase is read from its pose and its close command).

    `aim_offset` ([2], or [2, 2] per hand, metres): the hands reach for
    points that far off their handles."""
    data = state.physics.data
    tips = arm.tip(data)  # [2, 3]
    targets = handles(data)
    if aim_offset is not None:
      offset = jnp.broadcast_to(aim_offset, (len(HANDS), 2))
      targets = targets.at[:, :2].add(offset)
    # Jaws across the handles: a quarter turn from the pot's heading, with
    # the jaws' half-turn symmetry.
    xmat = data.xmat[pot_body]
    target_yaw = jnp.arctan2(xmat[1, 0], xmat[0, 0]) + jnp.pi / 2
    dyaw = jnp.mod(target_yaw - arm.yaw(data) + jnp.pi / 2, jnp.pi)
    dyaw = dyaw - jnp.pi / 2  # [2]
    moves = [
      common.approach(tips[i], targets[i], dyaw[i], HOVER_HEIGHT)
      for i in range(len(HANDS))
    ]
    translation = jnp.stack([m[0] for m in moves])
    dyaw = jnp.stack([m[1] for m in moves])
    ready = jnp.stack([m[2] for m in moves])
    closed = state.physics.gripper_closed > 0.5  # [2]
    missed = jnp.max(arm.fingers(data), axis=-1) < FINGER_MISSED  # [2]
    holding = closed & ~missed
    settled = arm.finger_speed(data) < FINGER_SETTLED  # [2]
    # Rise together, the same step for both hands, once both grips hold.
    rise = jnp.all(holding & settled)
    dz = jnp.minimum(LIFT_HEIGHT - jnp.max(tips[:, 2]), LIFT_SPEED)
    up = jnp.zeros((len(HANDS), 3)).at[:, 2].set(dz)
    hold = jnp.where(rise, up, 0.0)
    translation = jnp.where(closed[:, None], hold, translation)
    dyaw = jnp.where(closed, 0.0, dyaw)
    close = holding | ready
    action = arm.cartesian_action(
      model, data, translation, dyaw, close, s.step_s
    )
    return arm.add_noise(action, key, noise_scale)

  def straight_descent(model, state, key):
    """The expert with each hand aiming straight below itself (no x-y
    skill): it closes and rises wherever it starts."""
    data = state.physics.data
    offset = arm.tip(data)[:, :2] - handles(data)[:, :2]
    return expert_action(model, state, key, aim_offset=offset)

  return base.finish(
    s,
    obs_mode=obs_mode,
    image_size=image_size,
    depth=depth,
    frame_stack=frame_stack,
    object_size=OBJECT_SIZE,
    episode_length=episode_length,
    reset=reset,
    step=step,
    expert_action=expert_action,
    observe=observe,
    straight_descent=straight_descent,
  )


make_bimanual_lift = common.env_factory(make_bimanual_lift_task)
