"""Tests for the MJX bin-grasping task.

One jitted, vmapped rollout is compiled in `setUpClass` and shared by every
test (about 30 s of compilation on a 2-core CPU).
"""

import types

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl.testing import absltest
from mujoco import mjx

from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import scene
from tests.envs.manipulation import rollouts

IMAGE_SIZE = 32
NUM_WORLDS = 8  # first half expert, second half random
EPISODE_LENGTH = 10


class GraspTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Every randomisation on: per-world sizes, masses and friction, and
    # per-episode colours, light and camera jitter.
    cls.task = grasp.make_grasp_task(
      image_size=IMAGE_SIZE, randomize_lighting=True, randomize_camera=True
    )
    cls.model = cls.task.env.init_model()
    cls.models, cls.axes = cls.task.randomize_model(
      cls.model, jax.random.key(0), NUM_WORLDS
    )
    cls.keys = jax.random.split(jax.random.key(1), NUM_WORLDS)
    cls.use_expert = jnp.arange(NUM_WORLDS) < NUM_WORLDS // 2
    cls.batch_rollout = staticmethod(
      rollouts.make_batch_rollout(cls.task, cls.axes)
    )
    cls.first, cls.states = jax.device_get(
      cls.batch_rollout(cls.models, cls.keys, cls.use_expert)
    )

  def test_spec(self):
    spec = self.task.env.spec
    self.assertEqual(spec.obs_shape, (IMAGE_SIZE, IMAGE_SIZE, 3))
    self.assertEqual(spec.obs_dtype, jnp.uint8)
    self.assertEqual(spec.num_actions, 0)
    self.assertEqual(spec.action_shape, (7,))
    self.assertEqual(spec.max_episode_steps, EPISODE_LENGTH)

  def test_reset_and_step_shapes_and_dtypes(self):
    n, t, s = NUM_WORLDS, EPISODE_LENGTH, IMAGE_SIZE
    for state, lead in ((self.first, (n,)), (self.states, (n, t))):
      obs = state.obs
      self.assertEqual(
        set(obs), {"image", "gripper_closed", "height", "aperture"}
      )
      chex.assert_shape(obs["image"], lead + (s, s, 3))
      self.assertEqual(obs["image"].dtype, np.uint8)
      for name in ("gripper_closed", "height", "aperture"):
        chex.assert_shape(obs[name], lead)
        self.assertEqual(obs[name].dtype, np.float32)
      chex.assert_shape([state.reward, state.terminated], lead)
      self.assertEqual(state.reward.dtype, np.float32)
      self.assertEqual(state.terminated.dtype, np.bool_)
      self.assertEqual(state.truncated.dtype, np.bool_)
      self.assertEqual(set(state.metrics), {"success", "grasped"})
      chex.assert_tree_all_finite(state.physics.data.qpos)

  def test_reset_state(self):
    first = self.first
    np.testing.assert_array_equal(first.physics.t, 0)
    np.testing.assert_array_equal(first.obs["gripper_closed"], 0.0)
    np.testing.assert_allclose(first.obs["height"], 0.10, atol=2e-3)
    self.assertFalse(np.any(first.terminated | first.truncated))
    # Objects rest inside the tray, on the floor.
    layout = self.task.layout
    pos = first.physics.data.xpos[:, layout.object_bodies]  # [N, K, 3]
    self.assertTrue(np.all(np.abs(pos[..., :2]) < 0.1))
    self.assertTrue(np.all(pos[..., 2] < 0.03))
    # Worlds differ (keys and per-world sizes).
    self.assertGreater(np.std(pos[:, 0, 0]), 0.01)

  def test_same_key_same_episode(self):
    first, states = jax.device_get(
      self.batch_rollout(self.models, self.keys, self.use_expert)
    )
    chex.assert_trees_all_equal(
      (first.obs, first.physics.data.qpos),
      (self.first.obs, self.first.physics.data.qpos),
    )
    chex.assert_trees_all_equal(
      (states.obs, states.reward, states.physics.data.qpos),
      (self.states.obs, self.states.reward, self.states.physics.data.qpos),
    )

  def test_reward_and_termination_bookkeeping(self):
    reward = self.states.reward  # [N, T]
    success = self.states.metrics["success"]
    last = EPISODE_LENGTH - 1
    # -0.01 every step; +1 only at the last step, and only on success.
    np.testing.assert_allclose(reward[:, :last], -0.01, atol=1e-7)
    np.testing.assert_array_equal(success[:, :last], 0.0)
    np.testing.assert_allclose(reward[:, last], success[:, last] - 0.01)
    # The episode ends (terminally) at the lift, never by truncation.
    expected = np.zeros((NUM_WORLDS, EPISODE_LENGTH), bool)
    expected[:, last] = True
    np.testing.assert_array_equal(self.states.terminated, expected)
    self.assertFalse(np.any(self.states.truncated))
    # The lift closes the gripper; the height is the z joint.
    np.testing.assert_array_equal(
      self.states.obs["gripper_closed"][:, last], 1.0
    )
    np.testing.assert_allclose(
      self.states.obs["height"], self.states.physics.data.qpos[..., 2]
    )

  def test_expert_beats_random(self):
    success = self.states.metrics["success"][:, -1]
    expert = success[: NUM_WORLDS // 2].mean()
    random = success[NUM_WORLDS // 2 :].mean()
    self.assertGreaterEqual(expert, 0.75)
    self.assertLessEqual(random, expert - 0.5)

  def test_aperture_tells_held_from_empty(self):
    obs = self.states.obs
    np.testing.assert_allclose(self.first.obs["aperture"], 1.0, atol=1e-3)
    qpos = self.states.physics.data.qpos[..., 4:6].mean(-1)
    np.testing.assert_allclose(
      obs["aperture"], np.clip(qpos / scene.FINGER_OPEN, 0, 1), atol=1e-6
    )
    # A hand on an object stops part-open...
    success = self.states.metrics["success"][:, -1] > 0
    self.assertTrue(np.any(success))
    self.assertTrue(np.all(obs["aperture"][success, -1] > 0.1))
    # ...an empty one is shut after two steps of closing (before the lift).
    grasped = self.states.metrics["grasped"][:, -1] > 0
    closed = obs["gripper_closed"][~grasped, :-1]
    twice = (closed[:, 1:] > 0) & (closed[:, :-1] > 0)
    self.assertTrue(np.any(twice))
    shut = obs["aperture"][~grasped, 1:-1][twice]
    self.assertTrue(np.all(shut < 0.05), shut)

  def test_success_means_an_object_held_high(self):
    layout = self.task.layout
    success = self.states.metrics["success"][:, -1] > 0
    height = self.states.physics.data.xpos[:, -1, layout.object_bodies, 2]
    self.assertTrue(np.any(success))
    self.assertTrue(np.all(np.max(height, -1)[success] >= 0.10))

  def test_randomized_sizes_within_ranges(self):
    layout = self.task.layout
    sizes = np.asarray(self.models.geom_size[:, layout.object_geoms])
    for i, kind in enumerate(layout.object_kinds):
      low, high = grasp.SIZE_RANGES[kind]
      used = np.asarray(high) > 0
      self.assertTrue(np.all(sizes[:, i, used] >= np.asarray(low)[used]))
      self.assertTrue(np.all(sizes[:, i, used] <= np.asarray(high)[used]))
      self.assertGreater(np.std(sizes[:, i, 0]), 1e-3)

  def test_randomized_masses_and_friction_within_ranges(self):
    layout = self.task.layout
    bodies, geoms = layout.object_bodies, layout.object_geoms
    sizes = self.models.geom_size[:, geoms]
    nominal = np.stack(
      [
        jax.vmap(
          lambda s, kind=kind: common._inertia(kind, s, scene.OBJECT_DENSITY)[0]
        )(sizes[:, i])
        for i, kind in enumerate(layout.object_kinds)
      ],
      -1,
    )
    ratio = np.asarray(self.models.body_mass[:, bodies]) / nominal
    self.assertTrue(np.all((ratio >= 0.5) & (ratio <= 2.0)))
    self.assertGreater(np.std(ratio), 0.1)
    friction = np.asarray(self.models.geom_friction[..., 0])
    base = np.asarray(self.model.geom_friction[:, 0])
    scale = friction[:, base > 0] / base[base > 0]
    self.assertTrue(np.all((scale >= 0.5) & (scale <= 1.5)))
    self.assertGreater(np.std(scale), 0.1)
    # Torsional and rolling friction are left alone.
    np.testing.assert_array_equal(
      self.models.geom_friction[0, :, 1:], self.model.geom_friction[:, 1:]
    )

  def test_camera_jitter_per_episode(self):
    shift = np.asarray(self.first.physics.camera_shift)  # [worlds, 3]
    self.assertTrue(np.all(np.abs(shift) <= common.CAMERA_SHIFT))
    self.assertGreater(np.std(shift), 1e-3)
    rot = np.asarray(self.first.physics.camera_rot)
    np.testing.assert_allclose(
      rot @ np.swapaxes(rot, -1, -2),
      np.broadcast_to(np.eye(3), rot.shape),
      atol=1e-6,
    )
    angle = np.arccos(
      np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    )
    self.assertTrue(np.all(angle <= np.sqrt(3) * common.CAMERA_TILT + 1e-6))
    self.assertTrue(np.all(angle > 0))
    # The jitter holds for the whole episode.
    np.testing.assert_array_equal(
      self.states.physics.camera_shift[:, -1], shift
    )

  def test_camera_sees_objects_and_gripper(self):
    layout = self.task.layout
    camera = render.make_camera(
      self.task.mj_model, "overhead", IMAGE_SIZE, IMAGE_SIZE
    )
    render_fn = jax.jit(camera.render)
    for i in range(2):
      model = rollouts.world(self.models, self.axes, i)
      physics = jax.tree.map(lambda x, i=i: x[i], self.first.physics)
      data = common.jitter_camera(
        physics.data,
        layout.camera_id,
        physics.camera_shift,
        physics.camera_rot,
      )
      frame = render_fn(model, data, physics.lighting)
      unjittered = render_fn(model, physics.data, physics.lighting)
      # The jitter moves the picture: some pixels see another geom.
      self.assertGreater(
        np.mean(frame.segmentation != unjittered.segmentation), 0.01
      )
      seen = set(np.unique(frame.segmentation).tolist())
      self.assertGreaterEqual(len(seen & set(layout.object_geoms)), 2)
      self.assertTrue(seen & set(layout.finger_geoms))
      # The observation is the frame with object pixels tinted by this
      # episode's colours.
      tint = np.ones((self.model.ngeom + 1, 3), np.float32)
      tint[layout.object_geoms] = physics.object_rgb
      seg = np.where(frame.segmentation < 0, -1, frame.segmentation)
      expected = np.round(np.asarray(frame.rgb, np.float32) * tint[seg])
      np.testing.assert_array_equal(self.first.obs["image"][i], expected)

  def test_invalid_arguments_raise(self):
    with self.assertRaisesRegex(ValueError, "episode_length"):
      grasp.make_grasp_task(episode_length=1)
    with self.assertRaisesRegex(ValueError, "can overlap"):
      grasp.make_grasp_task(object_extent=0.04, settle_substeps=0)
    with self.assertRaisesRegex(ValueError, "inside the tray"):
      grasp.make_grasp_task(object_extent=0.12)
    with self.assertRaisesRegex(ValueError, "object_jitter >= 0"):
      grasp.make_grasp_task(object_jitter=-0.01)


class WristCameraTest(absltest.TestCase):
  """The "wrist" camera follows the gripper in x-y-z, never its yaw."""

  def test_tracks_position_not_yaw(self):
    task = grasp.make_grasp_task(image_size=IMAGE_SIZE, camera="wrist")
    mj_model = task.mj_model
    cam = task.layout.camera_id
    self.assertEqual(
      cam, mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, "wrist")
    )
    gripper = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_BODY, "gripper")
    model = mjx.put_model(mj_model)

    @jax.jit
    def pose(qpos):
      data = mjx.kinematics(model, mjx.make_data(model).replace(qpos=qpos))
      data = mjx.camlight(model, data)
      return data.cam_xpos[cam], data.cam_xmat[cam], data.xpos[gripper]

    for x, y, z, yaw in ((0.0, 0.0, 0.1, 0.0), (0.03, -0.05, 0.02, 0.9)):
      qpos = jnp.asarray(mj_model.qpos0).at[:4].set(jnp.array([x, y, z, yaw]))
      xpos, xmat, body = jax.device_get(pose(qpos))
      np.testing.assert_allclose(body[:2], (x, y), atol=1e-6)
      offset = (0.0, 0.0, scene.WRIST_CAMERA_HEIGHT)
      np.testing.assert_allclose(xpos, body + offset, atol=1e-6)
      # Looking straight down, image x along world x, whatever the yaw
      # (a camera fixed to the gripper body would turn by 0.9 rad).
      np.testing.assert_allclose(xmat.reshape(3, 3), np.eye(3), atol=1e-6)

  def test_unknown_camera_raises(self):
    with self.assertRaisesRegex(ValueError, "unknown camera 'shoulder'"):
      grasp.make_grasp_task(camera="shoulder")


class StraightDescentTest(absltest.TestCase):
  """The no-x-y reference policy, on hand-set observations."""

  def _act(self, height, closed):
    state = types.SimpleNamespace(
      obs={"height": jnp.float32(height), "gripper_closed": jnp.float32(closed)}
    )
    return np.asarray(grasp.straight_descent_action(None, state, None))

  def test_descends_closes_low_then_rises(self):
    # Action: T / 3 cm [3], sin, cos of the yaw step, open, close.
    np.testing.assert_allclose(
      self._act(0.10, 0.0), [0, 0, -1, 0, 1, 1, 0], atol=1e-6
    )
    np.testing.assert_allclose(
      self._act(0.005, 0.0), [0, 0, 0, 0, 1, 0, 1], atol=1e-6
    )
    np.testing.assert_allclose(
      self._act(0.005, 1.0), [0, 0, 1, 0, 1, 0, 1], atol=1e-6
    )


class LayoutTest(absltest.TestCase):
  """`object_extent` / `object_jitter`: how dense the bin is."""

  def test_footprint_radii_by_hand(self):
    self.assertAlmostEqual(grasp.footprint_radius("box"), 0.02 * np.sqrt(2))
    self.assertAlmostEqual(grasp.footprint_radius("sphere"), 0.025)
    self.assertAlmostEqual(grasp.footprint_radius("capsule"), 0.045)

  def test_overlap_bound_by_hand(self):
    kinds = grasp.KIND_CYCLE  # the two largest radii: 0.045 + 0.0283
    # 2x2 cells 2 * extent apart: 0.094 - 2 * 0.010 = 0.074 >= 0.0733,
    # 0.094 - 2 * 0.011 = 0.072 < 0.0733.
    self.assertFalse(grasp.layout_overlaps(kinds, 0.047, 0.010))
    self.assertTrue(grasp.layout_overlaps(kinds, 0.047, 0.011))
    # 5 objects: 3x3 cells extent apart, 0.08 - 0.02 < 0.0733.
    self.assertTrue(grasp.layout_overlaps((kinds * 2)[:5], 0.08, 0.01))
    self.assertFalse(grasp.layout_overlaps(("capsule",), 0.0, 0.0))

  def test_dense_layout_places_objects_apart_without_settling(self):
    extent, jitter, num_worlds = 0.047, 0.01, 64
    task = grasp.make_grasp_task(
      image_size=8, object_extent=extent, object_jitter=jitter
    )
    layout = task.layout
    models, axes = task.randomize_model(
      task.env.init_model(), jax.random.key(0), num_worlds
    )
    first = jax.jit(jax.vmap(task.env.reset, in_axes=(axes, 0)))(
      models, jax.random.split(jax.random.key(1), num_worlds)
    )
    # A reset state holds no contacts (common.reset_data): compute them.
    touching = jax.jit(
      jax.vmap(
        lambda m, d: common.touching(
          mjx.collision(m, d), layout.object_geoms, layout.object_geoms
        ),
        in_axes=(axes, 0),
      )
    )(models, first.physics.data)  # [worlds, 3, 3]
    self.assertFalse(np.any(np.asarray(touching) & ~np.eye(3, dtype=bool)))
    xy = np.asarray(first.physics.data.xpos[:, layout.object_bodies, :2])
    # Stricter than contacts: every pair's x-y footprint circles (this
    # world's sizes) are apart, which is what `layout_overlaps` promises.
    size = np.asarray(models.geom_size)[:, layout.object_geoms]  # [W, 3, 3]
    radius = np.stack(
      [
        np.hypot(size[:, i, 0], size[:, i, 1])
        if kind == "box"
        else size[:, i, 0] + (size[:, i, 1] if kind == "capsule" else 0.0)
        for i, kind in enumerate(layout.object_kinds)
      ],
      axis=-1,
    )  # [W, 3]
    apart = np.linalg.norm(xy[:, :, None] - xy[:, None], axis=-1)
    reach = radius[:, :, None] + radius[:, None]
    self.assertTrue(np.all((apart >= reach) | np.eye(3, dtype=bool)))
    self.assertTrue(np.all(np.abs(xy) <= extent + jitter + 1e-6))
    # Denser than the default layout, whose centres are >= 9 cm apart.
    closest = np.min(apart + np.eye(3) * 1.0, axis=(1, 2))
    self.assertLess(closest.min(), 0.09)
    self.assertGreaterEqual(closest.min(), 2 * extent - 2 * jitter - 1e-6)


class TerminateOnCloseTest(chex.TestCase):
  """`terminate_on_close`: the step after a close command is the lift."""

  def test_expert_episode_ends_one_step_after_its_close(self):
    task = grasp.make_grasp_task(image_size=16, terminate_on_close=True)
    model = task.env.init_model()
    num_worlds = 4
    rollout = rollouts.make_batch_rollout(task, None)
    _, states = jax.device_get(
      rollout(
        model,
        jax.random.split(jax.random.key(2), num_worlds),
        jnp.ones((num_worlds,), bool),
      )
    )
    closed = states.obs["gripper_closed"] > 0.5  # [N, T] after each step
    terminated = states.terminated
    for w in range(num_worlds):
      close_step = int(np.argmax(closed[w]))  # the first closing step
      self.assertTrue(closed[w].any())
      self.assertLess(close_step, EPISODE_LENGTH - 1, "expert closes early")
      end = close_step + 1  # the lift
      self.assertFalse(terminated[w, :end].any())
      self.assertTrue(terminated[w, end])
      reward = states.reward[w, end]
      success = states.metrics["success"][w, end]
      self.assertAlmostEqual(float(reward), float(success) - 0.01, places=6)
      np.testing.assert_allclose(states.reward[w, :end], -0.01, atol=1e-7)
    # The lift after a finished close still holds objects up.
    final_success = states.metrics["success"][
      np.arange(num_worlds), np.argmax(terminated, axis=1)
    ]
    self.assertGreaterEqual(final_success.mean(), 0.75)


if __name__ == "__main__":
  absltest.main()
