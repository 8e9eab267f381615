"""What every Robotics-Suite task shares: the robot-in-the-tray scene, the
observation contract (§2.2), resets and the physics step.

A task supplies its objects, its object features, its reward and its
expert; `make_scene` builds the rest for the chosen robot (`envs.robots`).
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import render
from jaxrl_vision.envs import robots
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import pixels

OBS_MODES = ("state", "pixels")
ONE_ARM = ("gripper", "arm7")  # the robots of the one-arm tasks
# robosuite's pick-and-place tasks (`staged_rewards`, `gripper_away`).
REACH, GRASP, LIFT, HOVER = 0.1, 0.35, 0.5, 0.7  # stage multipliers
AWAY = 0.6  # placed only with 1 - tanh(10 d(fingertips, object)) < AWAY
# The pick-and-place experts' (`pick_and_place_action`).
DESCEND_XY = 0.01  # metres: descend onto a grasp point only this close
YAW_OK = 0.2  # radians: descend only with the jaws this aligned
FINGER_SETTLED = 0.02  # m/s: the closing fingers have stopped
FINGER_MISSED = 0.004  # m: fingers this shut hold nothing


def check_args(
  name: str,
  obs_mode: str,
  depth: bool,
  frame_stack: int,
  episode_length: int,
  substeps_per_action: int,
  robot: str | None = None,
) -> None:
  """ValueError with the bad argument named, before anything is built;
  `robot` (when given) must be one of `ONE_ARM`."""
  if robot is not None and robot not in ONE_ARM:
    raise ValueError(
      f"{name} is a one-arm task: robot must be one of {ONE_ARM}; got {robot!r}"
    )
  if obs_mode not in OBS_MODES:
    raise ValueError(f"obs_mode must be one of {OBS_MODES}: {obs_mode!r}")
  if obs_mode != "pixels" and (depth or frame_stack != 1):
    raise ValueError(
      f"depth and frame_stack apply to obs_mode='pixels' only; got "
      f"{obs_mode=}, {depth=}, {frame_stack=}"
    )
  if frame_stack < 1:
    raise ValueError(f"frame_stack must be >= 1; got {frame_stack}")
  if episode_length < 1 or substeps_per_action < 1:
    raise ValueError(
      f"{name} needs episode_length >= 1 and substeps_per_action >= 1; got "
      f"{episode_length=}, {substeps_per_action=}"
    )


class Scene(NamedTuple):
  """A task's static pieces: the model, its ids, the robot, the camera, and
  `step_s`, the seconds of one agent step."""

  mj_model: mujoco.MjModel
  layout: common.Layout
  robot: robots.Robot
  eye: render.Camera
  step_s: float


def make_scene(
  objects: tuple[scene.ObjectSpec, ...],
  robot: str,
  camera: str,
  image_size: int,
  substeps_per_action: int,
  robot_parts: tuple[str, str] | None = None,
) -> Scene:
  """`robot_parts`: the robot's (worldbody, actuator) MJCF when the task
  changes it (objects fixed in a hand); default `robots.scene_parts`."""
  parts = robot_parts or robots.scene_parts(robot)
  mj_model = mujoco.MjModel.from_xml_string(
    scene.scene_xml(objects, walls=True, robot=parts)
  )
  return Scene(
    mj_model=mj_model,
    layout=common.make_layout(mj_model, len(objects), camera, robot=robot),
    robot=robots.make_robot(robot, mj_model),
    eye=render.make_camera(mj_model, camera, image_size, image_size),
    step_s=substeps_per_action * float(mj_model.opt.timestep),
  )


def make_observe(
  s: Scene,
  obs_mode: str,
  depth: bool,
  frame_stack: int,
  features: Callable[[mjx.Data], jax.Array],
) -> Callable[..., Any]:
  """`observe(model, physics, previous=None)`: {"proprio", "object":
  features(data)} or {"image", "proprio"}; `previous` (the last
  observation) is None at an episode's first step (the frame stack starts
  full)."""

  def observe(model, physics, previous=None):
    proprio = s.robot.proprio(physics.data, physics.gripper_closed)
    if obs_mode == "pixels":
      image = pixels.frame(s.eye, s.layout, model, physics, depth)
      if previous is None:
        image = pixels.start_stack(image, frame_stack)
      else:
        image = pixels.push(previous["image"], image)
      return {"image": image, "proprio": proprio}
    object_ = features(physics.data).astype(jnp.float32)
    return {"proprio": proprio, "object": object_}

  return observe


def first_state(
  s: Scene,
  model: mjx.Model,
  qpos: jax.Array,
  object_rgb: jax.Array,
  observe,
  metric_names: tuple[str, ...],
  gripper_closed: jax.Array | None = None,
) -> types.EnvState:
  """An episode's first state at `qpos` (the robot's and the objects'),
  at rest, default light and camera, the jaws open (`gripper_closed`:
  zeros shaped as the robot's close command, () by default)."""
  shift, rot = common.no_camera_jitter()
  physics = common.ManipPhysics(
    data=common.reset_data(model, qpos, 0, ctrl=s.robot.rest_ctrl(qpos)),
    t=jnp.int32(0),
    gripper_closed=(
      jnp.float32(0) if gripper_closed is None else gripper_closed
    ),
    object_rgb=object_rgb,
    lighting=render.default_lighting(),
    stable_steps=jnp.int32(0),
    camera_shift=shift,
    camera_rot=rot,
  )
  return types.EnvState(
    physics=physics,
    obs=observe(model, physics),
    reward=jnp.float32(0),
    terminated=jnp.bool_(False),
    truncated=jnp.bool_(False),
    metrics={name: jnp.float32(0) for name in metric_names},
    info={},
  )


def make_step(
  s: Scene,
  observe,
  score: Callable[[mjx.Data], tuple[jax.Array, dict[str, jax.Array]]],
  substeps_per_action: int,
  episode_length: int,
):
  """`step(model, state, action)`: the robot's set-points for `action` held
  over the substeps, then `score(data) -> (reward, metrics)`; never
  terminated, truncated at `episode_length`."""

  def step(
    model: mjx.Model, state: types.EnvState, action: jax.Array
  ) -> types.EnvState:
    p = state.physics
    ctrl, closed = s.robot.control(p.data, action)
    ctrls = jnp.broadcast_to(ctrl, (substeps_per_action, ctrl.shape[0]))
    data = common.simulate(model, p.data, ctrls)
    physics = p._replace(data=data, t=p.t + 1, gripper_closed=closed)
    reward, metrics = score(data)
    return types.EnvState(
      physics=physics,
      obs=observe(model, physics, state.obs),
      reward=reward,
      terminated=jnp.bool_(False),
      truncated=physics.t >= episode_length,
      metrics=metrics,
      info=state.info,
    )

  return step


def finish(
  s: Scene,
  *,
  obs_mode: str,
  image_size: int,
  depth: bool,
  frame_stack: int,
  object_size: int,
  episode_length: int,
  **functions,
) -> common.ManipulationTask:
  """The task around its pure `functions` (reset, step, expert_action,
  observe, and optionally sample_sizes and straight_descent), with its
  observation and action shapes in the spec and the robot's random
  policy."""
  straight_descent = functions.pop("straight_descent", None)
  task = common.make_task(
    mj_model=s.mj_model,
    layout=s.layout,
    image_size=image_size,
    episode_length=episode_length,
    **functions,
  )
  if obs_mode == "state":
    spec = task.env.spec._replace(
      obs_shape=(s.robot.proprio_size + object_size,), obs_dtype=jnp.float32
    )
  else:
    size = (image_size, image_size, pixels.channels(depth, frame_stack))
    spec = task.env.spec._replace(obs_shape=size)
  spec = spec._replace(action_shape=(s.robot.action_size,))
  return task._replace(
    env=task.env._replace(spec=spec),
    random_action=s.robot.random_action,
    robot=s.robot,
    straight_descent=straight_descent,
  )


def gripper_away(pos: jax.Array, tip: jax.Array) -> jax.Array:
  """[N] bool: robosuite's test that the fingertips ([3]) have left each
  object ([N, 3]) before it counts as placed: 1 - tanh(10 d) < `AWAY`
  (d > 4.2 cm)."""
  d = jnp.linalg.norm(pos - tip, axis=-1)
  return 1.0 - jnp.tanh(10.0 * d) < AWAY


def staged_rewards(
  reach_to: jax.Array,
  z: jax.Array,
  off_target: jax.Array,
  tip: jax.Array,
  touch: jax.Array,
  done: jax.Array,
  lift_target: float,
  over_target: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """robosuite's pick-and-place `staged_rewards` (Bin Picking, Nut-and-peg
  Assembly), float32 scalars, over the objects not `done`:

    reach = 0.1 (1 - tanh(10 min d(fingertips, reach_to)))
    grasp = 0.35 if the left finger touches an object and the right one
    lift  = grasp > 0: 0.35 + 0.15 (1 - tanh(15 min max(lift_target - z,
            0))), else 0
    hover = max [b + 0.2 (1 - tanh(10 |off_target|))], b = 0.5 where
            `over_target` (Bin Picking's object over its bin), else lift

  all 0 once every object is done.

  Args:
    reach_to: [N, 3] the points the fingertips reach for.
    z: [N] the heights lifted towards `lift_target`.
    off_target: [N, 2] each object's x-y offset from its target.
    tip: [3] the fingertips' centre.
    touch: [N, 2] bool, whether each object touches the left / right finger.
    done: [N] bool, placed objects (left out of every stage).
    lift_target: metres.
    over_target: [N] bool or None (never).
  """
  left = ~done
  inf = jnp.float32(jnp.inf)  # min over no object: every term 0
  d = jnp.where(left, jnp.linalg.norm(reach_to - tip, axis=-1), inf)
  reach = REACH * (1.0 - jnp.tanh(10.0 * jnp.min(d)))
  grasp = jnp.all(jnp.any(touch & left[:, None], axis=0))
  z_gap = jnp.where(left, jnp.maximum(lift_target - z, 0.0), inf)
  lift = GRASP + (1.0 - jnp.tanh(15.0 * jnp.min(z_gap))) * (LIFT - GRASP)
  lift = jnp.where(grasp, lift, 0.0)
  hover = lift if over_target is None else jnp.where(over_target, LIFT, lift)
  d_xy = jnp.linalg.norm(off_target, axis=-1)
  hover = hover + (1.0 - jnp.tanh(10.0 * d_xy)) * (HOVER - LIFT)
  hover = jnp.max(jnp.where(left, hover, 0.0))
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  return {
    "reach": f32(reach),
    "grasp": f32(GRASP * grasp),
    "lift": f32(lift),
    "hover": f32(hover),
  }


def wrap_half(angle: jax.Array) -> jax.Array:
  """An angle wrapped to [-pi/2, pi/2) (the jaws are symmetric)."""
  return jnp.mod(angle + jnp.pi / 2, jnp.pi) - jnp.pi / 2


def pick_and_place_action(
  s: Scene,
  model: mjx.Model,
  data: mjx.Data,
  key: jax.Array,
  noise_scale: float,
  *,
  closed: jax.Array,
  holding: jax.Array,
  done: jax.Array,
  aim: jax.Array,
  turn: jax.Array,
  carry: jax.Array,
  carry_turn: jax.Array,
  release: jax.Array,
  hover_height: float,
  preshape: float,
) -> jax.Array:
  """One step of a scripted pick-and-place expert with one gripper (Bin
  Picking, Nut-and-peg Assembly), its phase read from the state.

  Open (not `closed`): over `aim` ([3], the grasp point) at `hover_height`,
  rising first where low and away from it, the jaws turned by `turn`;
  descend once within `DESCEND_XY` in x-y and `YAW_OK`, close when
  `common.approach` is ready; move only once the jaws have opened to
  `preshape` (their set-point while open); `done`: rise and stay open.
  `holding`: move by `carry` (metres) and turn by `carry_turn`, closed
  until `release`. Closed on nothing (shut, or settled without holding):
  open and approach again. Gaussian noise of `noise_scale` on top.
  """
  arm = s.robot
  tip, fingers = arm.tip(data), arm.fingers(data)
  settled = arm.finger_speed(data) < FINGER_SETTLED
  up = jnp.stack([0.0, 0.0, hover_height - tip[2]])
  reach, reach_turn, ready = common.approach(tip, aim, turn, hover_height)
  dist = jnp.linalg.norm(aim[:2] - tip[:2])
  descend = (dist < DESCEND_XY) & (jnp.abs(turn) < YAW_OK)
  reach = reach.at[2].set(jnp.where(descend, reach[2], up[2]))
  low = tip[2] < hover_height - 0.02
  reach = jnp.where(low & (dist > 2 * DESCEND_XY), up, reach)
  reach = jnp.where(done, up, reach)
  opening = scene.FINGER_OPEN * (1.0 - preshape) / 2.0
  reach = jnp.where(jnp.min(fingers) > opening - 0.004, reach, 0.0)
  missed = jnp.max(fingers) < FINGER_MISSED
  translation = jnp.where(holding, carry, jnp.where(closed, 0.0, reach))
  dyaw = jnp.where(
    holding, carry_turn, jnp.where(closed | done, 0.0, reach_turn)
  )
  close = jnp.where(
    holding, ~release, jnp.where(closed, ~settled & ~missed, ready & ~done)
  )
  action = arm.cartesian_action(model, data, translation, dyaw, close, s.step_s)
  action = action.at[-1].set(jnp.where(close, 1.0, preshape))
  return arm.add_noise(action, key, noise_scale)
