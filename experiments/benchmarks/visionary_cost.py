r"""What the Visionary search costs: FLOPs, train-step time, CEM latency.

  python -m experiments.benchmarks.visionary_cost [--found=WORKDIR/architecture.json]

For the base (QT-Opt: add once at pool2), search (every merge op at five
locations + peer attention + dilated convs) and found (pruned) networks:
  * forward FLOPs of one (s, a) pair from XLA's cost analysis, at the default
    CPU size (`grasping_small`, 64x64) and the paper's (`grasping44`,
    472x472; lowered, never run);
  * the measured time of one QT-Opt update (batch 32, target CEM 1x16) at
    the default size;
  * the latency of one CEM action selection (2 iterations x 64 samples, the
    trunk run once and tiled) for one robot at 64x64.
`--found` reads the architecture a `configs/visionary.py` run derived; by
default the found network is the paper's Fig. 5a shape (merges at two
locations, a few attention edges), written out below.

The last line is one JSON object with `search_over_base_flops` (paper
size), `found_over_base_flops`, `search_over_base_step_time` and
`cem_latency_ms`, plus the per-size figures.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging

from jaxrl_vision import types
from jaxrl_vision.agents.qtopt import agent as qtopt
from jaxrl_vision.networks import visionary
from jaxrl_vision.search import visionary as space

_FOUND = flags.DEFINE_string("found", "", "architecture.json of a run.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Timed seconds per case.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Train-step batch.")


def fig5a_like() -> space.Architecture:
  """A found architecture of the paper's Fig. 5a shape: action merged at
  two locations, a few attention edges from the action, earlier layers and
  one dilated conv."""
  return space.Architecture(
    merge=(("add",), ("noop",), ("conv_filters",), ("noop",), ("noop",)),
    attention="fixed",
    edges=(
      ("action",),
      ("pool2",),
      ("action", "conv_b2_1"),
      ("pool2", "dilated4"),
      ("action", "conv_b2_2", "pool3"),
    ),
    dilated=True,
  )


def example_batch(image_size: int, batch: int):
  obs = {
    "image": jnp.zeros((batch, image_size, image_size, 3), jnp.uint8),
    "gripper_closed": jnp.zeros((batch,), jnp.float32),
    "height": jnp.full((batch,), 0.1, jnp.float32),
    "aperture": jnp.ones((batch,), jnp.float32),
  }
  action = jnp.zeros((batch, 7), jnp.float32).at[:, 4].set(1.0)
  return obs, action


def forward_flops(trunk: str, arch, image_size: int) -> float:
  q = visionary.make_q_function(trunk, arch, image_size)
  obs, action = example_batch(image_size, 1)
  params = jax.eval_shape(q.init, jax.random.key(0), obs, action)
  lowered = jax.jit(q.apply).lower(params, obs, action)
  cost = lowered.compile().cost_analysis()
  if isinstance(cost, list):  # older jax returns one dict per computation
    cost = cost[0]
  return float(cost["flops"])


def _timed(fn, *args) -> float:
  """Median seconds per call of a compiled fn, warm."""
  jax.block_until_ready(fn(*args))
  times = []
  start = time.perf_counter()
  while time.perf_counter() - start < _SECONDS.value or len(times) < 5:
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def step_time(trunk: str, arch, image_size: int, batch: int) -> float:
  q = visionary.make_q_function(trunk, arch, image_size)
  agent = qtopt.make_qtopt(
    q,
    optimizer=optax.sgd(0.0044, momentum=0.958),
    is_arch_param=space.is_arch_param,
    target_cem_iterations=1,
    target_cem_samples=16,
    target_cem_elites=4,
  )
  obs, action = example_batch(image_size, batch)
  state = agent.init(jax.random.key(0), obs, action)
  transition = types.Transition(
    obs_tm1=obs,
    action_tm1=action,
    reward_t=jnp.zeros((batch,), jnp.float32),
    discount_t=jnp.ones((batch,), jnp.float32),
    obs_t=obs,
  )
  update = jax.jit(agent.update)
  return _timed(lambda s: update(s, transition)[1], state)


def cem_latency(trunk: str, arch, image_size: int) -> float:
  q = visionary.make_q_function(trunk, arch, image_size)
  agent = qtopt.make_qtopt(q, optimizer=optax.sgd(1e-3))
  obs, action = example_batch(image_size, 1)
  state = agent.init(jax.random.key(0), obs, action)
  act = jax.jit(lambda s, o, k: agent.act(s, o, k, deterministic=True)[0])
  return _timed(act, state, obs, jax.random.key(1))


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _FOUND.value:
    with open(_FOUND.value) as f:
      found = space.architecture_from_json(json.load(f)["found"])
  else:
    found = fig5a_like()
  archs = {
    "base": space.baseline_architecture(),
    "search": space.search_architecture(),
    "found": found,
  }
  sizes = {"default": ("grasping_small", 64), "paper": ("grasping44", 472)}
  flops = {
    size: {
      name: forward_flops(trunk, arch, image) for name, arch in archs.items()
    }
    for size, (trunk, image) in sizes.items()
  }
  for size, row in flops.items():
    print(
      f"{size:8s} GFLOP per (s, a): "
      + ", ".join(f"{k} {v / 1e9:.4f}" for k, v in row.items()),
      flush=True,
    )
  trunk, image = sizes["default"]
  steps = {
    name: step_time(trunk, arch, image, _BATCH.value)
    for name, arch in archs.items()
  }
  print(
    "train step ms: "
    + ", ".join(f"{k} {1e3 * v:.1f}" for k, v in steps.items()),
    flush=True,
  )
  cem = cem_latency(trunk, archs["found"], image)
  print(f"CEM latency (found, one robot, 2x64): {1e3 * cem:.2f} ms", flush=True)
  paper, default = flops["paper"], flops["default"]
  summary = {
    "search_over_base_flops": round(paper["search"] / paper["base"], 4),
    "found_over_base_flops": round(paper["found"] / paper["base"], 4),
    "search_over_base_flops_default": round(
      default["search"] / default["base"], 4
    ),
    "found_over_base_flops_default": round(
      default["found"] / default["base"], 4
    ),
    "search_over_base_step_time": round(steps["search"] / steps["base"], 3),
    "found_over_base_step_time": round(steps["found"] / steps["base"], 3),
    "cem_latency_ms": round(1e3 * cem, 2),
    "gflops": {
      s: {k: round(v / 1e9, 5) for k, v in row.items()}
      for s, row in flops.items()
    },
    "step_ms": {k: round(1e3 * v, 2) for k, v in steps.items()},
    "batch_size": _BATCH.value,
    "found_architecture": space.architecture_to_json(found),
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
  }
  print(json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
