r"""Env frames/s of the Robotics-Suite tasks against the number of worlds
(spec surreal.md §5.2 B1/B2: throughput vs actors, and its knee).

  python -m experiments.benchmarks.surreal_throughput \
      [--worlds=16,64,256,1024] [--pixel_worlds=16,64,256] \
      [--arm_worlds=16,64,256] [--seconds=2]

Block Lifting, random actions, `jit(vmap(env.step))` scanned over
`--steps_per_call` agent steps per call (so dispatch is amortised), warm.
Both robots of `envs.robots`: the Cartesian gripper at 20 Hz (10 substeps
of 5 ms per agent step), the 7-DoF arm at the seed's 10 Hz (20 substeps;
compiled with `arm7.compiler_options`). `state`: physics + the state
observation; `pixels`: physics + the JAX camera's 64x64 RGB frame. The knee
is the fewest worlds whose frames/s reach 90 % of the best. The last line
is one JSON object.
"""

import json
import time

import jax
from absl import app
from absl import flags

from jaxrl_vision.envs import robots
from jaxrl_vision.envs.suite import lift

KNEE_FRACTION = 0.9


SUBSTEPS = {"gripper": 10, "arm7": 20}


def frames_per_s(
  obs_mode: str,
  num_worlds: int,
  seconds: float,
  image_size: int,
  steps: int,
  robot: str = "gripper",
) -> dict:
  """Warm frames/s (agent steps x worlds per second) and compile seconds."""
  task = lift.make_lift_task(
    obs_mode=obs_mode,
    image_size=image_size,
    robot=robot,
    substeps_per_action=SUBSTEPS[robot],
  )
  env = task.env
  models, axes = task.randomize_model(
    env.init_model(), jax.random.key(0), num_worlds
  )
  options = robots.compiler_options(robot)
  reset = jax.jit(
    jax.vmap(env.reset, in_axes=(axes, 0)), compiler_options=options
  )
  state = reset(models, jax.random.split(jax.random.key(1), num_worlds))
  step = jax.vmap(env.step, in_axes=(axes, 0, 0))

  def run(state, key):
    def one(state, k):
      actions = jax.random.uniform(
        k, (num_worlds,) + env.spec.action_shape, minval=-1.0, maxval=1.0
      )
      return step(models, state, actions), None

    state, _ = jax.lax.scan(one, state, jax.random.split(key, steps))
    return state

  start = time.perf_counter()
  compiled = (
    jax.jit(run)
    .lower(state, jax.random.key(2))
    .compile(compiler_options=options)
  )
  compile_s = time.perf_counter() - start
  state = jax.block_until_ready(compiled(state, jax.random.key(3)))
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds or calls < 2:
    state = compiled(state, jax.random.key(calls))
    jax.block_until_ready(state.reward)
    calls += 1
  elapsed = time.perf_counter() - start
  return {
    "worlds": num_worlds,
    "frames_per_s": round(calls * steps * num_worlds / elapsed, 1),
    "compile_s": round(compile_s, 2),
  }


def knee(rows: list[dict]) -> int:
  """The fewest worlds reaching KNEE_FRACTION of the best frames/s."""
  best = max(r["frames_per_s"] for r in rows)
  return min(
    r["worlds"] for r in rows if r["frames_per_s"] >= KNEE_FRACTION * best
  )


def main(argv):
  del argv
  result = {"task": "lift", "device": jax.devices()[0].platform}
  for name, robot, mode, worlds in (
    ("state", "gripper", "state", _WORLDS.value),
    ("pixels", "gripper", "pixels", _PIXEL_WORLDS.value),
    ("arm7_state", "arm7", "state", _ARM_WORLDS.value),
  ):
    rows = []
    for n in worlds:
      rows.append(
        frames_per_s(
          mode, int(n), _SECONDS.value, _IMAGE.value, _STEPS.value, robot
        )
      )
      print(name, rows[-1], flush=True)
    if rows:
      result[name] = {
        "robot": robot,
        "agent_hz": 1.0 / (SUBSTEPS[robot] * 0.005),
        "rows": rows,
        "best_frames_per_s": max(r["frames_per_s"] for r in rows),
        "knee_worlds": knee(rows),
      }
  print(json.dumps(result))


if __name__ == "__main__":
  # Flags only when run: the tests import this module beside other
  # benchmarks whose flags share names.
  _WORLDS = flags.DEFINE_list("worlds", ["16", "64", "256", "1024"], "State.")
  _PIXEL_WORLDS = flags.DEFINE_list(
    "pixel_worlds", ["16", "64", "256"], "Pixels."
  )
  _ARM_WORLDS = flags.DEFINE_list(
    "arm_worlds", ["16", "64", "256"], "7-DoF arm, state."
  )
  _IMAGE = flags.DEFINE_integer("image_size", 64, "Square image size.")
  _STEPS = flags.DEFINE_integer("steps_per_call", 10, "Agent steps per call.")
  _SECONDS = flags.DEFINE_float("seconds", 2.0, "Timed seconds per case.")
  app.run(main)
