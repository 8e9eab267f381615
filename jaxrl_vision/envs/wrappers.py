"""Env wrappers: functions from `Env` to `Env`."""

import jax
import jax.numpy as jnp

from jaxrl_vision import types


def auto_reset(env: types.Env) -> types.Env:
  """Starts a new episode in the same step that ends one.

  After a step that terminates or truncates, `state.obs` is the first
  observation of the next episode and `state.info["final_obs"]` is the last
  observation of the finished one, which is what a learner must bootstrap from
  after a truncation. `reward`, `terminated`, `truncated` and `metrics` still
  describe the finished step. `info["reset_key"]` carries the key stream for
  future resets, so a batch of worlds stays reproducible.
  """

  def reset(model, key):
    key, reset_key = jax.random.split(key)
    state = env.reset(model, key)
    info = dict(state.info, final_obs=state.obs, reset_key=reset_key)
    return state._replace(info=info)

  def step(model, state, action):
    inner = state._replace(
      info={
        k: v
        for k, v in state.info.items()
        if k not in ("final_obs", "reset_key")
      }
    )
    next_state = env.step(model, inner, action)
    reset_key, key = jax.random.split(state.info["reset_key"])
    fresh = env.reset(model, key)
    done = next_state.terminated | next_state.truncated

    def pick(a, b):
      return jax.tree.map(lambda x, y: jnp.where(done, x, y), a, b)

    info = dict(
      pick(fresh.info, next_state.info),
      final_obs=next_state.obs,
      reset_key=reset_key,
    )
    return next_state._replace(
      physics=pick(fresh.physics, next_state.physics),
      obs=pick(fresh.obs, next_state.obs),
      info=info,
    )

  return env._replace(reset=reset, step=step)
