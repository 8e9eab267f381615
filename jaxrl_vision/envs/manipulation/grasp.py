"""Vision-based bin grasping (QT-Opt / Visionary analogue; spec C.2).

A 30x30 cm tray holds `num_objects` free objects (boxes, spheres and lying
capsules, cycled in that order) at random non-overlapping poses: one per
cell of a square grid spanning +-`object_extent`, jittered by
+-`object_jitter`. A Cartesian parallel-jaw gripper starts open 10 cm above
the tray floor at a random x-y in +-4 cm.

  observation  {"image": [H, W, 3] uint8 from the `camera`,
                "gripper_closed": () float32, "height": () float32}
  action       [7] float32: T (+-3 cm per axis), (sin, cos) of a yaw step
               (+-0.25 rad), (open, close) scores; see `common`.
  reward       -0.01 every step, +1 at the end if an object is held up.
  episode      `episode_length` steps. The last step ignores the action and
               runs the scripted lift: fingers closed, gripper raised 15 cm
               (at most to the 25 cm workspace top) within the step, along
               a ramp over 60% of its substeps. So the agent acts for
               `episode_length - 1` steps and must close the gripper on an
               object before the end (a gripper still open when the lift
               starts closes while it rises and usually misses).
  success      after the lift, some object's centre is >= 10 cm above the
               tray floor, it touches both fingers and touches neither the
               floor nor a wall (contacts within 1 mm, from MJX's contact
               list).

With `terminate_on_close`, the step after a close command is that lift
(the episode is then shorter). The last step sets `terminated` (the lift is
an irreversible terminal event, as in QT-Opt); `truncated` is always False,
so learners never bootstrap past the lift. The step count is not observed
(as in QT-Opt and Visionary).

Appearance: object colours are drawn per episode inside `reset` (hues from
`hue_range`, so train and test colours can be kept disjoint) and live in the
state; object sizes (and with them masses) are model fields, randomised per
world by `randomize_model` and vmapped over with the returned in_axes.
"""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene

KIND_CYCLE = ("box", "sphere", "capsule")
# Per-world size ranges (spec C.2): box half-sides, sphere radius, capsule
# (radius, half-length).
SIZE_RANGES = {
  "box": ((0.01, 0.01, 0.01), (0.02, 0.02, 0.02)),
  "sphere": ((0.015, 0.0, 0.0), (0.025, 0.0, 0.0)),
  "capsule": ((0.01, 0.015, 0.0), (0.015, 0.03, 0.0)),
}
HOVER_HEIGHT = 0.07  # expert's travel height: above the tallest object


def footprint_radius(kind: str) -> float:
  """The largest x-y radius an object of `kind` reaches at any size and yaw
  (boxes stand, capsules lie)."""
  hi = SIZE_RANGES[kind][1]
  if kind == "box":
    return float(np.hypot(hi[0], hi[1]))
  if kind == "sphere":
    return hi[0]
  return hi[0] + hi[1]  # capsule: radius + half-length


def layout_overlaps(kinds: tuple[str, ...], extent: float, jitter: float):
  """Whether objects of `kinds` in `common.grid_cells(len(kinds), extent)`,
  each jittered by +-`jitter` per axis, can touch at placement: the closest
  cell centres, less `2 jitter`, are nearer than the two largest radii."""
  if len(kinds) < 2:
    return False
  cells = common.grid_cells(len(kinds), extent)
  apart = np.linalg.norm(cells[:, None] - cells[None], axis=-1)
  gap = np.min(apart + np.diag(np.full(len(cells), np.inf))) - 2 * jitter
  radii = sorted((footprint_radius(k) for k in kinds), reverse=True)
  return bool(gap < radii[0] + radii[1])


def straight_descent_action(
  model: mjx.Model, state: types.EnvState, key: jax.Array
) -> jax.Array:
  """A reference policy with no x-y skill: descend 3 cm a step, close and
  hold still once the fingertips are below 1 cm, then rise.

  It reads only the observation's height and gripper flag, what the
  Q-network's state vector carries: the success a learner reaches without
  using the image to choose where to go.
  """
  del model, key
  closed = state.obs["gripper_closed"] > 0.5
  low = state.obs["height"] < 0.01
  dz = jnp.where(closed, 1.0, jnp.where(low, 0.0, -1.0))
  translation = jnp.array([0.0, 0.0, common.MAX_TRANSLATION]) * dz
  return common.make_action(translation, jnp.float32(0), closed | low)


def make_grasp_task(
  image_size: int = 64,
  num_objects: int = 3,
  episode_length: int = 10,
  substeps_per_action: int = 20,
  settle_substeps: int | None = None,
  object_extent: float | None = None,
  object_jitter: float | None = None,
  lift_height: float = 0.15,
  success_height: float = 0.10,
  step_penalty: float = 0.01,
  hue_range: tuple[float, float] = (0.0, 1.0),
  randomize_lighting: bool = False,
  randomize_camera: bool = False,
  terminate_on_close: bool = False,
  camera: str = common.CAMERA,
) -> common.ManipulationTask:
  """Builds the grasp task, its expert and its model randomiser.

  Args:
    image_size: the camera image is image_size x image_size RGB.
    num_objects: free objects in the tray (3 on CPU, 5 on GPU in spec C.2).
    episode_length: agent steps per episode, the scripted lift included.
    substeps_per_action: 5 ms physics substeps per agent step (20 = 0.1 s).
    settle_substeps: substeps simulated at reset. Default: 0 when the
      layout's cells cannot overlap (objects are placed exactly at rest and
      reset computes positions and contacts only), else 10. 0 with a layout
      whose objects can overlap raises.
    object_extent: object cells lie on a grid spanning +-object_extent
      (metres). Default 0.06 for up to 4 objects (cells at the corners of a
      12 cm square, around the gripper's start), else 0.08. Smaller is a
      denser bin, in which `straight_descent_action` finds an object more
      often (`python -m experiments.benchmarks.grasp_references`).
    object_jitter: uniform +-object_jitter (metres) around each cell
      centre. Default 0.015 for up to 4 objects, else 0.01.
    lift_height: how far the scripted lift raises the gripper (metres).
    success_height: object centre height above the floor for success.
    step_penalty: subtracted from the reward every step.
    hue_range: object hues are uniform in this range (wrapping past 1).
    randomize_lighting: draw the light per episode instead of the default.
    randomize_camera: jitter the camera per episode (+-1 cm, +-2 degrees).
    terminate_on_close: closing ends the episode (spec C.2's terminate
      option, as in QT-Opt and the KUKA grasping benchmark's auto-grasp):
      the step after the one that commanded the fingers closed ignores its
      action and runs the scripted lift, the terminal step. A grasp
      completed earlier is then rewarded earlier, so under discounting and
      the step penalty the return tells a direct approach from a slow one;
      with the fixed horizon every success pays at the same step.
    camera: the camera the agent sees through, a `scene.CAMERAS` name:
      "overhead" (the paper's view) or "wrist" (from above the fingers).

  Returns:
    A `common.ManipulationTask`; `.env` is the `types.Env`.
  """
  if num_objects < 1 or episode_length < 2 or substeps_per_action < 1:
    raise ValueError(
      "grasp needs num_objects >= 1, episode_length >= 2 and "
      f"substeps_per_action >= 1; got {num_objects=}, {episode_length=}, "
      f"{substeps_per_action=}"
    )
  kinds = tuple(KIND_CYCLE[i % 3] for i in range(num_objects))
  if object_extent is None:
    object_extent = 0.06 if num_objects <= 4 else 0.08
  if object_jitter is None:
    object_jitter = 0.015 if num_objects <= 4 else 0.01
  reach = object_extent + object_jitter + max(map(footprint_radius, kinds))
  if object_extent <= 0 or object_jitter < 0 or reach > scene.TRAY_HALF:
    raise ValueError(
      "grasp needs object_extent > 0, object_jitter >= 0 and objects inside "
      f"the tray (extent + jitter + the largest object radius <= "
      f"{scene.TRAY_HALF} m); got {object_extent=}, {object_jitter=} "
      f"(reach {reach:.3f} m)"
    )
  overlaps = layout_overlaps(kinds, object_extent, object_jitter)
  if settle_substeps is None:
    settle_substeps = 10 if overlaps else 0
  if settle_substeps == 0 and overlaps:
    raise ValueError(
      f"with settle_substeps=0 the {num_objects} objects must be placed "
      f"apart, but cells {object_extent=} m with {object_jitter=} m can "
      "overlap: raise object_extent, lower object_jitter or settle at reset "
      "(settle_substeps > 0)"
    )
  objects = tuple(scene.GRASP_FAMILIES[k] for k in kinds)
  mj_model = mujoco.MjModel.from_xml_string(
    scene.scene_xml(objects, walls=True)
  )
  layout = common.make_layout(mj_model, num_objects, camera)
  eye = render.make_camera(mj_model, camera, image_size, image_size)
  num_substeps = substeps_per_action

  def success(data: mjx.Data) -> jax.Array:
    """() bool: some object is up, between both fingers, touching nothing
    static."""
    height = data.xpos[layout.object_bodies, 2]  # [N]
    fingers = common.touching(data, layout.object_geoms, layout.finger_geoms)
    static = common.touching(data, layout.object_geoms, layout.static_geoms)
    held = (height >= success_height) & fingers.all(-1) & ~static.any(-1)
    return jnp.any(held)

  def grasped(data: mjx.Data) -> jax.Array:
    fingers = common.touching(data, layout.object_geoms, layout.finger_geoms)
    return jnp.any(fingers.all(-1))

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    return common.reset_state(
      model,
      layout,
      eye,
      key,
      lambda k: common.random_colors(k, num_objects, hue_range),
      extent=object_extent,
      jitter=object_jitter,
      settle_substeps=settle_substeps,
      randomize_lighting=randomize_lighting,
      randomize_camera=randomize_camera,
      metric_names=("success", "grasped"),
    )

  def step(
    model: mjx.Model, state: types.EnvState, action: jax.Array
  ) -> types.EnvState:
    p = state.physics
    t = p.t + 1
    final = t >= episode_length
    if terminate_on_close:  # the fingers closed during the previous step
      final = final | (p.gripper_closed > 0.5)
    ctrl, closed = common.setpoint(p.data, action)
    lift = jax.vmap(
      functools.partial(
        common.lift_setpoint,
        p.data,
        num_substeps=num_substeps,
        height=lift_height,
      )
    )(jnp.arange(num_substeps))  # [K, 6]
    ctrls = jnp.where(final, lift, jnp.broadcast_to(ctrl, lift.shape))
    data = common.simulate(model, p.data, ctrls)
    physics = p._replace(
      data=data, t=t, gripper_closed=jnp.where(final, 1.0, closed)
    )
    succeeded = final & success(data)
    reward = jnp.where(succeeded, 1.0, 0.0) - step_penalty
    return types.EnvState(
      physics=physics,
      obs=common.observe(eye, layout, model, physics),
      reward=reward.astype(jnp.float32),
      terminated=final,
      truncated=jnp.bool_(False),
      metrics={
        "success": succeeded.astype(jnp.float32),
        "grasped": (final & grasped(data)).astype(jnp.float32),
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
    """Scripted grasp from privileged state: nearest object, align the jaws,
    hover, descend, close, lift. Stateless: the phase is read from the
    state (gripper pose, the closed flag). With `aim_offset` ([2] metres)
    it aims that far off the object in x-y: the same motion, descending
    and closing at the wrong place (a dataset's contrast to the expert)."""
    del model
    p = state.physics
    data = p.data
    grip = data.qpos[:3]
    objects = data.xpos[layout.object_bodies]  # [N, 3]
    if aim_offset is not None:
      objects = objects.at[:, :2].add(aim_offset)
    dist = jnp.linalg.norm(objects[:, :2] - grip[:2], axis=-1)
    # One-hot selection, not dynamic indexing: XLA:CPU (jax 0.10.2) fails
    # to compile this function's fused dynamic slices.
    pick = common.one_hot_select(jnp.argmin(dist), num_objects)
    target = pick(objects)
    dyaw = pick(common.object_yaw_targets(layout, data))
    translation, dyaw, ready = common.approach(grip, target, dyaw, HOVER_HEIGHT)
    closed = p.gripper_closed > 0.5
    up = jnp.array([0.0, 0.0, common.MAX_TRANSLATION])
    translation = jnp.where(closed, up, translation)
    dyaw = jnp.where(closed, 0.0, dyaw)
    close = closed | ready
    action = common.make_action(translation, dyaw, close)
    return common.add_noise(action, key, noise_scale)

  def sample_sizes(key: jax.Array) -> jax.Array:
    """[N, 3] object sizes from the spec C.2 ranges of each kind."""
    keys = jax.random.split(key, num_objects)
    return jnp.stack(
      [
        jax.random.uniform(
          keys[i],
          (3,),
          minval=jnp.array(SIZE_RANGES[kind][0]),
          maxval=jnp.array(SIZE_RANGES[kind][1]),
        )
        for i, kind in enumerate(kinds)
      ]
    )

  return common.make_task(
    reset=reset,
    step=step,
    expert_action=expert_action,
    mj_model=mj_model,
    layout=layout,
    image_size=image_size,
    episode_length=episode_length,
    sample_sizes=sample_sizes,  # per-world sizes (spec C.2 ranges)
  )


make_grasp = common.env_factory(make_grasp_task)
