"""Tests for the JAX ray-casting camera.

Hand-computed cases use a camera at the origin looking down the world -z axis
(MuJoCo cameras look along their local -z) with fovy 90 degrees, so at an
odd image size the centre pixel's ray is the optical axis and tan(fovy/2) = 1.
The scene test compares depth and segmentation with `mujoco.Renderer`
(OpenGL through EGL), run in a subprocess so that MUJOCO_GL is set before
mujoco is imported whatever other tests imported first.
"""

import os
import subprocess
import sys
import tempfile

import chex
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from mujoco import mjx

from jaxrl_vision.envs import render

CAMERA = '<camera name="eye" pos="0 0 0" fovy="90"/>'
ORANGE = "0.8 0.4 0.2 1"
# rgb = 255 * rgba * shade: shade = ambient + diffuse * cos = 0.3 + 0.7 * 1.
LIT_ORANGE = (204, 102, 51)
# Lit from behind: shade = ambient only = 0.3: 61.2, 30.6, 15.3 rounded.
UNLIT_ORANGE = (61, 31, 15)
BACKGROUND = (26, 26, 26)  # 255 * 0.1 = 25.5, rounded half to even


def make_xml(body: str, camera: str = CAMERA) -> str:
  # mjx.put_model needs a material for some paths (spec C.1).
  return f"""
  <mujoco>
    <asset><material name="dummy"/></asset>
    <worldbody>
      {camera}
      {body}
    </worldbody>
  </mujoco>"""


def make_world(xml: str):
  """Returns (MjModel, mjx.Model, mjx.Data) after C kinematics."""
  mj_model = mujoco.MjModel.from_xml_string(xml)
  mj_data = mujoco.MjData(mj_model)
  mujoco.mj_forward(mj_model, mj_data)
  return mj_model, mjx.put_model(mj_model), mjx.put_data(mj_model, mj_data)


def lighting(direction):
  return render.Lighting(
    direction=jnp.asarray(direction, jnp.float32),
    diffuse=jnp.float32(0.7),
    ambient=jnp.float32(0.3),
  )


TOWARD_SCENE = (0.0, 0.0, -1.0)  # light travels with the camera's rays
TOWARD_CAMERA = (0.0, 0.0, 1.0)


class MakeCameraTest(parameterized.TestCase):
  def setUp(self):
    super().setUp()
    self.mj_model = mujoco.MjModel.from_xml_string(
      make_xml(
        '<geom type="sphere" size="0.5" pos="0 0 -2"/><camera name="other"/>'
      )
    )

  def test_unknown_camera_lists_names(self):
    with self.assertRaisesRegex(ValueError, r"'nope'.*\['eye', 'other'\]"):
      render.make_camera(self.mj_model, "nope", 8, 8)

  @parameterized.parameters((0, 8), (8, 0), (-1, 8))
  def test_impossible_size(self, height, width):
    with self.assertRaisesRegex(ValueError, "size must be positive"):
      render.make_camera(self.mj_model, "eye", height, width)

  def test_non_positive_far(self):
    with self.assertRaisesRegex(ValueError, "far"):
      render.make_camera(self.mj_model, "eye", 8, 8, far=0.0)

  def test_nothing_to_draw(self):
    mj_model, model, data = make_world(
      make_xml('<geom type="sphere" size="0.5" pos="0 0 -2" group="4"/>')
    )
    camera = render.make_camera(mj_model, "eye", 3, 4, far=7.0)
    frame = jax.jit(camera.render)(model, data, render.default_lighting())
    np.testing.assert_array_equal(
      frame.rgb, np.broadcast_to(BACKGROUND, (3, 4, 3))
    )
    np.testing.assert_array_equal(frame.depth, np.full((3, 4), 7.0))
    np.testing.assert_array_equal(frame.segmentation, np.full((3, 4), -1))
    np.testing.assert_array_equal(frame.points, np.zeros((3, 4, 3)))

  def test_unsupported_geom_type_is_named(self):
    mj_model = mujoco.MjModel.from_xml_string(
      make_xml('<geom name="tet" type="mesh" mesh="tet" group="1"/>').replace(
        "<asset>",
        '<asset><mesh name="tet" vertex="0 0 0 1 0 0 0 1 0 0 0 1"/>',
      )
    )
    with self.assertRaisesRegex(ValueError, "tet.*MESH"):
      render.make_camera(mj_model, "eye", 8, 8)
    # Hidden by its group, it is fine.
    camera = render.make_camera(mj_model, "eye", 8, 8, geom_groups=(0,))
    self.assertEqual((camera.height, camera.width), (8, 8))


class HandComputedTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # Geom centred at (0, 0, -2); the centre pixel's z-depth is
    # 2 - (extent of the geom towards the camera along z).
    ("sphere", '<geom type="sphere" size="0.5"/>', 1.5),  # 2 - r
    ("box", '<geom type="box" size="0.2 0.3 0.4"/>', 1.6),  # 2 - sz
    ("capsule_end_on", '<geom type="capsule" size="0.1 0.3"/>', 1.6),
    (
      "capsule_side_on",  # 2 - r, axis along x
      '<geom type="capsule" size="0.1 0.3" euler="0 90 0"/>',
      1.9,
    ),
    ("cylinder_end_on", '<geom type="cylinder" size="0.1 0.3"/>', 1.7),
    (
      "cylinder_side_on",
      '<geom type="cylinder" size="0.1 0.3" euler="0 90 0"/>',
      1.9,
    ),
    ("ellipsoid", '<geom type="ellipsoid" size="0.1 0.2 0.3"/>', 1.7),
    ("plane", '<geom type="plane" size="1 1 0.1"/>', 2.0),
  )
  def test_centre_pixel(self, geom, expected_depth):
    geom = geom.replace(
      "<geom ", f'<geom name="g" pos="0 0 -2" rgba="{ORANGE}" '
    )
    mj_model, model, data = make_world(make_xml(geom))
    camera = render.make_camera(mj_model, "eye", 5, 5)
    frame = self.variant(camera.render)(model, data, lighting(TOWARD_SCENE))

    chex.assert_shape(frame.rgb, (5, 5, 3))
    self.assertEqual(frame.rgb.dtype, jnp.uint8)
    chex.assert_shape([frame.depth, frame.segmentation], (5, 5))
    chex.assert_shape(frame.points, (5, 5, 3))
    self.assertAlmostEqual(float(frame.depth[2, 2]), expected_depth, places=5)
    self.assertEqual(int(frame.segmentation[2, 2]), 0)  # the only geom
    np.testing.assert_allclose(
      frame.points[2, 2], [0, 0, -expected_depth], atol=1e-5
    )
    # Every centre normal faces the camera and the light: cos = 1.
    np.testing.assert_array_equal(frame.rgb[2, 2], LIT_ORANGE)

  def test_lambert_facing_versus_away_from_light(self):
    mj_model, model, data = make_world(
      make_xml(f'<geom type="sphere" size="1" pos="0 0 -2" rgba="{ORANGE}"/>')
    )
    camera = jax.jit(render.make_camera(mj_model, "eye", 9, 9).render)
    lit = camera(model, data, lighting(TOWARD_SCENE)).rgb
    unlit = camera(model, data, lighting(TOWARD_CAMERA)).rgb
    np.testing.assert_array_equal(lit[4, 4], LIT_ORANGE)
    np.testing.assert_array_equal(unlit[4, 4], UNLIT_ORANGE)
    # One pixel off-centre the normal tilts away from the light: dimmer, but
    # brighter than the ambient term alone.
    self.assertLess(int(lit[4, 3, 0]), LIT_ORANGE[0])
    self.assertGreater(int(lit[4, 3, 0]), UNLIT_ORANGE[0])

  def test_points_lie_on_the_sphere_and_misses_are_empty(self):
    centre, radius = np.array([0.1, -0.2, -2.0]), 0.8
    mj_model, model, data = make_world(
      make_xml(
        f'<geom type="sphere" size="{radius}" pos="{centre[0]} {centre[1]} '
        f'{centre[2]}"/>'
      )
    )
    camera = render.make_camera(mj_model, "eye", 16, 16, far=5.0)
    frame = jax.jit(camera.render)(model, data, render.default_lighting())

    hit = np.asarray(frame.segmentation) == 0
    self.assertBetween(hit.mean(), 0.05, 0.95)
    points = np.asarray(frame.points)
    np.testing.assert_allclose(
      np.linalg.norm(points[hit] - centre, axis=-1), radius, atol=1e-5
    )
    # z-depth along the optical axis (-z), not distance along the ray.
    np.testing.assert_allclose(frame.depth[hit], -points[hit][:, 2], rtol=1e-6)
    np.testing.assert_array_equal(frame.segmentation[~hit], -1)
    np.testing.assert_array_equal(frame.depth[~hit], 5.0)
    np.testing.assert_array_equal(points[~hit], 0.0)
    np.testing.assert_array_equal(
      frame.rgb[~hit], np.broadcast_to(BACKGROUND, (int((~hit).sum()), 3))
    )

  @parameterized.parameters(90.0, 60.0)
  def test_pixel_layout_and_field_of_view_from_model(self, fovy):
    # A plane facing the camera at z = -1: constant z-depth 1, and pixel
    # centres at x = tan(fovy/2) * aspect * x_ndc, y = tan(fovy/2) * y_ndc
    # with row 0 at the top (+y) and column 0 on the left (-x).
    mj_model, model, data = make_world(
      make_xml('<geom type="plane" size="0 0 0.1" pos="0 0 -1"/>')
    )
    model = model.tree_replace(
      {"cam_fovy": jnp.full_like(model.cam_fovy, fovy)}
    )
    camera = render.make_camera(mj_model, "eye", 4, 6)
    frame = jax.jit(camera.render)(model, data, render.default_lighting())

    tan = np.tan(np.deg2rad(fovy) / 2)
    np.testing.assert_allclose(frame.depth, 1.0, rtol=1e-6)
    # Top-left pixel: x_ndc = 1/6 - 1, y_ndc = 1 - 1/4; aspect = 6/4.
    np.testing.assert_allclose(
      frame.points[0, 0], [-tan * 1.5 * 5 / 6, tan * 3 / 4, -1], rtol=1e-5
    )
    np.testing.assert_allclose(
      frame.points[3, 5], [tan * 1.5 * 5 / 6, -tan * 3 / 4, -1], rtol=1e-5
    )

  def test_planes_are_two_sided_and_finite_when_sized(self):
    mj_model, model, data = make_world(
      make_xml(
        '<geom type="plane" size="0.2 0.2 0.1" pos="0 0 -1"/>'
        '<geom type="plane" size="0 0 0.1" pos="0 0 -2" euler="180 0 0" '
        f'rgba="{ORANGE}"/>'
      )
    )
    frame = jax.jit(render.make_camera(mj_model, "eye", 5, 5).render)(
      model, data, lighting(TOWARD_SCENE)
    )
    # The 0.4 m square at 1 m covers the centre pixel only (the next pixel
    # centre is at x = 0.4). The infinite plane behind it faces away from the
    # camera but is drawn, as mujoco.Renderer does, and lit as if facing it.
    expected = np.full((5, 5), 1)
    expected[2, 2] = 0
    np.testing.assert_array_equal(frame.segmentation, expected)
    np.testing.assert_allclose(frame.depth[0, 0], 2.0, rtol=1e-6)
    np.testing.assert_array_equal(frame.rgb[0, 0], LIT_ORANGE)

  def test_camera_pose_comes_from_data(self):
    mj_model, model, data = make_world(
      make_xml('<geom type="sphere" size="0.5" pos="0 0 -2"/>')
    )
    render_fn = jax.jit(render.make_camera(mj_model, "eye", 5, 5).render)
    closer = data.tree_replace({"cam_xpos": data.cam_xpos.at[0, 2].set(-0.5)})
    frame = render_fn(model, closer, render.default_lighting())
    self.assertAlmostEqual(float(frame.depth[2, 2]), 1.0, places=5)
    # Turned half a turn about y, the camera looks along +z at nothing.
    turned = data.tree_replace(
      {"cam_xmat": data.cam_xmat.at[0].set(jnp.diag(jnp.array([-1.0, 1, -1])))}
    )
    frame = render_fn(model, turned, render.default_lighting())
    np.testing.assert_array_equal(frame.segmentation, -1)


class TracedModelTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.mj_model, self.model, self.data = make_world(
      make_xml(
        '<body pos="0 0 -2"><freejoint/>'
        f'<geom name="ball" type="sphere" size="0.5" rgba="{ORANGE}"/></body>'
        '<geom name="hidden" type="box" size="9 9 0.1" pos="0 0 -5" '
        'group="3"/>'
      )
    )
    self.ball, self.hidden = (
      mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_GEOM, name)
      for name in ("ball", "hidden")
    )
    self.camera = render.make_camera(self.mj_model, "eye", 9, 9)

  def test_colours_come_from_the_traced_model(self):
    render_fn = jax.jit(self.camera.render)
    light = lighting(TOWARD_SCENE)
    before = render_fn(self.model, self.data, light)
    blue = self.model.tree_replace(
      {
        "geom_rgba": self.model.geom_rgba.at[self.ball].set(
          jnp.array([0, 0, 1.0, 1])
        )
      }
    )
    after = render_fn(blue, self.data, light)
    np.testing.assert_array_equal(before.rgb[4, 4], LIT_ORANGE)
    np.testing.assert_array_equal(after.rgb[4, 4], [0, 0, 255])
    np.testing.assert_array_equal(before.depth, after.depth)
    # A traced alpha of 0 hides the geom.
    clear = self.model.tree_replace(
      {"geom_rgba": self.model.geom_rgba.at[self.ball, 3].set(0.0)}
    )
    np.testing.assert_array_equal(
      render_fn(clear, self.data, light).segmentation, -1
    )

  def test_geom_groups(self):
    light = render.default_lighting()
    default = jax.jit(self.camera.render)(self.model, self.data, light)
    self.assertEqual(set(np.unique(default.segmentation)), {-1, self.ball})
    shown = render.make_camera(self.mj_model, "eye", 9, 9, geom_groups=(0, 3))
    frame = jax.jit(shown.render)(self.model, self.data, light)
    self.assertEqual(
      set(np.unique(frame.segmentation)), {self.ball, self.hidden}
    )

  def test_vmap_over_worlds_equals_rendering_each(self):
    datas = []
    for x in (-0.5, 0.0, 0.6):
      mj_data = mujoco.MjData(self.mj_model)
      mj_data.qpos[:3] = (x, 0.1, -2.0)
      mujoco.mj_forward(self.mj_model, mj_data)
      datas.append(mjx.put_data(self.mj_model, mj_data))
    batch = jax.tree.map(lambda *x: jnp.stack(x), *datas)
    light = render.default_lighting()
    frames = jax.jit(jax.vmap(self.camera.render, in_axes=(None, 0, None)))(
      self.model, batch, light
    )
    chex.assert_shape(frames.rgb, (3, 9, 9, 3))
    single = jax.jit(self.camera.render)
    for i, data in enumerate(datas):
      chex.assert_trees_all_close(
        jax.tree.map(lambda x, i=i: x[i], frames),
        single(self.model, data, light),
        atol=1e-6,
      )
    for i, j in ((0, 1), (1, 2), (0, 2)):
      self.assertFalse(
        np.array_equal(frames.segmentation[i], frames.segmentation[j])
      )

  def test_vmap_over_models_and_lighting(self):
    # Randomised colours and lights as in_axes pytrees (STYLE snippet D).
    colours = jnp.array([[0.8, 0, 0, 1], [0, 0.8, 0, 1], [0, 0, 0.8, 1]])
    rgba = jnp.broadcast_to(
      self.model.geom_rgba, (3,) + self.model.geom_rgba.shape
    )
    models = self.model.tree_replace(
      {"geom_rgba": rgba.at[:, self.ball].set(colours)}
    )
    model_axes = jax.tree.map(lambda _: None, self.model).tree_replace(
      {"geom_rgba": 0}
    )
    lights = render.Lighting(
      direction=jnp.array([[0, 0, -1.0], [0, 0, 1.0], [1.0, 0, -1.0]]),
      diffuse=jnp.array([0.7, 0.7, 0.5]),
      ambient=jnp.array([0.3, 0.3, 0.2]),
    )
    frames = jax.jit(
      jax.vmap(self.camera.render, in_axes=(model_axes, None, 0))
    )(models, self.data, lights)
    single = jax.jit(self.camera.render)
    for i in range(3):
      model_i = self.model.tree_replace({"geom_rgba": models.geom_rgba[i]})
      light_i = jax.tree.map(lambda x, i=i: x[i], lights)
      np.testing.assert_array_equal(
        frames.rgb[i], single(model_i, self.data, light_i).rgb
      )
    # Red lit head-on: 255 * 0.8; green lit from behind: 255 * 0.8 * 0.3.
    np.testing.assert_array_equal(frames.rgb[0, 4, 4], [204, 0, 0])
    np.testing.assert_array_equal(frames.rgb[1, 4, 4], [0, 61, 0])

  def test_no_retrace(self):
    render_fn = jax.jit(chex.assert_max_traces(self.camera.render, n=1))
    for i in range(3):
      data = self.data.tree_replace(
        {"geom_xpos": self.data.geom_xpos.at[self.ball, 0].add(0.1 * i)}
      )
      light = lighting((0.1 * i, 0.0, -1.0))
      frame = render_fn(self.model, data, light)
    chex.assert_tree_all_finite(frame.points)


# A grasp-like scene: floor, tray of 4 walls, boxes, spheres and capsules at
# rotated poses, visual-only ellipsoid and cylinder (MJX has no ellipsoid-box
# collision), a finite tilted plane, a hidden group-3 geom, and two cameras:
# over the shoulder ~45 degrees down, and level from the side (sees the sky).
SCENE = """
<mujoco>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="64" height="64"
             rgb1=".2 .3 .4" rgb2=".3 .4 .5"/>
    <material name="floor" texture="grid" texrepeat="4 4"/>
  </asset>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="0 0 0.05" material="floor"/>
    <geom name="board" type="plane" size="0.08 0.05 0.01" pos="0.25 0.1 0.06"
          euler="0 -20 15" rgba=".3 .8 .3 1"/>
    <geom name="wall_n" type="box" size="0.15 0.005 0.025" pos="0 0.155 0.025"
          rgba=".6 .5 .4 1"/>
    <geom name="wall_s" type="box" size="0.15 0.005 0.025"
          pos="0 -0.155 0.025" rgba=".6 .5 .4 1"/>
    <geom name="wall_e" type="box" size="0.005 0.16 0.025" pos="0.155 0 0.025"
          rgba=".6 .5 .4 1"/>
    <geom name="wall_w" type="box" size="0.005 0.16 0.025"
          pos="-0.155 0 0.025" rgba=".6 .5 .4 1"/>
    <geom name="egg" type="ellipsoid" size="0.03 0.02 0.015"
          pos="-0.25 0.05 0.05" euler="30 20 10" contype="0" conaffinity="0"
          rgba="1 .5 0 1"/>
    <geom name="can" type="cylinder" size="0.02 0.03" pos="-0.22 -0.12 0.08"
          euler="60 10 0" contype="0" conaffinity="0" rgba=".5 0 1 1"/>
    <geom name="hidden" type="box" size="0.05 0.05 0.05" pos="0 0 0.1"
          group="3"/>
    <body name="box1" pos="0.05 0.04 0.02" euler="10 20 30"><freejoint/>
      <geom type="box" size="0.02 0.015 0.012" rgba="1 0 0 1"/></body>
    <body name="box2" pos="-0.06 -0.05 0.02" euler="0 0 45"><freejoint/>
      <geom type="box" size="0.018 0.018 0.018" rgba="0 1 0 1"/></body>
    <body name="ball1" pos="-0.05 0.06 0.02"><freejoint/>
      <geom type="sphere" size="0.02" rgba="0 0 1 1"/></body>
    <body name="ball2" pos="0.08 -0.07 0.025"><freejoint/>
      <geom type="sphere" size="0.025" rgba="1 1 0 1"/></body>
    <body name="cap1" pos="0.0 -0.02 0.015" euler="90 0 30"><freejoint/>
      <geom type="capsule" size="0.012 0.025" rgba="1 0 1 1"/></body>
    <body name="cap2" pos="0.09 0.08 0.03" euler="40 60 0"><freejoint/>
      <geom type="capsule" size="0.015 0.02" rgba="0 1 1 1"/></body>
    <camera name="shoulder" pos="0 -0.45 0.45" xyaxes="1 0 0 0 0.707 0.707"
            fovy="45"/>
    <camera name="side" pos="-0.6 0 0.05" xyaxes="0 -1 0 0 0 1" fovy="60"/>
    <camera name="under" pos="0.2 0.1 -0.3" xyaxes="1 0 0 0 -1 0" fovy="60"/>
  </worldbody>
</mujoco>
"""
VIEWS = (  # (camera, height, width, at least this many distinct ids)
  ("shoulder", 64, 64, 10),
  ("shoulder", 48, 80, 10),
  ("side", 32, 32, 4),  # sky, floor, board, can, egg and more
  ("under", 16, 16, 1),  # the floor seen from below: planes are two-sided
)

# Renders VIEWS with mujoco.Renderer; prints NO_GL and exits 0 without GL.
NATIVE_SCRIPT = """
import sys
import numpy as np
try:
  import mujoco
except Exception as e:  # e.g. MUJOCO_GL=egl without libEGL
  print("NO_GL", repr(e))
  sys.exit(0)
xml_path, out_path, *views = sys.argv[1:]
m = mujoco.MjModel.from_xml_path(xml_path)
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
out = {}
for view in views:
  camera, h, w = view.split(":")
  try:
    renderer = mujoco.Renderer(m, int(h), int(w))
  except Exception as e:
    print("NO_GL", repr(e))
    sys.exit(0)
  renderer.update_scene(d, camera)
  renderer.enable_depth_rendering()
  out[view + ":depth"] = renderer.render().copy()
  renderer.disable_depth_rendering()
  renderer.enable_segmentation_rendering()
  seg = renderer.render().copy()
  renderer.close()
  geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
  out[view + ":segmentation"] = np.where(geom, seg[..., 0], -1)
np.savez(out_path, **out)
"""


class CompareWithMujocoRendererTest(parameterized.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.native, cls.no_gl, cls.error = None, None, None
    with tempfile.TemporaryDirectory() as tmp:
      xml_path = os.path.join(tmp, "scene.xml")
      out_path = os.path.join(tmp, "native.npz")
      with open(xml_path, "w") as f:
        f.write(SCENE)
      views = [f"{c}:{h}:{w}" for c, h, w, _ in VIEWS]
      env = dict(os.environ, MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl")
      try:
        result = subprocess.run(
          [sys.executable, "-c", NATIVE_SCRIPT, xml_path, out_path, *views],
          env=env,
          capture_output=True,
          text=True,
          timeout=120,
        )
      except subprocess.TimeoutExpired:
        cls.no_gl = "mujoco.Renderer (EGL) timed out"
        return
      if "NO_GL" in result.stdout:
        reason = result.stdout[result.stdout.index("NO_GL") + 6 :].strip()
        cls.no_gl = f"mujoco.Renderer unavailable with EGL: {reason}"
      elif result.returncode:
        cls.error = result.stderr[-2000:]
      else:
        with np.load(out_path) as native:
          cls.native = dict(native)

  @parameterized.parameters(*VIEWS)
  def test_depth_and_segmentation_match(self, camera, height, width, num_ids):
    if self.no_gl:
      self.skipTest(self.no_gl)
    if self.error:
      self.fail(f"native renderer subprocess failed:\n{self.error}")
    mj_model, model, data = make_world(SCENE)
    # mujoco.Renderer's far clipping plane, so empty pixels agree too.
    far = mj_model.vis.map.zfar * mj_model.stat.extent
    ours = render.make_camera(mj_model, camera, height, width, far=far)
    frame = jax.jit(ours.render)(model, data, render.default_lighting())
    view = f"{camera}:{height}:{width}"
    depth, seg = (
      self.native[view + ":depth"],
      self.native[view + ":segmentation"],
    )

    depth_ok = np.abs(np.asarray(frame.depth) - depth) <= np.maximum(
      1e-3, 0.01 * depth
    )  # 1 mm or 1 %
    seg_ok = np.asarray(frame.segmentation) == seg
    msg = (
      f"{view}: depth {depth_ok.mean():.4f}, segmentation {seg_ok.mean():.4f}"
    )
    self.assertGreaterEqual(depth_ok.mean(), 0.99, msg)
    self.assertGreaterEqual(seg_ok.mean(), 0.98, msg)
    # The view is what it is meant to be (most geoms, or sky, in view).
    self.assertGreaterEqual(len(np.unique(seg)), num_ids)


if __name__ == "__main__":
  absltest.main()
