"""Tests for the manipulation scene and shared helpers (no MJX compiles)."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from mujoco import mjx

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene

GRASP_OBJECTS = tuple(
  scene.GRASP_FAMILIES[k] for k in ("box", "sphere", "capsule")
)


class FakeData(NamedTuple):
  qpos: jax.Array


def model_and_layout(objects=GRASP_OBJECTS, walls=True):
  mj_model = mujoco.MjModel.from_xml_string(
    scene.scene_xml(objects, walls=walls)
  )
  return mj_model, common.make_layout(mj_model, len(objects))


class SceneTest(chex.TestCase):
  def test_layout(self):
    mj_model, layout = model_and_layout()
    self.assertEqual(layout.object_kinds, ("box", "sphere", "capsule"))
    # Gripper joints first (6 qpos), then 7 per free joint.
    np.testing.assert_array_equal(layout.object_qpos, [6, 13, 20])
    np.testing.assert_array_equal(layout.object_qvel, [6, 12, 18])
    self.assertEqual(mj_model.nu, 6)
    self.assertLen(layout.static_geoms, 5)  # floor + 4 wall planes
    self.assertGreaterEqual(mj_model.nmat, 1)  # mjx.ray needs a material
    self.assertEqual(mj_model.opt.timestep, 0.005)
    self.assertEqual(mj_model.opt.iterations, 4)
    self.assertEqual(mj_model.opt.ls_iterations, 6)

  def test_only_fingers_and_objects_collide(self):
    mj_model, layout = model_and_layout()
    colliding = set(np.flatnonzero(mj_model.geom_contype != 0))
    expected = set(layout.object_geoms) | set(layout.finger_geoms)
    expected |= set(layout.static_geoms)
    self.assertEqual(colliding, expected)
    palm = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_GEOM, "palm")
    self.assertEqual(mj_model.geom_conaffinity[palm], 0)

  def test_no_cylinders_or_ellipsoids(self):
    mj_model, _ = model_and_layout()
    types = set(mj_model.geom_type.tolist())
    self.assertNotIn(int(mujoco.mjtGeom.mjGEOM_CYLINDER), types)
    self.assertNotIn(int(mujoco.mjtGeom.mjGEOM_ELLIPSOID), types)

  def test_step_response_settles_within_an_agent_step(self):
    # A 3 cm set-point step in x and z settles to < 1 mm in 20 substeps.
    mj_model, _ = model_and_layout()
    data = mujoco.MjData(mj_model)
    data.qpos[:6] = data.ctrl[:] = [0, 0, 0.1, 0, 0.045, 0.045]
    for _ in range(20):
      mujoco.mj_step(mj_model, data)
    data.ctrl[0], data.ctrl[2] = 0.03, 0.07
    for _ in range(20):
      mujoco.mj_step(mj_model, data)
    np.testing.assert_allclose(data.qpos[[0, 2]], [0.03, 0.07], atol=1e-3)

  def test_unknown_kind_raises(self):
    with self.assertRaisesRegex(ValueError, "unsupported object kind"):
      scene.scene_xml((scene.ObjectSpec("cylinder", (0.01, 0.02)),))


class HelpersTest(chex.TestCase):
  def test_setpoint(self):
    data = FakeData(qpos=jnp.array([0.0, 0.11, 0.1, 0.0, 0.0, 0.0]))
    # T = (1, 1, -0.5) -> +3 cm, +3 cm (clipped at y = 0.12), -1.5 cm;
    # yaw atan2(sin 0.1, cos 0.1) = 0.1; close 0.9 > open 0.1.
    action = jnp.array([1.0, 1.0, -0.5, np.sin(0.1), np.cos(0.1), 0.1, 0.9])
    ctrl, closed = common.setpoint(data, action)
    np.testing.assert_allclose(ctrl, [0.03, 0.12, 0.085, 0.1, 0, 0], atol=1e-6)
    self.assertEqual(float(closed), 1.0)

  def test_setpoint_clips_yaw_and_opens(self):
    data = FakeData(qpos=jnp.zeros(6))
    action = jnp.array([0, 0, 0, np.sin(1.0), np.cos(1.0), 0.6, 0.5])
    ctrl, closed = common.setpoint(data, action)
    self.assertAlmostEqual(float(ctrl[3]), common.MAX_YAW, places=6)
    self.assertAlmostEqual(float(ctrl[4]), scene.FINGER_OPEN, places=6)
    self.assertEqual(float(closed), 0.0)

  def test_make_action_round_trips_through_setpoint(self):
    data = FakeData(qpos=jnp.array([0.0, 0.0, 0.1, 0.2, 0.0, 0.0]))
    action = common.make_action(
      jnp.array([0.01, -0.02, 0.05]), jnp.float32(-0.1), True
    )
    ctrl, closed = common.setpoint(data, action)
    # z is limited to +3 cm per step.
    np.testing.assert_allclose(ctrl[:4], [0.01, -0.02, 0.13, 0.1], atol=1e-6)
    self.assertEqual(float(closed), 1.0)

  def test_random_action_in_range(self):
    actions = jax.vmap(common.random_action)(
      jax.random.split(jax.random.key(0), 256)
    )
    chex.assert_shape(actions, (256, common.ACTION_SIZE))
    self.assertTrue(np.all(np.abs(actions[:, :3]) <= 1.0))
    dyaw = np.arctan2(actions[:, 3], actions[:, 4])
    self.assertTrue(np.all(np.abs(dyaw) <= common.MAX_YAW + 1e-6))
    # Open or close is a coin flip, one-hot like the expert's commands.
    self.assertBetween(float(np.mean(actions[:, 6] > actions[:, 5])), 0.3, 0.7)
    np.testing.assert_array_equal(actions[:, 5] + actions[:, 6], 1.0)
    self.assertTrue(np.all((actions[:, 6] == 0) | (actions[:, 6] == 1)))

  @parameterized.named_parameters(
    ("red", [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]),
    ("green", [1 / 3, 1.0, 1.0], [0.0, 1.0, 0.0]),
    ("blue", [2 / 3, 1.0, 0.5], [0.0, 0.0, 0.5]),
    ("grey", [0.3, 0.0, 0.4], [0.4, 0.4, 0.4]),
  )
  def test_hsv_to_rgb(self, hsv, rgb):
    np.testing.assert_allclose(
      common.hsv_to_rgb(jnp.array(hsv)), rgb, atol=1e-6
    )

  def test_disjoint_hue_ranges_give_disjoint_colours(self):
    def hues(hue_range):
      rgb = common.random_colors(jax.random.key(1), 200, hue_range)
      return np.asarray(rgb)

    train, test = hues((0.0, 0.5)), hues((0.5, 1.0))
    # Hues in [0, 0.5) are red->cyan: blue is never the largest channel;
    # hues in [0.5, 1) are cyan->red through blue: green never is.
    self.assertTrue(np.all(np.argmax(train, -1) != 2))
    self.assertTrue(np.all(np.argmax(test, -1) != 1))

  def test_inertia_matches_mujoco(self):
    mj_model, layout = model_and_layout()
    for i, kind in enumerate(layout.object_kinds):
      size = jnp.asarray(mj_model.geom_size[layout.object_geoms[i]])
      mass, inertia = common._inertia(kind, size, scene.OBJECT_DENSITY)
      body = layout.object_bodies[i]
      np.testing.assert_allclose(mass, mj_model.body_mass[body], rtol=1e-5)
      np.testing.assert_allclose(
        inertia, mj_model.body_inertia[body], rtol=1e-5
      )

  def test_with_object_bodies_matches_mujoco_set_const(self):
    mj_model, layout = model_and_layout()
    model = mjx.put_model(mj_model)
    sizes = jnp.array(
      [[0.012, 0.018, 0.015], [0.022, 0.0, 0.0], [0.011, 0.025, 0.0]]
    )
    scale = jnp.array([0.5, 1.7, 1.2])
    world = common.with_object_bodies(model, layout, sizes, scale)
    # MuJoCo's own constants for the same sizes and masses.
    mj_model.geom_size[layout.object_geoms] = np.asarray(sizes)
    mj_model.body_mass[:] = np.asarray(world.body_mass)
    mj_model.body_inertia[:] = np.asarray(world.body_inertia)
    mujoco.mj_setConst(mj_model, mujoco.MjData(mj_model))
    bodies = layout.object_bodies
    np.testing.assert_allclose(
      world.body_invweight0[bodies], mj_model.body_invweight0[bodies], 1e-5
    )
    free = np.concatenate([np.arange(a, a + 6) for a in layout.object_qvel])
    np.testing.assert_allclose(
      world.dof_invweight0[free], mj_model.dof_invweight0[free], 1e-5
    )
    np.testing.assert_allclose(
      world.geom_rbound[layout.object_geoms],
      mj_model.geom_rbound[layout.object_geoms],
      1e-5,
    )
    box_mass, _ = common._inertia("box", sizes[0], scene.OBJECT_DENSITY)
    np.testing.assert_allclose(world.body_mass[bodies[0]], 0.5 * box_mass)

  def test_jitter_camera(self):
    mj_model, layout = model_and_layout()
    model = mjx.put_model(mj_model)
    data = mjx.kinematics(model, mjx.make_data(model))
    data = mjx.camlight(model, data)
    cam = layout.camera_id
    same = common.jitter_camera(data, cam, *common.no_camera_jitter())
    np.testing.assert_allclose(same.cam_xpos, data.cam_xpos, atol=1e-7)
    np.testing.assert_allclose(same.cam_xmat, data.cam_xmat, atol=1e-7)
    shift, rot = common.random_camera_jitter(jax.random.key(3))
    moved = common.jitter_camera(data, cam, shift, rot)
    np.testing.assert_allclose(
      moved.cam_xpos[cam], data.cam_xpos[cam] + shift, atol=1e-7
    )
    # Rotating in the camera frame: the new axes are the old ones turned.
    np.testing.assert_allclose(
      moved.cam_xmat[cam],
      np.asarray(data.cam_xmat[cam]) @ np.asarray(rot),
      atol=1e-6,
    )
    # A quarter turn about z built by the helper matches the hand-written one.
    quarter = common._rotation_xyz(jnp.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(
      quarter, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6
    )

  def test_place_objects_rests_objects_apart(self):
    mj_model, layout = model_and_layout()
    model = mjx.put_model(mj_model)
    for seed in range(5):
      qpos = common.place_objects(
        model,
        layout,
        jnp.asarray(mj_model.qpos0),
        jax.random.key(seed),
        extent=0.06,
        jitter=0.015,
      )
      pos = np.stack([qpos[a : a + 3] for a in layout.object_qpos])
      # Resting heights: box half-side, sphere radius, lying capsule radius.
      np.testing.assert_allclose(pos[:, 2], [0.015, 0.02, 0.0125], atol=1e-6)
      self.assertTrue(np.all(np.abs(pos[:, :2]) <= 0.075 + 1e-6))
      gaps = np.linalg.norm(pos[:, None, :2] - pos[None, :, :2], axis=-1)
      self.assertGreater(np.min(gaps + np.eye(3)), 0.08)
      quats = np.stack([qpos[a + 3 : a + 7] for a in layout.object_qpos])
      np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, 1e-6)


if __name__ == "__main__":
  absltest.main()
