r"""Env steps/s of the MJX grasp task against MuJoCo's C simulator + OpenGL.

  python -m experiments.benchmarks.env_throughput [--batch_sizes=1,16,64,256]

The grasp task at 64x64 (3 objects, 20 physics substeps of 5 ms per agent
step), one `jit(vmap(...))` per batch size, timed warm:
  physics:  the agent step's MJX substeps only;
  camera:   the full `env.step` (physics + the JAX camera's RGB-D frame);
  policy:   a small CNN picks the action from the image, then `env.step`.
Native: the same MjModel stepped by `mujoco.mj_step` (20 substeps) with a
`mujoco.Renderer` RGB + depth frame per agent step (EGL; null without GL).
The last line is one JSON object with `physics_steps_per_s`, `frames_per_s`
(physics + camera, best batch), `native_frames_per_s`, `ratio_vs_native`, the
per-batch figures and compile times.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import json  # noqa: E402
import time  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from jaxrl_vision.envs.manipulation import common  # noqa: E402
from jaxrl_vision.envs.manipulation import grasp  # noqa: E402
from jaxrl_vision.networks import encoders  # noqa: E402

_BATCHES = flags.DEFINE_list(
  "batch_sizes", ["1", "16", "64", "256"], "Batches."
)
_IMAGE = flags.DEFINE_integer("image_size", 64, "Square image size.")
_SECONDS = flags.DEFINE_float("seconds", 2.0, "Timed seconds per case.")


class _Policy(nn.Module):
  """A small CNN: image -> action [7] in [-1, 1]."""

  @nn.compact
  def __call__(self, image):
    x = encoders.ConvEncoder((16, 32), (5, 3), (2, 2))(image)
    return jnp.tanh(nn.Dense(common.ACTION_SIZE)(nn.relu(nn.Dense(64)(x))))


def _timed(fn, state, seconds):
  """(steps/s per world-batch call, compile s): warm, then a timed loop."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(state).compile()
  compile_s = time.perf_counter() - start
  state = jax.block_until_ready(compiled(state))
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or calls < 2:
    state = compiled(state)
    jax.block_until_ready(state)
    calls += 1
  return calls / (time.perf_counter() - start), compile_s


def _native(task, image_size, seconds, substeps):
  m = task.mj_model
  d = mujoco.MjData(m)
  mujoco.mj_resetData(m, d)
  try:
    renderer = mujoco.Renderer(m, image_size, image_size)
  except Exception as e:  # noqa: BLE001 -- no GL on this machine
    print(f"native renderer unavailable: {type(e).__name__}: {e}")
    return None, None
  rng = np.random.default_rng(0)
  steps, start, physics_s = 0, time.perf_counter(), 0.0
  while time.perf_counter() - start < seconds or steps < 5:
    d.ctrl[:] = rng.uniform(-0.05, 0.05, m.nu)
    t = time.perf_counter()
    for _ in range(substeps):
      mujoco.mj_step(m, d)
    physics_s += time.perf_counter() - t
    renderer.disable_depth_rendering()
    renderer.update_scene(d, "overhead")
    renderer.render()
    renderer.enable_depth_rendering()
    renderer.update_scene(d, "overhead")
    renderer.render()
    steps += 1
  renderer.close()
  return steps / (time.perf_counter() - start), steps / physics_s


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  substeps = 20
  task = grasp.make_grasp_task(
    image_size=_IMAGE.value, substeps_per_action=substeps
  )
  env, model = task.env, task.env.init_model()
  policy = _Policy()
  key = jax.random.key(0)
  results = {"physics": {}, "camera": {}, "policy": {}}
  compile_s = {}
  for batch in map(int, _BATCHES.value):
    keys = jax.random.split(key, batch)
    states = jax.jit(jax.vmap(env.reset, in_axes=(None, 0)))(model, keys)
    actions = jax.vmap(task.random_action)(keys)
    params = policy.init(key, states.obs["image"][:1])
    ctrls = jnp.zeros((batch, substeps, 6), jnp.float32)

    def physics(state, ctrls=ctrls):
      data = jax.vmap(common.simulate, in_axes=(None, 0, 0))(
        model, state.physics.data, ctrls
      )
      return state._replace(physics=state.physics._replace(data=data))

    def camera(state, actions=actions):
      return jax.vmap(env.step, in_axes=(None, 0, 0))(model, state, actions)

    def acting(state, params=params):
      action = policy.apply(params, state.obs["image"])
      return jax.vmap(env.step, in_axes=(None, 0, 0))(model, state, action)

    for name, fn in (
      ("physics", physics),
      ("camera", camera),
      ("policy", acting),
    ):
      calls_per_s, c = _timed(fn, states, _SECONDS.value)
      results[name][batch] = round(calls_per_s * batch, 1)
      compile_s[f"{name}@{batch}"] = round(c, 1)
      print(
        f"{name:8s} batch {batch:4d}: {calls_per_s * batch:9.1f} env steps/s "
        f"(compile {c:.1f}s)",
        flush=True,
      )

  native, native_physics = _native(task, _IMAGE.value, _SECONDS.value, substeps)
  best = max(results["camera"].values())
  summary = {
    "physics_steps_per_s": max(results["physics"].values()),
    "frames_per_s": best,
    "policy_steps_per_s": max(results["policy"].values()),
    "native_frames_per_s": None if native is None else round(native, 1),
    "native_physics_steps_per_s": (
      None if native_physics is None else round(native_physics, 1)
    ),
    "ratio_vs_native": None if native is None else round(best / native, 3),
    "by_batch": results,
    "compile_s": compile_s,
    "image_size": _IMAGE.value,
    "substeps_per_step": substeps,
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
  }
  print(json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
