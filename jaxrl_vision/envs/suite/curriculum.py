"""Demonstration curricula (spec surreal.md §2.5), inside the jitted reset.

With probability `alpha` an episode starts from a state along a successful
demonstration instead of the task's own reset ("we initialize episodes
with states taken along successful trajectories"). Which state: a scheme
drawn per reset with `ratios` over

  uniform  any step of the demonstration;
  forward  a step in the first `window` steps (from the beginning);
  reverse  a step in the last `window` steps (from the end);

where each world's window grows with the demonstration resets it has
made: `window = initial_window + window_growth * (count // grow_every)`
(robosuite's `DemoSamplerWrapper`: 25, +25 every 100 samples).

The seed's human demonstrations are not available: each training world
records its own from the task's privileged expert (`record_demos`), so a
demonstration state always belongs to the world that replays it (object
sizes and masses are per world). Evaluation never uses a curriculum.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common

SCHEMES = ("uniform", "forward", "reverse")


class Demos(NamedTuple):
  """One demonstration per world, [N, L, ...]: joint positions and
  velocities, the gripper command and the actuators' set-points before
  each step; whether it ended in success ([N])."""

  qpos: jax.Array
  qvel: jax.Array
  closed: jax.Array
  ctrl: jax.Array
  success: jax.Array


def record_demos(
  task: common.ManipulationTask,
  models,
  axes,
  key: jax.Array,
  num_worlds: int,
  length: int,
) -> Demos:
  """The expert's episode of `length` steps in each world (from its own
  reset; jittable)."""
  env = task.env
  state = jax.vmap(env.reset, in_axes=(axes, 0))(
    models, jax.random.split(key, num_worlds)
  )
  step = jax.vmap(env.step, in_axes=(axes, 0, 0))
  expert = jax.vmap(task.expert_action, in_axes=(axes, 0, 0))

  def one(state, k):
    data = state.physics.data
    record = (data.qpos, data.qvel, state.physics.gripper_closed, data.ctrl)
    action = expert(models, state, jax.random.split(k, num_worlds))
    return step(models, state, action), record

  final, (qpos, qvel, closed, ctrl) = jax.lax.scan(
    one, state, jax.random.split(key, length)
  )
  swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
  return Demos(
    qpos=swap(qpos),
    qvel=swap(qvel),
    closed=swap(closed),
    ctrl=swap(ctrl),
    success=final.metrics["success"] > 0.5,
  )


def window(
  count: jax.Array, initial_window: int, window_growth: int, grow_every: int
) -> jax.Array:
  """The open-loop window after `count` demonstration resets."""
  return initial_window + window_growth * (count // grow_every)


def sample_step(
  key: jax.Array, scheme: jax.Array, width: jax.Array, length: int
) -> jax.Array:
  """A demonstration step for `scheme` (an index into SCHEMES) with a
  window of `width` steps, in [0, length)."""
  width = jnp.clip(width, 1, length)
  u = jax.random.uniform(key)
  uniform = jnp.floor(u * length)
  forward = jnp.floor(u * width)
  reverse = length - 1 - jnp.floor(u * width)
  t = jnp.select([scheme == 0, scheme == 1], [uniform, forward], reverse)
  return t.astype(jnp.int32)


def scheme_logits(ratios: dict[str, float]) -> jax.Array:
  """[3] log-probabilities of SCHEMES from weights; ValueError unless the
  weights are >= 0 over known schemes and not all 0."""
  if set(ratios) - set(SCHEMES) or min(ratios.values(), default=-1) < 0:
    raise ValueError(f"ratios must map some of {SCHEMES} to weights >= 0")
  weights = jnp.array([ratios.get(s, 0.0) for s in SCHEMES], jnp.float32)
  if float(weights.sum()) <= 0:
    raise ValueError("ratios must not all be 0")
  return jnp.log(weights / weights.sum())


class Curriculum(NamedTuple):
  """apply(models, demos, states, ends, counts, key) -> (states, counts,
  used): every world whose episode just ended (and was auto-reset) is,
  with probability alpha, moved to a demonstration state; `counts` [N]
  counts each world's demonstration resets."""

  apply: object


def make_curriculum(
  task: common.ManipulationTask,
  axes,
  *,
  alpha: float = 0.5,
  ratios: dict[str, float] | None = None,
  initial_window: int = 5,
  window_growth: int = 5,
  grow_every: int = 100,
) -> Curriculum:
  if task.observe is None:
    raise ValueError("this task does not expose observe(); no curriculum")
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must be in [0, 1]: {alpha}")
  logits = scheme_logits(ratios or {"uniform": 1.0})

  def one_world(model, demo, state, end, count, key):
    use_key, scheme_key, step_key = jax.random.split(key, 3)
    length = demo.qpos.shape[0]
    use = end & demo.success & (jax.random.uniform(use_key) < alpha)
    scheme = jax.random.categorical(scheme_key, logits)
    width = window(count, initial_window, window_growth, grow_every)
    t = sample_step(step_key, scheme, width, length)
    physics = common.restore_configuration(
      model,
      state.physics,
      demo.qpos[t],
      demo.qvel[t],
      demo.closed[t],
      demo.ctrl[t],
    )
    moved = state._replace(physics=physics, obs=task.observe(model, physics))
    state = jax.tree.map(lambda a, b: jnp.where(use, a, b), moved, state)
    return state, count + use.astype(count.dtype), use

  def apply(models, demos: Demos, states: types.EnvState, ends, counts, key):
    keys = jax.random.split(key, ends.shape[0])
    return jax.vmap(one_world, in_axes=(axes, 0, 0, 0, 0, 0))(
      models, demos, states, ends, counts, keys
    )

  return Curriculum(apply)
