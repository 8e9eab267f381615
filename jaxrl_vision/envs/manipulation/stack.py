"""Block stacking from pixels (Visionary's simulated task; spec C.3).

Two 4 cm cubes of different colours lie on the table at random
non-overlapping positions (within a 25x25 cm area) and random yaws; the
gripper is the one of the grasp task and so are the observation and action
(see `grasp` and `common`).

  reward   -0.01 every step, +1 on success.
  success  one cube rests on the other: |dz - 0.04| < 5 mm, horizontal
           offset < 2 cm, gripper commanded open and not touching the top
           cube, both cubes slower than 1 cm/s, all of it for `hold_steps`
           consecutive agent steps (spec C.3: 3).
  episode  ends on success (`terminated`) or after `episode_length` steps
           (`truncated`: the blocks can still be stacked, so a learner should
           bootstrap from the final observation).

`randomize_model` draws per-world cube masses x[0.5, 2] and friction
x[0.5, 1.5] (`common.randomize_world`); the cubes stay 4 cm.

Cube colours are drawn per episode in `reset` (hues half of `hue_range`
apart, so the two cubes always differ); the expert always puts cube 0 on
cube 1, so learners must tell them apart by colour.
"""

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene

HOVER_HEIGHT = 0.07  # expert's travel height: 3 cm above a cube
CLEARANCE = 0.008  # expert carries the cube's bottom this far above the other
RELEASE_GAP = 0.005  # expert opens 4.5 cm above the lower cube's centre
SPEED_LIMIT = 0.01  # m/s: both cubes slower than this count as resting


def make_stack_task(
  image_size: int = 64,
  episode_length: int = 15,
  substeps_per_action: int = 20,
  settle_substeps: int = 0,
  hold_steps: int = 3,
  step_penalty: float = 0.01,
  hue_range: tuple[float, float] = (0.0, 1.0),
  randomize_lighting: bool = False,
  randomize_camera: bool = False,
  camera: str = common.CAMERA,
) -> common.ManipulationTask:
  """Builds the stack task, its expert and its model randomiser.

  Args:
    image_size: the camera image is image_size x image_size RGB.
    episode_length: agent steps before truncation.
    substeps_per_action: 5 ms physics substeps per agent step (20 = 0.1 s).
    settle_substeps: substeps simulated at reset; 0 (the cubes are placed
      exactly at rest, apart) computes positions and contacts only.
    hold_steps: consecutive agent steps the stacked state must hold.
    step_penalty: subtracted from the reward every step.
    hue_range: cube hues lie in this range (wrapping past 1).
    randomize_lighting: draw the light per episode instead of the default.
    randomize_camera: jitter the camera per episode (+-1 cm, +-2 degrees).
    camera: the camera the agent sees through, a `scene.CAMERAS` name:
      "overhead" (the paper's view) or "wrist" (from above the fingers).

  Returns:
    A `common.ManipulationTask`; `.env` is the `types.Env`.
  """
  if episode_length < 1 or substeps_per_action < 1 or hold_steps < 1:
    raise ValueError(
      "stack needs episode_length, substeps_per_action and hold_steps >= 1; "
      f"got {episode_length=}, {substeps_per_action=}, {hold_steps=}"
    )
  mj_model = mujoco.MjModel.from_xml_string(
    scene.scene_xml((scene.CUBE, scene.CUBE), walls=False)
  )
  layout = common.make_layout(mj_model, 2, camera)
  eye = render.make_camera(mj_model, camera, image_size, image_size)
  num_substeps = substeps_per_action

  def stacked(model: mjx.Model, physics: common.ManipPhysics) -> jax.Array:
    """() bool: one cube rests on the other, released and still."""
    data = physics.data
    pos = data.xpos[layout.object_bodies]  # [2, 3]
    half = model.geom_size[layout.object_geoms, 2]  # [2]
    fingers = common.touching(data, layout.object_geoms, layout.finger_geoms)
    vel = jnp.stack(
      [data.qvel[a : a + 3] for a in layout.object_qvel]
    )  # [2, 3] linear velocities of the free joints
    slow = jnp.all(jnp.linalg.norm(vel, axis=-1) < SPEED_LIMIT)
    released = physics.gripper_closed < 0.5
    result = jnp.bool_(False)
    for top, bottom in ((0, 1), (1, 0)):
      dz = pos[top, 2] - pos[bottom, 2] - (half[top] + half[bottom])
      offset = jnp.linalg.norm(pos[top, :2] - pos[bottom, :2])
      on = (jnp.abs(dz) < 0.005) & (offset < 0.02) & ~fingers[top].any()
      result |= on
    return result & slow & released

  def cube_colors(key: jax.Array) -> jax.Array:
    """[2, 3]: the second cube's hue is half the range from the first's."""
    lo, hi = hue_range
    hue = jax.random.uniform(key, (), minval=lo, maxval=hi)
    hues = jnp.stack([hue, lo + jnp.mod(hue - lo + (hi - lo) / 2, hi - lo)])
    return common.hsv_to_rgb(
      jnp.stack([jnp.mod(hues, 1.0), jnp.full(2, 0.8), jnp.full(2, 0.9)], -1)
    )

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    # Cells 12 cm apart with +-2 cm jitter: centres within +-8 cm, so the
    # cubes stay inside a 25x25 cm area and never start touching.
    return common.reset_state(
      model,
      layout,
      eye,
      key,
      cube_colors,
      extent=0.06,
      jitter=0.02,
      settle_substeps=settle_substeps,
      randomize_lighting=randomize_lighting,
      randomize_camera=randomize_camera,
      metric_names=("success", "stacked"),
    )

  def step(
    model: mjx.Model, state: types.EnvState, action: jax.Array
  ) -> types.EnvState:
    p = state.physics
    ctrl, closed = common.setpoint(p.data, action)
    data = common.simulate(
      model, p.data, jnp.broadcast_to(ctrl, (num_substeps, ctrl.shape[0]))
    )
    physics = p._replace(data=data, t=p.t + 1, gripper_closed=closed)
    now = stacked(model, physics)
    stable_steps = jnp.where(now, p.stable_steps + 1, 0).astype(jnp.int32)
    physics = physics._replace(stable_steps=stable_steps)
    succeeded = stable_steps >= hold_steps
    reward = jnp.where(succeeded, 1.0, 0.0) - step_penalty
    return types.EnvState(
      physics=physics,
      obs=common.observe(eye, layout, model, physics),
      reward=reward.astype(jnp.float32),
      terminated=succeeded,
      truncated=(physics.t >= episode_length) & ~succeeded,
      metrics={
        "success": succeeded.astype(jnp.float32),
        "stacked": now.astype(jnp.float32),
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
    """Scripted stack from privileged state: grasp cube 0 from above, lift,
    carry it over cube 1, lower it to 4.5 cm above cube 1's centre, open and
    retract. Stateless: the phase is read from the state. With `aim_offset`
    ([2] metres) it reaches for cube 0 that far off in x-y (a dataset's
    contrast to the expert)."""
    p = state.physics
    data = p.data
    grip = data.qpos[:3]
    pos = data.xpos[layout.object_bodies]  # [2, 3]
    a, b = pos[0], pos[1]
    height = (
      model.geom_size[layout.object_geoms[0], 2]
      + model.geom_size[layout.object_geoms[1], 2]
    )  # centre-to-centre height of a stack
    closed = p.gripper_closed > 0.5
    fingers = common.touching(data, layout.object_geoms, layout.finger_geoms)
    holding = closed & fingers[0].all()
    on_b = (jnp.abs(a[2] - b[2] - height) < 0.01) & (
      jnp.linalg.norm(a[:2] - b[:2]) < 0.02
    )

    # Open gripper: approach cube 0 unless it is already on cube 1.
    dyaw = common.object_yaw_targets(layout, data)[0]
    aim = a if aim_offset is None else a.at[:2].add(aim_offset)
    reach, reach_yaw, ready = common.approach(grip, aim, dyaw, HOVER_HEIGHT)
    up = jnp.array([0.0, 0.0, common.MAX_TRANSLATION])

    # Carrying: lift until cube 0 clears cube 1, then move over it, then
    # lower it to the release height and open.
    carry_z = b[2] + height + CLEARANCE
    release_z = b[2] + height + RELEASE_GAP
    xy_err = b[:2] - a[:2]
    aligned = jnp.linalg.norm(xy_err) < 0.005
    lifted = a[2] > b[2] + 0.01  # bottom of cube 0 above 3 cm after a lift
    z_goal = jnp.where(aligned, release_z, carry_z)
    carry = jnp.concatenate(
      [jnp.where(lifted, xy_err, 0.0), (z_goal - a[2])[None]]
    )
    # Carrying at 8 mm clearance is within reach of the 5 mm release gap, so
    # the expert opens as soon as it is aligned: one step saved.
    release = aligned & (jnp.abs(a[2] - release_z) < 0.004)

    translation = jnp.where(on_b, up, reach)
    translation = jnp.where(holding, carry, translation)
    translation = jnp.where(closed & ~holding, 0.0, translation)  # missed
    # A close that caught nothing opens again, then the approach resumes.
    close = jnp.where(holding, ~release, ~closed & ~on_b & ready)
    dyaw = jnp.where(closed | on_b, 0.0, reach_yaw)
    action = common.make_action(translation, dyaw, close)
    return common.add_noise(action, key, noise_scale)

  return common.make_task(
    reset=reset,
    step=step,
    expert_action=expert_action,
    mj_model=mj_model,
    layout=layout,
    image_size=image_size,
    episode_length=episode_length,
  )


make_stack = common.env_factory(make_stack_task)
