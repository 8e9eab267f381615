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

import jax
import jax.numpy as jnp

from jaxrl_vision import types

BRAX_TASKS = {
  "halfcheetah": "halfcheetah",
  "hopper": "hopper",
  "walker2d": "walker2d",
  "swimmer": "swimmer",
}


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
