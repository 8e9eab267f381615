r"""Frames/s of the JAX ray-casting camera against mujoco.Renderer.

  python -m experiments.benchmarks.render_throughput

A grasp-like scene (floor, a tray of 4 walls, 2 boxes, 2 spheres, 2 capsules)
seen over the shoulder at 64x64. The JAX camera renders rgb, depth,
segmentation and points in one `jit(vmap(render))` call per batch of worlds
(object poses jittered per world); mujoco.Renderer (OpenGL through EGL)
renders rgb only, one frame per `update_scene` + `render`. About 20 s on 2 CPU
cores. The last line is one JSON object:

  {"frames_per_s": best over batches, "by_batch": {"1": ..., ...},
   "native_frames_per_s": ... or null without EGL, "ratio_vs_native": ...,
   "backend": "cpu"}
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import mjx  # noqa: E402

from jaxrl_vision.envs import render  # noqa: E402

SCENE = """
<mujoco>
  <asset><material name="floor" rgba=".3 .35 .4 1"/></asset>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="0 0 0.05" material="floor"/>
    <geom type="box" size="0.15 0.005 0.025" pos="0 0.155 0.025"/>
    <geom type="box" size="0.15 0.005 0.025" pos="0 -0.155 0.025"/>
    <geom type="box" size="0.005 0.16 0.025" pos="0.155 0 0.025"/>
    <geom type="box" size="0.005 0.16 0.025" pos="-0.155 0 0.025"/>
    <body pos="0.05 0.04 0.02" euler="10 20 30"><freejoint/>
      <geom type="box" size="0.02 0.015 0.012" rgba="1 0 0 1"/></body>
    <body pos="-0.06 -0.05 0.02" euler="0 0 45"><freejoint/>
      <geom type="box" size="0.018 0.018 0.018" rgba="0 1 0 1"/></body>
    <body pos="-0.05 0.06 0.02"><freejoint/>
      <geom type="sphere" size="0.02" rgba="0 0 1 1"/></body>
    <body pos="0.08 -0.07 0.025"><freejoint/>
      <geom type="sphere" size="0.025" rgba="1 1 0 1"/></body>
    <body pos="0.0 -0.02 0.015" euler="90 0 30"><freejoint/>
      <geom type="capsule" size="0.012 0.025" rgba="1 0 1 1"/></body>
    <body pos="0.09 0.08 0.03" euler="40 60 0"><freejoint/>
      <geom type="capsule" size="0.015 0.02" rgba="0 1 1 1"/></body>
    <camera name="shoulder" pos="0 -0.45 0.45" xyaxes="1 0 0 0 0.707 0.707"
            fovy="45"/>
  </worldbody>
</mujoco>
"""
SIZE = 64
BATCHES = (1, 16, 64, 256)
REPEATS = 5
SECONDS_PER_REPEAT = 0.5


def time_call(fn, *args) -> float:
  """Median seconds per call over REPEATS timed loops (after warm-up)."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  calls = max(1, int(SECONDS_PER_REPEAT / (time.perf_counter() - start)))
  times = []
  for _ in range(REPEATS):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn(*args)
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / calls)
  return statistics.median(times)


def jax_frames_per_s(mj_model, mj_data) -> dict[str, float]:
  model = mjx.put_model(mj_model)
  data = mjx.put_data(mj_model, mj_data)
  camera = render.make_camera(mj_model, "shoulder", SIZE, SIZE)
  render_batch = jax.jit(jax.vmap(camera.render, in_axes=(None, 0, 0)))
  objects = mj_model.geom_bodyid > 0
  rng = np.random.default_rng(0)
  by_batch = {}
  for batch in BATCHES:
    jitter = rng.uniform(-0.01, 0.01, (batch, mj_model.ngeom, 3))
    geom_xpos = data.geom_xpos + jnp.asarray(jitter * objects[:, None])
    datas = jax.tree.map(
      lambda x, b=batch: jnp.broadcast_to(x, (b,) + x.shape), data
    ).tree_replace({"geom_xpos": geom_xpos.astype(jnp.float32)})
    lights = jax.tree.map(
      lambda x, b=batch: jnp.broadcast_to(x, (b,) + x.shape),
      render.default_lighting(),
    )
    start = time.perf_counter()
    jax.block_until_ready(render_batch(model, datas, lights))
    compile_s = time.perf_counter() - start
    seconds = time_call(render_batch, model, datas, lights)
    by_batch[str(batch)] = batch / seconds
    print(
      f"jax batch {batch:4d}: {batch / seconds:9.1f} frames/s "
      f"({1e3 * seconds / batch:.3f} ms/frame, compile {compile_s:.1f} s)",
      flush=True,
    )
  return by_batch


def native_frames_per_s(mj_model, mj_data) -> float | None:
  try:
    renderer = mujoco.Renderer(mj_model, SIZE, SIZE)
  except Exception as e:  # no GL: report null
    print(f"mujoco.Renderer unavailable: {e!r}")
    return None

  def frame():
    renderer.update_scene(mj_data, "shoulder")
    return renderer.render()

  frame()
  start = time.perf_counter()
  frame()
  calls = max(1, int(SECONDS_PER_REPEAT / (time.perf_counter() - start)))
  times = []
  for _ in range(REPEATS):
    start = time.perf_counter()
    for _ in range(calls):
      frame()
    times.append((time.perf_counter() - start) / calls)
  renderer.close()
  fps = 1.0 / statistics.median(times)
  print(f"mujoco.Renderer ({os.environ['MUJOCO_GL']}): {fps:9.1f} frames/s")
  return fps


def main():
  mj_model = mujoco.MjModel.from_xml_string(SCENE)
  mj_data = mujoco.MjData(mj_model)
  mujoco.mj_forward(mj_model, mj_data)
  print(
    f"backend {jax.default_backend()}, {SIZE}x{SIZE}, {mj_model.ngeom} geoms"
  )
  by_batch = jax_frames_per_s(mj_model, mj_data)
  native = native_frames_per_s(mj_model, mj_data)
  best = max(by_batch.values())
  print(
    json.dumps(
      {
        "frames_per_s": round(best, 1),
        "by_batch": {k: round(v, 1) for k, v in by_batch.items()},
        "native_frames_per_s": None if native is None else round(native, 1),
        "ratio_vs_native": None if native is None else round(best / native, 3),
        "backend": jax.default_backend(),
      }
    )
  )


if __name__ == "__main__":
  main()
