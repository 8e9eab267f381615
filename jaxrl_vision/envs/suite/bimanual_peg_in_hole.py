"""Bimanual Peg-in-hole, the Robotics Suite's third task (spec surreal.md
§2.3-2.4, robosuite's `BaxterPegInHole`), with two Cartesian grippers.

robosuite's Baxter has no grippers here: the objects are fixed to its
hands (the board to the left, the peg to the right, as here; the seed's
text has them the other way round). Here they are child bodies of the two
hands of
`envs.robots.two_grippers` (so the recipe, the curriculum and the camera
work unchanged), fixed in the fingertips' frame:

  board  left hand: a square plate (`BOARD_HALF` = 6 cm half-side, 1.2 cm
         thick) with a square hole of `HOLE_HALF` (4 cm) half-side in its
         centre, four box geoms around the hole, hanging in the hand's x-z
         plane with the hole's centre `BOARD_DROP` (6.5 cm) below the
         fingertips; the hole's normal n is the hand's +y axis.
  peg    right hand: a capsule of radius r ~ U(0.015, 0.03) m per world
         (`randomize_model`) and `PEG_LENGTH` (13 cm, tip to tip, the
         spec's length), along the hand's +y axis, its back end between the
         open jaws and its centre `PEG_OFFSET` (5 cm) ahead of the
         fingertips; its axis v points at its free end.

The hands keep their jaws and grip command (the 10-D action is unchanged),
but the grip has no effect on the task: the fingers touch nothing. Only the
peg and the board's four boxes collide (contact bit 4: 4 capsule-box
pairs, the scene's only ones; the held objects pass through the floor, the
walls and the fingers, which the start poses and the expert stay clear of).
Both hands start open with the fingertips at x = -+`START_X` (9 cm,
+-1.5 cm), y +-2 cm, the left one at z ~ U(0.14, 0.17), the right one 4-6
cm higher (its peg over the board's top edge: d >= 10.5 cm), each turned
`START_YAW` (the axes along -x) +- `YAW_RANGE` (0.5 rad, uniform): heights
and axes must be aligned before the peg goes in.

  observation  obs_mode "state":  {"proprio": [28], "object": [17]} float32
               obs_mode "pixels": {"image": [H, W, C] uint8, "proprio": [28]}
               object = hole position and quaternion, peg minus hole, peg
               quaternion, t, d, cos: 3 + 4 + 3 + 4 + 3 = 17, robosuite's
               `object-state` (the spec's count).
  action       [10] float32 in [-1, 1]: [left, right], each hand's
               (dx, dy, dz, turn, grip), `envs.robots.two_grippers`.
  reward       the spec's row (robosuite's dense `BaxterPegInHole`):
                 1[success] + (1 - tanh(|peg - hole|)) + (1 - tanh(d))
                 + (1 - tanh(|t|)) + cos                       (max 5)
               with t = (hole - peg) . v, the hole centre's position along
               the peg's axis from the peg's centre, d = |v x (peg - hole)|
               its distance from that axis, cos = |n . v| (robosuite's
               absolute value). Positions are the peg's and the hole's
               centres (robosuite's hole body sits 10 cm off its hole, its
               t and d use the centre).
  success      d < 0.06, -0.12 <= t <= 0.14 and cos > 0.95 (the spec's).
  episode      `episode_length` agent steps, never terminated.

`metrics` holds success and the reward's terms: reach (1 - tanh of the
peg-hole distance), perpendicular (1 - tanh(d)), along (1 - tanh(|t|)) and
cos; and `inserted` (not rewarded): the peg through the hole, d < 1 cm,
|t| < 3.5 cm, cos > 0.95, stricter than the spec's success. `expert_action` inserts the peg from privileged state: the left hand
holds still, the right one turns the peg's axis onto the hole's normal,
moves it onto that axis `STANDOFF` (12 cm) short of the hole, then pushes
it in to t = 0. `straight_descent`, the reference without the key skill,
is the expert taking the peg's own axis for the hole's normal: no turn,
the peg pushed along its axis through the hole's centre (it succeeds only
where the start yaws happen to agree within ~18 degrees).

Measured (64 randomised worlds each, success at the last of 30 steps):
expert 64/64 (the spec's success after 1-2 steps, the peg all the way in,
t = d = 0, after 7-9), the no-turn reference 29/64, random actions 2/64
(9/64 succeed at some step).
"""

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import two_grippers
from jaxrl_vision.envs.suite import base

HOLE_HALF = 0.04  # metres: half-side of the square hole
BAR_HALF = 0.01  # half-width of the frame's bars
BOARD_HALF = HOLE_HALF + 2 * BAR_HALF  # 0.06, the board's half-side
BOARD_THICKNESS_HALF = 0.006
BOARD_DROP = 0.065  # the hole's centre below the left fingertips
PEG_LENGTH = 0.13  # tip to tip
PEG_RADIUS_RANGE = (0.015, 0.03)  # per world, the spec's
PEG_RADIUS = 0.0225  # the model's default, the middle of the range
PEG_OFFSET = 0.05  # the peg's centre ahead of the right fingertips
MAX_D = 0.06  # success: d < MAX_D, T_RANGE[0] <= t <= T_RANGE[1],
T_RANGE = (-0.12, 0.14)  # cos > MIN_COS
MIN_COS = 0.95
START_X = 0.09  # metres: the hands start this far left / right of centre
START_X_NOISE = 0.015
START_Y_NOISE = 0.02
START_Z = (0.14, 0.17)  # the left fingertips' height
RIGHT_ABOVE = (0.04, 0.06)  # the right fingertips' start over the left's
START_YAW = np.pi / 2  # the hands' axes along world -x
YAW_RANGE = 0.5  # radians, uniform per hand
STANDOFF = 0.12  # the expert lines the peg up at t = STANDOFF
ON_AXIS = 0.004  # metres off the hole's axis the expert pushes in from
IN_HOLE = 0.008  # ... and keeps pushing from once under way
YAW_ALIGNED = 0.05  # radians
OBJECT_SIZE = 17
BOARD_COLOR = "0.55 0.35 0.2 1"
PEG_COLOR = "0.2 0.45 0.8 1"
REWARD_TERMS = ("success", "reach", "perpendicular", "along", "cos")
# `inserted`: the peg through the hole for any radius in the range (its
# axis within HOLE_HALF - max radius of the hole's centre, which lies
# along the peg's straight part, and aligned). The spec's success is
# looser: it holds with the peg's tip still up to 6 cm off the hole.
INSERTED_D = HOLE_HALF - PEG_RADIUS_RANGE[1]  # 0.01
INSERTED_T = PEG_LENGTH / 2 - PEG_RADIUS_RANGE[1]  # 0.035
METRICS = REWARD_TERMS + ("inserted",)
ROBOTS = ("gripper", "two_grippers")  # either name: one gripper per hand
# Contact bit 4: the peg (contype) meets the board (conaffinity) only.
_PEG_BITS = 'contype="4" conaffinity="0" solref="0.01 1"'
_BOARD_BITS = 'contype="0" conaffinity="4" solref="0.01 1"'
# Body z along the hand's +y (x = -hand x, y = hand z).
_ALONG_Y = 'xyaxes="-1 0 0 0 0 1"'


def board_xml() -> str:
  """The board, a child body of the left hand: four bars around the hole,
  in its body's x-y plane (the hole's normal is its z axis)."""
  bar = BOARD_HALF - BAR_HALF  # the bars' centres off the hole's centre
  t = BOARD_THICKNESS_HALF
  bars = (
    ("top", (0, bar), (BOARD_HALF, BAR_HALF)),
    ("bottom", (0, -bar), (BOARD_HALF, BAR_HALF)),
    ("near", (bar, 0), (BAR_HALF, HOLE_HALF)),
    ("far", (-bar, 0), (BAR_HALF, HOLE_HALF)),
  )
  geoms = "".join(
    f"""
        <geom name="board_{name}" type="box" size="{sx:.6g} {sy:.6g} {t}"
          pos="{x:.6g} {y:.6g} 0" density="{scene.OBJECT_DENSITY}"
          rgba="{BOARD_COLOR}" {_BOARD_BITS}/>"""
    for name, (x, y), (sx, sy) in bars
  )
  return f"""
      <body name="board" pos="0 0 {-BOARD_DROP}" {_ALONG_Y} gravcomp="1">{geoms}
      </body>
"""


def peg_xml() -> str:
  """The peg, a child body of the right hand (capsule along its z)."""
  half = PEG_LENGTH / 2 - PEG_RADIUS
  return f"""
      <body name="peg" pos="0 {PEG_OFFSET} 0" {_ALONG_Y} gravcomp="1">
        <geom name="peg" type="capsule" size="{PEG_RADIUS} {half:.6g}"
          density="{scene.OBJECT_DENSITY}" rgba="{PEG_COLOR}" {_PEG_BITS}/>
      </body>
"""


def robot_parts() -> tuple[str, str]:
  """(worldbody, actuator) MJCF: `two_grippers` holding the board (left)
  and the peg (right)."""
  left, right = scene.HANDS
  body = scene.gripper_xml(left, board_xml()) + scene.gripper_xml(
    right, peg_xml()
  )
  return body, two_grippers.actuator_xml()


def peg_geometry(
  peg: jax.Array, axis: jax.Array, hole: jax.Array, normal: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(t, d, cos) of robosuite's `_compute_orientation` ([3] each: the
  peg's centre and unit axis, the hole's centre and unit normal)."""
  t = jnp.dot(hole - peg, axis)
  d = jnp.linalg.norm(jnp.cross(axis, peg - hole))
  return t, d, jnp.abs(jnp.dot(normal, axis))


def is_success(t: jax.Array, d: jax.Array, cos: jax.Array) -> jax.Array:
  """d < 0.06, -0.12 <= t <= 0.14, cos > 0.95."""
  return (d < MAX_D) & (t >= T_RANGE[0]) & (t <= T_RANGE[1]) & (cos > MIN_COS)


def start_qpos(key: jax.Array) -> jax.Array:
  """[12]: the hands' start (module docstring), jaws open."""
  xy_key, z_key, above_key, yaw_key = jax.random.split(key, 4)
  noise = jnp.array([START_X_NOISE, START_Y_NOISE])
  xy = jax.random.uniform(xy_key, (2, 2), minval=-1.0, maxval=1.0) * noise
  xy = xy.at[:, 0].add(jnp.array([-START_X, START_X]))
  z = jax.random.uniform(z_key, (), minval=START_Z[0], maxval=START_Z[1])
  above = jax.random.uniform(
    above_key, (), minval=RIGHT_ABOVE[0], maxval=RIGHT_ABOVE[1]
  )
  yaw = START_YAW + jax.random.uniform(
    yaw_key, (2,), minval=-YAW_RANGE, maxval=YAW_RANGE
  )
  fingers = jnp.full((2, 2), scene.FINGER_OPEN)
  hands = jnp.concatenate(
    [xy, jnp.stack([z, z + above])[:, None], yaw[:, None], fingers], -1
  )
  return hands.reshape(-1).astype(jnp.float32)


def _wrap(angle: jax.Array) -> jax.Array:
  return jnp.mod(angle + jnp.pi, 2 * jnp.pi) - jnp.pi


def make_bimanual_peg_in_hole_task(
  obs_mode: str = "state",
  image_size: int = 64,
  episode_length: int = 30,
  substeps_per_action: int = 10,
  camera: str = "overhead",
  depth: bool = False,
  frame_stack: int = 1,
  robot: str = "gripper",
) -> common.ManipulationTask:
  """Builds Bimanual Peg-in-hole, its expert and its per-world randomiser
  (the peg's radius, with its mass and inertia; friction).

  Args: as `lift.make_lift_task` (no placement), except that `robot` must
  be "gripper" or "two_grippers" (both: a Cartesian gripper per hand) and
  `camera` "overhead" (each hand has its own wrist camera).
  """
  base.check_args(
    "bimanual_peg_in_hole",
    obs_mode,
    depth,
    frame_stack,
    episode_length,
    substeps_per_action,
  )
  if robot not in ROBOTS:
    raise ValueError(
      f"bimanual peg-in-hole needs a gripper per hand: robot must be one "
      f"of {ROBOTS}; got {robot!r}"
    )
  if camera != "overhead":
    raise ValueError(
      f"bimanual peg-in-hole sees through 'overhead': {camera!r}"
    )
  s = base.make_scene(
    (),
    "two_grippers",
    camera,
    image_size,
    substeps_per_action,
    robot_parts=robot_parts(),
  )
  layout, arm = s.layout, s.robot
  board_body = s.mj_model.body("board").id
  peg_body = s.mj_model.body("peg").id
  peg_geom = s.mj_model.geom("peg").id
  no_colors = jnp.zeros((0, 3), jnp.float32)  # no free objects to tint
  closed0 = jnp.zeros(two_grippers.NUM_HANDS, jnp.float32)

  def poses(data):
    """(peg centre, peg axis, hole centre, hole normal), [3] each."""
    return (
      data.xpos[peg_body],
      data.xmat[peg_body, :, 2],
      data.xpos[board_body],
      data.xmat[board_body, :, 2],
    )

  def features(data):
    peg, axis, hole, normal = poses(data)
    t, d, cos = peg_geometry(peg, axis, hole, normal)
    return jnp.concatenate(
      [hole, data.xquat[board_body], peg - hole, data.xquat[peg_body]]
      + [jnp.stack([t, d, cos])]
    )

  observe = base.make_observe(s, obs_mode, depth, frame_stack, features)

  def score(data):
    """The spec's reward and its terms, float32 scalars."""
    peg, axis, hole, normal = poses(data)
    t, d, cos = peg_geometry(peg, axis, hole, normal)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    metrics = {
      "success": f32(is_success(t, d, cos)),
      "reach": f32(1.0 - jnp.tanh(jnp.linalg.norm(peg - hole))),
      "perpendicular": f32(1.0 - jnp.tanh(d)),
      "along": f32(1.0 - jnp.tanh(jnp.abs(t))),
      "cos": f32(cos),
      "inserted": f32(
        (d < INSERTED_D) & (jnp.abs(t) < INSERTED_T) & (cos > MIN_COS)
      ),
    }
    return sum(metrics[name] for name in REWARD_TERMS), metrics

  step = base.make_step(s, observe, score, substeps_per_action, episode_length)

  def reset(model: mjx.Model, key: jax.Array) -> types.EnvState:
    qpos = model.qpos0.at[: arm.num_qpos].set(start_qpos(key))
    return base.first_state(
      s, model, qpos, no_colors, observe, METRICS, gripper_closed=closed0
    )

  def insert(model, state, key, noise_scale, aim_offset, align):
    """The right hand's moves onto the axis `a` through the hole's centre
    (the hole's normal, or with `align` False the peg's own axis)."""
    data = state.physics.data
    peg, axis, hole, normal = poses(data)
    if aim_offset is not None:
      hole = hole.at[:2].add(aim_offset)
    yaw = arm.yaw(data)  # [2] left, right
    dyaw = _wrap(yaw[0] - yaw[1]) if align else jnp.float32(0)
    a = normal if align else axis
    rel = peg - hole
    short = -jnp.dot(rel, a)  # how far the peg's centre is short of the hole
    off_axis = jnp.linalg.norm(rel + short * a)
    tolerance = jnp.where(short < STANDOFF - 0.02, IN_HOLE, ON_AXIS)
    lined_up = (off_axis < tolerance) & (jnp.abs(dyaw) < YAW_ALIGNED)
    goal_short = jnp.where(lined_up, 0.0, STANDOFF)
    tip = arm.tip(data)[1]
    move = hole - (goal_short + PEG_OFFSET) * a - tip
    # One scale for all axes keeps the move on its line (the action clips
    # each axis at `common.MAX_TRANSLATION` on its own).
    move = move * jnp.minimum(
      1.0, common.MAX_TRANSLATION / (jnp.max(jnp.abs(move)) + 1e-9)
    )
    translation = jnp.zeros((2, 3)).at[1].set(move)
    turn = jnp.stack([jnp.float32(0), dyaw])
    action = arm.cartesian_action(
      model, data, translation, turn, jnp.zeros(2, bool), s.step_s
    )
    return arm.add_noise(action, key, noise_scale)

  def expert_action(
    model: mjx.Model,
    state: types.EnvState,
    key: jax.Array,
    noise_scale: float = 0.0,
    aim_offset: jax.Array | None = None,
  ) -> jax.Array:
    """Scripted insertion from privileged state; stateless (the phase is
    read from the peg's pose). The left hand holds still, the right one
    turns its peg onto the hole's normal, lines it up `STANDOFF` short of
    the hole, then pushes it in to t = 0.

    `aim_offset` ([2] metres): the peg aims that far (x-y) off the hole."""
    return insert(model, state, key, noise_scale, aim_offset, align=True)

  def straight_descent(model, state, key):
    """The reference without the key skill: the peg pushed along its own
    axis through the hole's centre, never turned onto the hole's normal."""
    return insert(model, state, key, 0.0, None, align=False)

  def randomize_model(
    model: mjx.Model, key: jax.Array, num_worlds: int
  ) -> tuple[mjx.Model, mjx.Model]:
    """`common.randomize_world` (friction; no free objects) and the peg's
    radius ~ U(`PEG_RADIUS_RANGE`) per world, its length (so its bounding
    radius) kept, with the mass and inertia of the solid capsule. The
    solver's constant inverse weights stay the model's: they only set how
    soft the peg-board contacts are."""
    world_key, radius_key = jax.random.split(key)
    models, axes = common.randomize_world(model, layout, world_key, num_worlds)
    radius = jax.random.uniform(
      radius_key,
      (num_worlds,),
      minval=PEG_RADIUS_RANGE[0],
      maxval=PEG_RADIUS_RANGE[1],
    )
    half = PEG_LENGTH / 2 - radius  # the cylinder's half-length
    size = jnp.stack([radius, half, jnp.zeros_like(radius)], -1)  # [N, 3]
    mass, inertia = jax.vmap(
      # pylint: disable-next=protected-access
      lambda x: common._inertia("capsule", x, scene.OBJECT_DENSITY)
    )(size)
    aabb = jnp.stack(
      [radius, radius, jnp.full_like(radius, PEG_LENGTH / 2)], -1
    )
    g, b = peg_geom, peg_body
    models = models.tree_replace(
      {
        "geom_size": models.geom_size.at[:, g].set(size),
        "geom_aabb": models.geom_aabb.at[:, g, 3:].set(aabb),
        "body_mass": models.body_mass.at[:, b].set(mass),
        "body_inertia": models.body_inertia.at[:, b].set(inertia),
      }
    )
    return models, axes

  task = base.finish(
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
  return task._replace(randomize_model=randomize_model)


make_bimanual_peg_in_hole = common.env_factory(make_bimanual_peg_in_hole_task)
