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
