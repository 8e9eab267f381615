"""A pure-JAX ray-casting camera for MJX scenes: RGB, depth, segmentation.

MJX's own renderer needs NVIDIA Warp; this one is plain `jax.numpy`, so it
runs inside `jit` and `vmap` on CPU, GPU and TPU. Every pixel ray is
intersected with every rendered geom at once in dense form: rays are moved
into each geom's local frame and tested analytically (sphere and ellipsoid
quadratics, capsule = cylinder side + two end spheres, cylinder = side + two
discs, box slabs, two-sided plane), the nearest hit wins, and the surface
normal at the hit is computed analytically for Lambert shading:

  rgb = rgba[:3] * (ambient + diffuse * max(0, -normal . light_unit))

clipped to [0, 1]. No shadows, textures or specular highlights.

What is static (which geoms are drawn and their types) is decided once with
numpy in `make_camera`; what can be randomised per world flows through the
traced arguments: geom and camera poses from `mjx.Data` (camera jitter is
randomised `model.cam_pos` / `cam_quat` followed by kinematics), sizes,
colours and the field of view from `mjx.Model`, and the light from
`Lighting`. Callers `vmap` over worlds:

  camera = make_camera(mj_model, "overhead", 64, 64)
  frames = jax.vmap(camera.render, in_axes=(model_axes, 0, 0))(
      models, datas, lightings)           # Frame of [N, 64, 64, ...]
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

# MuJoCo's default visible geom groups (mjvOption.geomgroup = 1,1,1,0,0,0).
DEFAULT_GEOM_GROUPS = (0, 1, 2)
BACKGROUND = (0.1, 0.1, 0.1)  # dark grey, as rgb in [0, 1]

_GEOM = mujoco.mjtGeom
_SUPPORTED = {
  int(_GEOM.mjGEOM_PLANE): "plane",
  int(_GEOM.mjGEOM_SPHERE): "sphere",
  int(_GEOM.mjGEOM_CAPSULE): "capsule",
  int(_GEOM.mjGEOM_ELLIPSOID): "ellipsoid",
  int(_GEOM.mjGEOM_CYLINDER): "cylinder",
  int(_GEOM.mjGEOM_BOX): "box",
}
_INF = np.float32(np.inf)
_TINY = 1e-9  # guards divisions by ray direction components
_MISS = np.float32(1e30)  # a finite stand-in for "no hit" in packed keys
_MAX_GEOMS = 1024
_EXACT = jax.lax.Precision.HIGHEST  # f32 matmuls (TPUs default to bf16)


class Lighting(NamedTuple):
  """One directional light; a pytree, so it can be randomised per world."""

  direction: jax.Array  # [3] float32, direction the light travels (world)
  diffuse: jax.Array  # () float32
  ambient: jax.Array  # () float32


def default_lighting() -> Lighting:
  """A light from above, slightly in front and to the side."""
  return Lighting(
    direction=jnp.array([0.3, 0.2, -1.0], jnp.float32),
    diffuse=jnp.float32(0.7),
    ambient=jnp.float32(0.3),
  )


class Frame(NamedTuple):
  """What one camera sees in one world."""

  rgb: jax.Array  # [H, W, 3] uint8
  depth: jax.Array  # [H, W] float32, z-depth in metres; `far` on a miss
  segmentation: jax.Array  # [H, W] int32, geom id; -1 on a miss
  points: jax.Array  # [H, W, 3] float32, world hit points; 0 on a miss


class Camera(NamedTuple):
  """A camera as a pure function of one world; callers vmap over worlds."""

  render: Callable[[mjx.Model, mjx.Data, Lighting], Frame]
  height: int
  width: int


Vec3 = tuple[jax.Array, jax.Array, jax.Array]  # x, y, z components


def _first_root(b, c, a=1.0):
  """Nearer root t of a t^2 + 2 b t + c = 0 if it is positive, else inf."""
  disc = b * b - a * c
  t = (-b - jnp.sqrt(jnp.maximum(disc, 0.0))) / a
  return jnp.where((disc >= 0) & (t > 0), t, _INF)


def _safe(d):
  """Keeps a divisor away from 0 (the sign does not matter where it is 0)."""
  return jnp.where(jnp.abs(d) > _TINY, d, _TINY)


# Ray-primitive hits. Each takes the ray origin o (3 x [G, 1]) and unit
# direction d (3 x [G, P]) in the geoms' local frames and the geom sizes
# (3 x [G, 1]), and returns the distance t [G, P] to the first hit in front of
# the origin (inf on a miss).


def _hit_sphere(o, d, size):
  b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
  c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - size[0] * size[0]
  return _first_root(b, c)


def _hit_plane(o, d, size):
  # Two-sided, as mujoco.Renderer draws planes (mj_ray's are one-sided).
  t = -o[2] / _safe(d[2])
  hit = t > 0
  # A positive half-size bounds the plane as MuJoCo draws it; 0 = infinite.
  for k in range(2):
    hit &= (size[k] <= 0) | (jnp.abs(o[k] + t * d[k]) <= size[k])
  return jnp.where(hit, t, _INF)


def _hit_box(o, d, size):
  t_near, t_far = -_INF, _INF
  for k in range(3):  # slabs
    inv = 1.0 / _safe(d[k])
    t1, t2 = (-size[k] - o[k]) * inv, (size[k] - o[k]) * inv
    t_near = jnp.maximum(t_near, jnp.minimum(t1, t2))
    t_far = jnp.minimum(t_far, jnp.maximum(t1, t2))
  return jnp.where((t_near <= t_far) & (t_near > 0), t_near, _INF)


def _hit_side(o, d, size):
  """The side of a z-axis cylinder of radius size[0], half-length size[1]."""
  a = d[0] * d[0] + d[1] * d[1]
  b = o[0] * d[0] + o[1] * d[1]
  c = o[0] * o[0] + o[1] * o[1] - size[0] * size[0]
  t = _first_root(b, c, a)
  return jnp.where(jnp.abs(o[2] + t * d[2]) <= size[1], t, _INF), b, c


def _hit_capsule(o, d, size):
  t, b, c = _hit_side(o, d, size)
  # End spheres at z = +-half: the first hit of a union of convex parts is
  # the nearest of the parts' first hits.
  for z in (size[1], -size[1]):
    oz = o[2] - z
    t = jnp.minimum(t, _first_root(b + oz * d[2], c + oz * oz))
  return t


def _hit_cylinder(o, d, size):
  t, _, _ = _hit_side(o, d, size)
  inv = 1.0 / _safe(d[2])
  for z in (size[1], -size[1]):  # end discs
    t_cap = (z - o[2]) * inv
    x, y = o[0] + t_cap * d[0], o[1] + t_cap * d[1]
    on_disc = (t_cap > 0) & (x * x + y * y <= size[0] * size[0])
    t = jnp.minimum(t, jnp.where(on_disc, t_cap, _INF))
  return t


def _hit_ellipsoid(o, d, size):
  # Scaling by 1/size maps the ellipsoid to the unit sphere; t is unchanged.
  o = [o[k] / size[k] for k in range(3)]
  d = [d[k] / size[k] for k in range(3)]
  a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
  b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]
  c = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - 1.0
  return _first_root(b, c, a)


# Outward normals (unnormalised) at local hit points q (3 x [P]) for geoms of
# sizes `size` (3 x [P]).


def _normal_plane(q, size):
  del size
  return jnp.zeros_like(q[0]), jnp.zeros_like(q[0]), jnp.ones_like(q[0])


def _normal_sphere(q, size):
  del size
  return q


def _normal_ellipsoid(q, size):
  return tuple(q[k] / (size[k] * size[k]) for k in range(3))


def _normal_capsule(q, size):
  return q[0], q[1], q[2] - jnp.clip(q[2], -size[1], size[1])


def _normal_cylinder(q, size):
  on_cap = jnp.abs(q[2]) * size[0] > jnp.hypot(q[0], q[1]) * size[1]
  return (
    jnp.where(on_cap, 0.0, q[0]),
    jnp.where(on_cap, 0.0, q[1]),
    jnp.where(on_cap, jnp.sign(q[2]), 0.0),
  )


def _normal_box(q, size):
  s = [jnp.abs(q[k]) / size[k] for k in range(3)]  # the face has s_k = 1
  on_x = (s[0] >= s[1]) & (s[0] >= s[2])
  on_y = ~on_x & (s[1] >= s[2])
  on_z = ~on_x & ~on_y
  return tuple(
    jnp.where(on, jnp.sign(q[k]), 0.0)
    for k, on in enumerate((on_x, on_y, on_z))
  )


_PRIMITIVES = {  # name -> (hit, normal)
  "plane": (_hit_plane, _normal_plane),
  "sphere": (_hit_sphere, _normal_sphere),
  "capsule": (_hit_capsule, _normal_capsule),
  "ellipsoid": (_hit_ellipsoid, _normal_ellipsoid),
  "cylinder": (_hit_cylinder, _normal_cylinder),
  "box": (_hit_box, _normal_box),
}


def make_camera(
  mj_model: mujoco.MjModel,
  camera: str,
  height: int,
  width: int,
  *,
  far: float = 10.0,
  geom_groups: Sequence[int] | None = None,
) -> Camera:
  """Returns a ray-casting `Camera` for the named camera of `mj_model`.

  Args:
    mj_model: the scene; only its static structure (geom types, groups, which
      geoms are transparent, the camera's id) is read here. Poses, sizes,
      colours and the field of view come from the traced `mjx.Model` and
      `mjx.Data` at render time.
    camera: name of a camera in `mj_model`.
    height: image rows.
    width: image columns.
    far: z-depth (metres) beyond which nothing is drawn; the depth of empty
      pixels.
    geom_groups: geom groups to draw; None draws MuJoCo's default visible
      groups (0, 1, 2), as `mujoco.Renderer` does. Geoms whose rgba alpha is 0
      are never drawn.

  Returns:
    `Camera(render, height, width)`, where `render(model, data, lighting)`
    gives a `Frame` for one world.

  Raises:
    ValueError: for an unknown or non-perspective camera, a camera defined by
      sensor size instead of fovy, a non-positive size or far plane, a drawn
      geom of an unsupported type (mesh, height field, SDF) or more than 1024
      drawn geoms.
  """
  if height <= 0 or width <= 0:
    raise ValueError(f"image size must be positive, got {height}x{width}")
  if not far > 0:
    raise ValueError(f"far must be positive, got {far}")
  cam_id = mujoco.mj_name2id(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
  if cam_id < 0:
    names = [mj_model.camera(i).name for i in range(mj_model.ncam)]
    raise ValueError(f"unknown camera {camera!r}; the model has {names}")
  if mj_model.cam_projection[cam_id] != mujoco.mjtProjection.mjPROJ_PERSPECTIVE:
    raise ValueError(f"camera {camera!r} is not a perspective camera")
  if np.any(mj_model.cam_sensorsize[cam_id] > 0):
    raise ValueError(
      f"camera {camera!r} sets sensorsize/focal; the JAX camera uses fovy"
    )
  groups = DEFAULT_GEOM_GROUPS if geom_groups is None else tuple(geom_groups)

  drawn = np.isin(mj_model.geom_group, groups) & (mj_model.geom_rgba[:, 3] > 0)
  for g in np.flatnonzero(drawn):
    if int(mj_model.geom_type[g]) not in _SUPPORTED:
      name = mj_model.geom(g).name or f"#{g}"
      kind = _GEOM(int(mj_model.geom_type[g])).name
      raise ValueError(
        f"geom {name} has type {kind}, which the JAX camera cannot draw; "
        f"supported: {sorted(_SUPPORTED.values())} (or hide it with "
        "geom_groups)"
      )
  # Group geoms by type so each type is one vectorised intersection. Hits
  # index into `order`, the drawn geom ids listed group by group.
  groups_by_kind = []
  for code, kind in _SUPPORTED.items():
    ids = np.flatnonzero(drawn & (mj_model.geom_type == code))
    if ids.size:
      groups_by_kind.append((kind, ids))
  order = np.concatenate([ids for _, ids in groups_by_kind] + [[]]).astype(
    np.int32
  )
  kind_index = np.concatenate(
    [np.full(ids.size, i) for i, (_, ids) in enumerate(groups_by_kind)] + [[]]
  ).astype(np.int32)

  far = np.float32(far)
  aspect = np.float32(width / height)
  # Pixel centres in normalised device coordinates; row 0 is the top.
  x_ndc = ((2 * np.arange(width) + 1) / width - 1).astype(np.float32)
  y_ndc = (1 - (2 * np.arange(height) + 1) / height).astype(np.float32)
  x_ndc = np.tile(x_ndc, height)  # [P], P = H * W, row-major
  y_ndc = np.repeat(y_ndc, width)  # [P]
  # Low mantissa bits of t that carry the hit's index (see `render`); with
  # at most 10 of the 23 bits, depths closer than 1.2e-4 relative may tie.
  if order.size > _MAX_GEOMS:
    raise ValueError(f"too many geoms to draw: {order.size} > {_MAX_GEOMS}")
  index_bits = (1 << max(1, int(order.size - 1).bit_length())) - 1
  background = np.round(np.asarray(BACKGROUND) * 255).astype(np.uint8)

  def blank() -> Frame:
    return Frame(
      rgb=jnp.broadcast_to(jnp.asarray(background), (height, width, 3)),
      depth=jnp.full((height, width), far),
      segmentation=jnp.full((height, width), -1, jnp.int32),
      points=jnp.zeros((height, width, 3), jnp.float32),
    )

  def render(model: mjx.Model, data: mjx.Data, lighting: Lighting) -> Frame:
    if not order.size:
      return blank()
    # Unit ray directions: camera frame (looking along -z, +y up) -> world.
    tan = jnp.tan(jnp.deg2rad(model.cam_fovy[cam_id]) / 2)
    cx, cy = tan * aspect * x_ndc, tan * y_ndc  # [P]
    z_per_t = jax.lax.rsqrt(cx * cx + cy * cy + 1)  # z-depth per unit t
    d_cam = jnp.stack([cx * z_per_t, cy * z_per_t, -z_per_t])  # [3, P]
    # A matmul, not elementwise code, so XLA materialises the rays once
    # instead of recomputing them inside every geom group's fused loop.
    d_world = tuple(jnp.matmul(data.cam_xmat[cam_id], d_cam, precision=_EXACT))
    origin = data.cam_xpos[cam_id]  # [3]

    # Nearest hit per pixel. The hit index rides in the low mantissa bits of
    # t (positive floats order like their bit patterns), so one float min
    # finds both: XLA lowers float min-reductions to fast vector code, while
    # argmin and integer reductions fused with their producers run scalar.
    t_best = jnp.full(x_ndc.shape, _MISS)
    key_best = jnp.full(x_ndc.shape, _MISS)
    start = 0
    for kind, ids in groups_by_kind:
      offset = origin - data.geom_xpos[ids]  # [G, 3]
      if kind == "sphere":  # rotation-invariant: stay in the world frame
        o = tuple(offset[:, k, None] for k in range(3))
        d = tuple(d_k[None] for d_k in d_world)
      else:  # local = R^T world, with R's columns the geom's local axes
        mat = data.geom_xmat[ids]  # [G, 3, 3]
        o = tuple(
          sum(mat[:, k, j, None] * offset[:, k, None] for k in range(3))
          for j in range(3)
        )  # 3 x [G, 1]
        d = tuple(
          sum(mat[:, k, j, None] * d_world[k] for k in range(3))
          for j in range(3)
        )  # 3 x [G, P]
      size = model.geom_size[ids]
      t = _PRIMITIVES[kind][0](o, d, tuple(size[:, k, None] for k in range(3)))
      visible = model.geom_rgba[ids, 3, None] > 0  # a traced alpha may be 0
      t = jnp.where(visible & (t < _MISS), t, _MISS)  # [G, P]; NaN -> miss
      index = jnp.arange(start, start + ids.size, dtype=jnp.int32)[:, None]
      key = jax.lax.bitcast_convert_type(
        jax.lax.bitcast_convert_type(t, jnp.int32) & ~index_bits | index,
        jnp.float32,
      )
      key_best = jnp.minimum(key_best, jnp.min(key, axis=0))
      t_best = jnp.minimum(t_best, jnp.min(t, axis=0))
      start += ids.size
    i_best = jax.lax.bitcast_convert_type(key_best, jnp.int32) & index_bits

    depth = t_best * z_per_t
    hit = depth <= far
    t_hit = jnp.where(hit, t_best, 0.0)
    points = tuple(origin[k] + d_world[k] * t_hit for k in range(3))  # 3 x [P]

    # Per-pixel properties of the hit geom: a one-hot matmul against a
    # [20, G] table is much faster on CPU than XLA's gather (and exact: each
    # output is one table entry times 1, plus zeros).
    table = jnp.concatenate(
      [
        data.geom_xpos[order],
        data.geom_xmat[order].reshape(-1, 9),
        model.geom_size[order],
        model.geom_rgba[order, :3],
        jnp.asarray(kind_index, jnp.float32)[:, None],
        jnp.asarray(order, jnp.float32)[:, None],
      ],
      axis=1,
    ).T  # [20, G]
    one_hot = i_best == jnp.arange(order.size, dtype=jnp.int32)[:, None]
    per_pixel = jnp.matmul(
      table, one_hot.astype(jnp.float32), precision=_EXACT
    )  # [20, P]
    pos, mat = per_pixel[0:3], per_pixel[3:12].reshape(3, 3, -1)
    size, colour = per_pixel[12:15], per_pixel[15:18]
    kind_p, geom = per_pixel[18], per_pixel[19].astype(jnp.int32)
    rel = [points[k] - pos[k] for k in range(3)]
    q = tuple(sum(mat[k, j] * rel[k] for k in range(3)) for j in range(3))

    # Analytic normals: each present type's formula, selected per pixel.
    n_local = _PRIMITIVES[groups_by_kind[0][0]][1](q, size)
    for i, (kind, _) in enumerate(groups_by_kind[1:], start=1):
      n = _PRIMITIVES[kind][1](q, size)
      n_local = tuple(
        jnp.where(kind_p == i, a, b) for a, b in zip(n, n_local, strict=True)
      )
    normal = [sum(mat[k, j] * n_local[j] for j in range(3)) for k in range(3)]
    # Face the viewer: only a plane seen from behind has n . ray > 0.
    facing = jnp.sign(-sum(normal[k] * d_world[k] for k in range(3)))
    normal = [n_k * facing for n_k in normal]
    light = lighting.direction * jax.lax.rsqrt(jnp.sum(lighting.direction**2))
    cos = -sum(normal[k] * light[k] for k in range(3))
    cos *= jax.lax.rsqrt(jnp.maximum(sum(n_k * n_k for n_k in normal), 1e-30))
    shade = lighting.ambient + lighting.diffuse * jnp.maximum(cos, 0.0)
    rgb = [
      jnp.where(hit, jnp.clip(colour[k] * shade, 0.0, 1.0) * 255, background[k])
      for k in range(3)
    ]

    shape = (height, width)
    return Frame(
      rgb=jnp.round(jnp.stack(rgb, -1)).astype(jnp.uint8).reshape(shape + (3,)),
      depth=jnp.where(hit, depth, far).reshape(shape),
      segmentation=jnp.where(hit, geom, -1).reshape(shape),
      points=jnp.stack(
        [jnp.where(hit, p_k, 0.0) for p_k in points], -1
      ).reshape(shape + (3,)),
    )

  return Camera(render=render, height=height, width=width)
