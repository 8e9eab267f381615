"""Block Stacking, the Robotics Suite's second task (spec surreal.md §2.3-2.4).

Two cubes on the tray floor at random non-overlapping x-y and yaw: the red
cube A (4 cm) and the green cube B (5 cm), robosuite's sizes and colours.
The robot (`envs.robots`) must lift A and leave it resting on B.

  observation  obs_mode "state":  {"proprio": [P], "object": [23]} float32
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [P]}
               object = A position, A quaternion, B position, B quaternion,
               A minus fingertips, B minus fingertips, B minus A
               (robosuite's 23 `object-state` features).
  action       the robot's (`envs.robots`).
  reward       robosuite's staged dense reward (`reward_shaping=True`),
               max(reach, lift, stack):
                 reach = 0.25 (1 - tanh(10 d(fingertips, A))) + 0.25 grasp
                 lift  = 1[A lifted] (1 + 0.5 (1 - tanh(d_xy(A, B))))
                 stack = 2 1[A lifted, touching B, not touching the fingers]
               with "lifted" the centre of A 4 cm over the floor; <= 2.
  success      stack > 0: A rests on B, released.
  episode      `episode_length` agent steps, never terminated.

`metrics` holds the success flag and the stage rewards; `expert_action`
stacks from privileged state with either robot.
"""

import jax
import jax.numpy as jnp
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import base

CUBE_A = scene.ObjectSpec("box", (0.02, 0.02, 0.02))
CUBE_B = scene.ObjectSpec("box", (0.025, 0.025, 0.025))
COLORS = ((0.8, 0.1, 0.1), (0.1, 0.7, 0.1))  # red A, green B
LIFTED = 0.04  # A's centre over the floor
HOVER_HEIGHT = 0.08  # expert's travel height of the fingertips
CLEARANCE = 0.01  # expert carries A's bottom this far over B's top
RELEASE_GAP = 0.004  # and opens with this gap left
OBJECT_SIZE = 23
METRICS = ("success", "reach", "lift", "stack")


def make_stack_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 60,
  substeps_per_action: int = 10,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
) -> common.ManipulationTask:
  """Builds Block Stacking, its expert and its per-world randomiser (mass,
  friction; the cubes keep robosuite's sizes).

  Args: as `lift.make_lift_task` (no placement: the cubes sit in two cells
  12 cm apart with +-2 cm jitter).
  """
  base.check_args(
    "stack",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
    robot,
  )
  s = base.make_scene(
    (CUBE_A, CUBE_B), robot, camera, image_size, substeps_per_action
  )
  layout, arm = s.layout, s.robot
  bodies, geoms = layout.object_bodies, layout.object_geoms
  colors = jnp.asarray(COLORS, jnp.float32)

  def features(data):
    a, b = data.xpos[bodies[0]], data.xpos[bodies[1]]
    tip = arm.tip(data)
    return jnp.concatenate(
      [a, data.xquat[bodies[0]], b, data.xquat[bodies[1]]]
      + [a - tip, b - tip, b - a]
    )

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def score(data):
    """max(reach, lift, stack) and the stages (success, reach, lift,
    stack), float32 scalars."""
    a, b = data.xpos[bodies[0]], data.xpos[bodies[1]]
    fingers = common.touching(data, [geoms[0]], layout.finger_geoms)
    grasp = jnp.all(fingers)
    reach = 0.25 * (1.0 - jnp.tanh(10.0 * jnp.linalg.norm(a - arm.tip(data))))
    reach = reach + 0.25 * grasp
    lifted = a[2] > LIFTED
    d_xy = jnp.linalg.norm(a[:2] - b[:2])
    lift = lifted * (1.0 + 0.5 * (1.0 - jnp.tanh(d_xy)))
    on_b = common.touching(data, [geoms[0]], [geoms[1]])[0, 0]
    stacked = lifted & on_b & ~jnp.any(fingers)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    success, reach, lift, stack = (
      f32(stacked),
      f32(reach),
      f32(lift),
      f32(2.0 * stacked),
    )
    reward = jnp.maximum(jnp.maximum(reach, lift), stack)
    metrics = {"success": success, "reach": reach, "lift": lift, "stack": stack}
    return reward, metrics

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    place_key, grip_key = jax.random.split(key)
    qpos = model.qpos0.at[: arm.num_qpos].set(arm.start_qpos(grip_key))
    qpos = common.place_objects(
      model, layout, qpos, place_key, extent=0.06, jitter=0.02
    )
    return base.first_state(s, model, qpos, colors, observe, METRICS)

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def expert_action(
    model: mjx.Model,
    state: types.EnvState,
    key: jax.Array,
    noise_scale: float = 0.0,
    aim_offset: jax.Array | None = None,
  ) -> jax.Array:
    """Scripted stack from privileged state: grasp A from above, lift it
    clear of B, carry it over B, lower it to a few mm above B and open, then
    retract. Stateless: the phase is read from the state."""
    p = state.physics
    data = p.data
    grip = arm.tip(data)
    a, b = data.xpos[bodies[0]], data.xpos[bodies[1]]
    height = model.geom_size[geoms[0], 2] + model.geom_size[geoms[1], 2]
    closed = p.gripper_closed > 0.5
    fingers = common.touching(data, [geoms[0]], layout.finger_geoms)[0]
    holding = closed & jnp.all(fingers)
    on_b = (jnp.abs(a[2] - b[2] - height) < 0.01) & (
      jnp.linalg.norm(a[:2] - b[:2]) < 0.02
    )
    dyaw = common.object_yaw_targets(layout, data, arm.yaw(data))[0]
    aim = a if aim_offset is None else a.at[:2].add(aim_offset)
    reach, reach_yaw, ready = common.approach(grip, aim, dyaw, HOVER_HEIGHT)
    up = jnp.array([0.0, 0.0, common.MAX_TRANSLATION])
    carry_z = b[2] + height + CLEARANCE
    release_z = b[2] + height + RELEASE_GAP
    xy_err = b[:2] - a[:2]
    aligned = jnp.linalg.norm(xy_err) < 0.005
    lifted = a[2] > b[2] + 0.01
    z_goal = jnp.where(aligned, release_z, carry_z)
    carry = jnp.concatenate(
      [jnp.where(lifted, xy_err, 0.0), (z_goal - a[2])[None]]
    )
    release = aligned & (jnp.abs(a[2] - release_z) < 0.004)
    settled = arm.finger_speed(data) < 0.02
    translation = jnp.where(on_b, up, reach)
    carry = jnp.where(settled, carry, 0.0)  # let the grip close first
    translation = jnp.where(holding, carry, translation)
    translation = jnp.where(closed & ~holding, 0.0, translation)  # missed
    close = jnp.where(holding, ~release, ~closed & ~on_b & ready)
    close = close | (closed & ~holding & (jnp.max(arm.fingers(data)) > 0.004))
    dyaw = jnp.where(closed | on_b, 0.0, reach_yaw)
    action = arm.cartesian_action(
      model, data, translation, dyaw, close, s.step_s
    )
    return arm.add_noise(action, key, noise_scale)

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
  )


make_suite_stack = common.env_factory(make_stack_task)
