"""Block Lifting, the Robotics Suite's first task (spec surreal.md §2.3-2.4).

A cube rests on the tray floor at a random x-y (uniform in +-`placement`
around the centre) and yaw; its half-side is drawn per world in
`HALF_SIDE_RANGE` by `randomize_model` (the seed randomises "the size and the
placement of the cube"). The Cartesian parallel-jaw gripper of
`envs.manipulation` starts open 10 cm up at a random x-y in +-4 cm.

  observation  obs_mode "state":  {"proprio": [14], "object": [10]} float32
               obs_mode "pixels": {"image": [H, W, 3] uint8, "proprio": [14]}
               proprio = gripper x, y, z (metres), sin and cos of its yaw,
               finger openings (1 = open), the gripper's 6 joint velocities
               and the close command (0 / 1); object = cube position,
               quaternion, and cube minus gripper position (robosuite's
               `object-state`).
  action       [7] float32, the Cartesian action of `envs.manipulation.common`
               (3 cm per axis and step, a yaw step, open/close scores).
  reward       robosuite's dense Lift reward (`reward_shaping=True`):
               1[success] + reach + grasp, reach = 1 - tanh(10 d(fingertips,
               cube)), grasp = 0.25 if both fingers touch the cube; <= 2.25.
  success      the cube's centre is above `SUCCESS_HEIGHT` (4 cm) over the
               floor (robosuite: cube z > table z + 0.04).
  episode      `episode_length` agent steps of `substeps_per_action` 5 ms
               physics substeps; never terminated, truncated at the limit
               (learners bootstrap from the final observation).

`metrics` holds the success flag and the stage rewards (reach, grasp, lift)
of the step; `expert_action` lifts the cube from privileged state.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene

HALF_SIDE_RANGE = (0.015, 0.025)  # metres; spec §0 item 7 [D]
SUCCESS_HEIGHT = 0.04  # cube centre above the floor
HOVER_HEIGHT = 0.08  # expert's travel height of the fingertips
LIFT_HEIGHT = 0.12  # the expert lifts the fingertips to here
FINGER_SETTLED = 0.02  # m/s: the closing fingers have stopped
FINGER_MISSED = 0.004  # m: fingers this shut hold nothing
OBS_MODES = ("state", "pixels")
PROPRIO_SIZE = 14
OBJECT_SIZE = 10
METRICS = ("success", "reach", "grasp", "lift")


def proprio(physics: common.ManipPhysics) -> jax.Array:
  """[14] float32: the gripper's own state (see the module doc)."""
  data = physics.data
  yaw = data.qpos[3]
  return jnp.concatenate(
    [
      data.qpos[:3],
      jnp.stack([jnp.sin(yaw), jnp.cos(yaw)]),
      data.qpos[4:6] / scene.FINGER_OPEN,
      data.qvel[: common.NUM_GRIPPER_DOF],
      physics.gripper_closed[None],
    ]
  ).astype(jnp.float32)


def make_lift_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 50,
  substeps_per_action: int = 10,
  placement: float = 0.06,
  camera: str = "overhead",
) -> common.ManipulationTask:
  """Builds Block Lifting with the Cartesian gripper, its expert and its
  per-world randomiser (cube size, mass, friction).

  Args:
    obs_mode: "state" (proprio + object features) or "pixels" (camera
      image + proprio).
    image_size: the camera image is image_size x image_size RGB (pixels).
    episode_length: agent steps per episode.
    substeps_per_action: 5 ms physics substeps per agent step (10 = 20 Hz).
    placement: the cube's centre is uniform in +-placement (metres) in x
      and y.
    camera: a `scene.CAMERAS` name, for "pixels".
  """
  if obs_mode not in OBS_MODES:
    raise ValueError(f"obs_mode must be one of {OBS_MODES}: {obs_mode!r}")
  if episode_length < 1 or substeps_per_action < 1:
    raise ValueError(
      "lift needs episode_length >= 1 and substeps_per_action >= 1; got "
      f"{episode_length=}, {substeps_per_action=}"
    )
  reach = placement + np.sqrt(2) * HALF_SIDE_RANGE[1]
  if placement < 0 or reach > scene.TRAY_HALF:
    raise ValueError(
      f"placement must be in [0, {scene.TRAY_HALF - 0.036:.3f}] m (the cube "
      f"inside the tray); got {placement}"
    )
  mj_model = mujoco.MjModel.from_xml_string(
    scene.scene_xml((scene.CUBE,), walls=True)
  )
  layout = common.make_layout(mj_model, 1, camera)
  eye = render.make_camera(mj_model, camera, image_size, image_size)
  cube_body, cube_geom = layout.object_bodies[0], layout.object_geoms[0]

  def observe(model, physics):
    if obs_mode == "pixels":
      image = common.observe(eye, layout, model, physics)["image"]
      return {"image": image, "proprio": proprio(physics)}
    data = physics.data
    cube = data.xpos[cube_body]
    return {
      "proprio": proprio(physics),
      "object": jnp.concatenate(
        [cube, data.xquat[cube_body], cube - data.qpos[:3]]
      ).astype(jnp.float32),
    }

  def stages(data):
    """(success, reach, grasp, lift) of a state, as float32 scalars."""
    cube = data.xpos[cube_body]
    reach_r = 1.0 - jnp.tanh(10.0 * jnp.linalg.norm(cube - data.qpos[:3]))
    fingers = common.touching(data, [cube_geom], layout.finger_geoms)
    grasp_r = 0.25 * jnp.all(fingers)
    success = cube[2] > SUCCESS_HEIGHT
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return f32(success), f32(reach_r), f32(grasp_r), f32(success)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    place_key, grip_key, color_key = jax.random.split(key, 3)
    qpos = model.qpos0.at[: common.NUM_GRIPPER_DOF].set(
      common.gripper_start_qpos(grip_key)
    )
    qpos = common.place_objects(
      model, layout, qpos, place_key, extent=0.0, jitter=placement
    )
    shift, rot = common.no_camera_jitter()
    physics = common.ManipPhysics(
      data=common.reset_data(model, qpos, 0),
      t=jnp.int32(0),
      gripper_closed=jnp.float32(0),
      object_rgb=common.random_colors(color_key, 1, (0.0, 1.0)),
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
      metrics={name: jnp.float32(0) for name in METRICS},
      info={},
    )

  def step(
    model: mjx.Model, state: types.EnvState, action: jax.Array
  ) -> types.EnvState:
    p = state.physics
    ctrl, closed = common.setpoint(p.data, action)
    ctrls = jnp.broadcast_to(ctrl, (substeps_per_action, ctrl.shape[0]))
    data = common.simulate(model, p.data, ctrls)
    t = p.t + 1
    physics = p._replace(data=data, t=t, gripper_closed=closed)
    success, reach_r, grasp_r, lift_r = stages(data)
    return types.EnvState(
      physics=physics,
      obs=observe(model, physics),
      reward=success + reach_r + grasp_r,
      terminated=jnp.bool_(False),
      truncated=t >= episode_length,
      metrics={
        "success": success,
        "reach": reach_r,
        "grasp": grasp_r,
        "lift": lift_r,
      },
      info=state.info,
    )

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
    del model
    data = state.physics.data
    grip = data.qpos[:3]
    cube = data.xpos[cube_body]
    if aim_offset is not None:
      cube = cube.at[:2].add(aim_offset)
    dyaw = common.object_yaw_targets(layout, data)[0]
    translation, dyaw, ready = common.approach(grip, cube, dyaw, HOVER_HEIGHT)
    closed = state.physics.gripper_closed > 0.5
    # Closed: hold still until the fingers stop, then rise; reopen (and
    # approach again) if they shut on nothing.
    fingers = data.qpos[4:6]
    settled = jnp.max(jnp.abs(data.qvel[4:6])) < FINGER_SETTLED
    missed = jnp.max(fingers) < FINGER_MISSED
    up = jnp.array([0.0, 0.0, LIFT_HEIGHT - grip[2]])
    hold = jnp.where(settled, up, jnp.zeros(3))
    translation = jnp.where(closed, hold, translation)
    dyaw = jnp.where(closed, 0.0, dyaw)
    close = (closed & ~missed) | ready
    action = common.make_action(translation, dyaw, close)
    return common.add_noise(action, key, noise_scale)

  def sample_sizes(key: jax.Array) -> jax.Array:
    half = jax.random.uniform(
      key, (), minval=HALF_SIDE_RANGE[0], maxval=HALF_SIDE_RANGE[1]
    )
    return jnp.full((1, 3), half)

  task = common.make_task(
    reset=reset,
    step=step,
    expert_action=expert_action,
    mj_model=mj_model,
    layout=layout,
    image_size=image_size,
    episode_length=episode_length,
    sample_sizes=sample_sizes,
    observe=observe,
  )
  if obs_mode == "state":
    spec = task.env.spec._replace(
      obs_shape=(PROPRIO_SIZE + OBJECT_SIZE,), obs_dtype=jnp.float32
    )
    task = task._replace(env=task.env._replace(spec=spec))
  return task


make_lift = common.env_factory(make_lift_task)
