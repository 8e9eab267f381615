"""Brax's MJX locomotion tasks through the project's env contract (an
adapter: Brax's own environments, physics and rewards, unchanged).

The seed's Gym tasks (spec surreal.md §1.5): HalfCheetah, Hopper,
Walker2d, Swimmer, as `brax.envs.get_environment(name, backend="mjx")`.
The adapter maps a Brax `State` onto `types.EnvState`:

  physics     the Brax State itself (its pipeline state, info, metrics)
  obs         {"state": [D] float32}, Brax's observation
  reward      Brax's reward, summed over `action_repeat` steps
  terminated  Brax's `done` (Hopper and Walker2d fall; the others never)
  truncated   `episode_length` agent steps reached without termination
  metrics     Brax's metrics (e.g. HalfCheetah's reward_run, x_velocity)

Brax's system is fixed inside its env, so `init_model()` is None and the
model argument is ignored (no per-world randomisation). Brax is imported
only when a Brax task is made.
"""

import contextlib
import warnings

import jax
import jax.numpy as jnp
import mujoco

from jaxrl_vision import types

BRAX_TASKS = {
  "halfcheetah": "halfcheetah",
  "hopper": "hopper",
  "walker2d": "walker2d",
  "swimmer": "swimmer",
}


# Brax's own model files use it; MuJoCo would append this to MUJOCO_LOG.TXT
# in the working directory at every build.
_EXPECTED = "compiler attribute 'settotalmass' is deprecated"


@contextlib.contextmanager
def _mujoco_warnings_to_python():
  """MuJoCo's warnings as Python warnings (not lines in MUJOCO_LOG.TXT in
  the working directory), except the expected one about Brax's files, and
  without Brax's maintenance notice."""

  def handler(message: str) -> None:
    if _EXPECTED not in message:
      warnings.warn(f"MuJoCo: {message}", stacklevel=2)

  previous = mujoco.get_mju_user_warning()
  mujoco.set_mju_user_warning(handler)
  try:
    with warnings.catch_warnings():
      # Brax's notice that its own environments are unmaintained: we use
      # them as the seed's Gym tasks and as peers, knowingly.
      warnings.filterwarnings("ignore", "Brax System, piplines")
      yield
  finally:
    mujoco.set_mju_user_warning(previous)


def make_brax_env(
  name: str = "halfcheetah",
  episode_length: int = 1000,
  action_repeat: int = 1,
  backend: str = "mjx",
) -> types.Env:
  """The Brax task `name` (one of BRAX_TASKS) as a `types.Env`."""
  if name not in BRAX_TASKS:
    raise ValueError(
      f"unknown Brax task {name!r}; valid: {', '.join(BRAX_TASKS)}"
    )
  if episode_length < 1 or action_repeat < 1:
    raise ValueError(
      f"episode_length and action_repeat must be >= 1: {episode_length}, "
      f"{action_repeat}"
    )
  from brax import envs  # noqa: PLC0415 -- heavy, and only for Brax tasks

  with _mujoco_warnings_to_python():
    env = envs.get_environment(BRAX_TASKS[name], backend=backend)
  metric_names = tuple(
    sorted(jax.eval_shape(env.reset, jax.random.key(0)).metrics)
  )

  def adapt(s, reward, terminated, truncated, t):
    return types.EnvState(
      physics=s,
      obs={"state": s.obs.astype(jnp.float32)},
      reward=jnp.asarray(reward, jnp.float32),
      terminated=terminated,
      truncated=truncated,
      metrics={k: jnp.asarray(s.metrics[k], jnp.float32) for k in metric_names},
      info={"t": t},
    )

  def reset(model, key):
    del model
    s = env.reset(key)
    false = jnp.bool_(False)
    return adapt(s, 0.0, false, false, jnp.int32(0))

  def step(model, state, action):
    del model

    def one(carry, _):
      s, total = carry
      nxt = env.step(s, action)
      # After Brax reports done, later repeats add nothing.
      alive = s.done < 0.5
      return (
        jax.tree.map(lambda a, b: jnp.where(alive, a, b), nxt, s),
        total + jnp.where(alive, nxt.reward, 0.0),
      ), None

    s = state.physics
    (s, reward), _ = jax.lax.scan(one, (s, jnp.float32(0)), None, action_repeat)
    t = state.info["t"] + 1
    terminated = s.done > 0.5
    truncated = (t >= episode_length) & ~terminated
    return adapt(s, reward, terminated, truncated, t)

  return types.Env(
    reset=reset,
    step=step,
    init_model=lambda: None,
    spec=types.EnvSpec(
      obs_shape=(env.observation_size,),
      obs_dtype=jnp.float32,
      num_actions=0,
      action_shape=(env.action_size,),
      max_episode_steps=episode_length,
    ),
  )
