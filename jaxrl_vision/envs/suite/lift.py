"""Block Lifting, the Robotics Suite's first task (spec surreal.md §2.3-2.4).

A cube rests on the tray floor at a random x-y (uniform in +-`placement`
around the centre) and yaw; its half-side is drawn per world in
`HALF_SIDE_RANGE` by `randomize_model` (the seed randomises "the size and the
placement of the cube"). The robot (`envs.robots`) starts with its jaws
open: the Cartesian gripper 10 cm up at a random x-y in +-4 cm, the 7-DoF
arm 10 cm over the tray centre with N(0, 0.02 rad) on every joint.

  observation  obs_mode "state":  {"proprio": [P], "object": [10]} float32
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [P]},
               C = 3 (RGB), +1 with depth, x frame_stack
               proprio = the robot's (14 for the gripper, 30 for the arm;
               `envs.robots`); object = cube position, quaternion, and cube
               minus fingertip position (robosuite's `object-state`).
  action       the robot's, continuous in [-1, 1]: [5] for the gripper (3 cm
               per axis and step, a yaw step, the fingers' set-point), [8]
               joint velocities and the fingers' set-point for the arm.
  reward       robosuite's dense Lift reward (`reward_shaping=True`):
               1[success] + reach + grasp, reach = 1 - tanh(10 d(fingertips,
               cube)), grasp = 0.25 if both fingers touch the cube; <= 2.25.
  success      the cube's centre is above `SUCCESS_HEIGHT` (4 cm) over the
               floor (robosuite: cube z > table z + 0.04).
  episode      `episode_length` agent steps of `substeps_per_action` 5 ms
               physics substeps; never terminated, truncated at the limit
               (learners bootstrap from the final observation).

`metrics` holds the success flag and the stage rewards (reach, grasp, lift)
of the step; `expert_action` lifts the cube from privileged state, with
either robot (its Cartesian commands go through `Robot.cartesian_action`).
"""

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import base

HALF_SIDE_RANGE = (0.015, 0.025)  # metres; spec §0 item 7 [D]
SUCCESS_HEIGHT = 0.04  # cube centre above the floor
HOVER_HEIGHT = 0.08  # expert's travel height of the fingertips
LIFT_HEIGHT = 0.12  # the expert lifts the fingertips to here
FINGER_SETTLED = 0.02  # m/s: the closing fingers have stopped
FINGER_MISSED = 0.004  # m: fingers this shut hold nothing
PROPRIO_SIZE = 14  # the Cartesian gripper's; the arm's is 30
OBJECT_SIZE = 10
METRICS = ("success", "reach", "grasp", "lift")


def make_lift_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 50,
  substeps_per_action: int = 10,
  placement: float = 0.06,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
) -> common.ManipulationTask:
  """Builds Block Lifting with either robot, its expert and its
  per-world randomiser (cube size, mass, friction).

  Args:
    obs_mode: "state" (proprio + object features) or "pixels" (camera
      image + proprio).
    image_size: the camera image is image_size x image_size RGB (pixels).
    episode_length: agent steps per episode.
    substeps_per_action: 5 ms physics substeps per agent step (10 = 20 Hz;
      the seed's 10 Hz is 20).
    placement: the cube's centre is uniform in +-placement (metres) in x
      and y.
    camera: a `scene.CAMERAS` name, for "pixels".
    depth: "pixels" only: the camera's depth as a 4th channel
      (`envs.suite.pixels`).
    frame_stack: "pixels" only: the last `frame_stack` frames stacked
      along the channels (oldest first; an episode starts with its first
      frame repeated).
    robot: "gripper" (Cartesian, the CPU default) or "arm7" (`envs.robots`).
  """
  base.check_args(
    "lift",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
    robot,
  )
  reach = placement + np.sqrt(2) * HALF_SIDE_RANGE[1]
  if placement < 0 or reach > scene.TRAY_HALF:
    raise ValueError(
      f"placement must be in [0, {scene.TRAY_HALF - 0.036:.3f}] m (the cube "
      f"inside the tray); got {placement}"
    )
  s = base.make_scene(
    (scene.CUBE,), robot, camera, image_size, substeps_per_action
  )
  layout, arm = s.layout, s.robot
  cube_body, cube_geom = layout.object_bodies[0], layout.object_geoms[0]

  def features(data):
    cube = data.xpos[cube_body]
    return jnp.concatenate([cube, data.xquat[cube_body], cube - arm.tip(data)])

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def score(data):
    """robosuite's dense reward and the stages (success, reach, grasp,
    lift), float32 scalars."""
    cube = data.xpos[cube_body]
    reach = 1.0 - jnp.tanh(10.0 * jnp.linalg.norm(cube - arm.tip(data)))
    fingers = common.touching(data, [cube_geom], layout.finger_geoms)
    grasp = 0.25 * jnp.all(fingers)
    success = cube[2] > SUCCESS_HEIGHT
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    success, reach, grasp = f32(success), f32(reach), f32(grasp)
    metrics = {"success": success, "reach": reach, "grasp": grasp}
    return success + reach + grasp, dict(metrics, lift=success)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    place_key, grip_key, color_key = jax.random.split(key, 3)
    qpos = model.qpos0.at[: arm.num_qpos].set(arm.start_qpos(grip_key))
    qpos = common.place_objects(
      model, layout, qpos, place_key, extent=0.0, jitter=placement
    )
    colors = common.random_colors(color_key, 1, (0.0, 1.0))
    return base.first_state(s, model, qpos, colors, observe, METRICS)

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def expert_action(
    model: mjx.Model,
    state: types.EnvState,
    key: jax.Array,
    noise_scale: float = 0.0,
    aim_offset: jax.Array | None = None,
  ) -> jax.Array:
    """Scripted lift from privileged state: hover over the cube, align the
    jaws, descend, close, then rise; stateless (the phase is read from the
    gripper pose and the close command)."""
    data = state.physics.data
    grip = arm.tip(data)
    cube = data.xpos[cube_body]
    if aim_offset is not None:
      cube = cube.at[:2].add(aim_offset)
    dyaw = common.object_yaw_targets(layout, data, arm.yaw(data))[0]
    translation, dyaw, ready = common.approach(grip, cube, dyaw, HOVER_HEIGHT)
    closed = state.physics.gripper_closed > 0.5
    # Closed: hold still until the fingers stop, then rise; reopen (and
    # approach again) if they shut on nothing.
    fingers = arm.fingers(data)
    settled = arm.finger_speed(data) < FINGER_SETTLED
    missed = jnp.max(fingers) < FINGER_MISSED
    up = jnp.array([0.0, 0.0, LIFT_HEIGHT - grip[2]])
    hold = jnp.where(settled, up, jnp.zeros(3))
    translation = jnp.where(closed, hold, translation)
    dyaw = jnp.where(closed, 0.0, dyaw)
    close = (closed & ~missed) | ready
    action = arm.cartesian_action(
      model, data, translation, dyaw, close, s.step_s
    )
    return arm.add_noise(action, key, noise_scale)

  def sample_sizes(key: jax.Array) -> jax.Array:
    half = jax.random.uniform(
      key, (), minval=HALF_SIDE_RANGE[0], maxval=HALF_SIDE_RANGE[1]
    )
    return jnp.full((1, 3), half)

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
    sample_sizes=sample_sizes,
  )


make_lift = common.env_factory(make_lift_task)
