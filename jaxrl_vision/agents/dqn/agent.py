"""Double DQN from pixels, as an `Agent` of pure functions."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl_vision import types
from jaxrl_vision.agents.dqn import losses


class DQNState(NamedTuple):
  params: types.Params
  target_params: types.Params
  opt_state: optax.OptState
  key: jax.Array  # learner randomness
  step: jax.Array  # () int32, learner updates taken


def make_dqn(
  network: types.Network,
  num_actions: int,
  *,
  learning_rate: float,
  discount: float,
  max_grad_norm: float,
  huber_delta: float,
  target_update_tau: float,
  epsilon_start: float,
  epsilon_end: float,
  epsilon_decay_steps: int,
  eval_epsilon: float = 0.0,
  axis_name: str | None = None,
) -> types.Agent:
  """Builds double DQN.

  `axis_name` is the only multi-device hook: when set, gradients and metrics
  are averaged over that mapped axis, so every device applies the same update.
  """
  optimizer = optax.chain(
    optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate)
  )

  def init(key: jax.Array, obs: jax.Array) -> DQNState:
    key, params_key = jax.random.split(key)
    params = network.init(params_key, obs)
    return DQNState(
      params=params,
      target_params=params,
      opt_state=optimizer.init(params),
      key=key,
      step=jnp.zeros((), jnp.int32),
    )

  def act(state: DQNState, obs: jax.Array, key: jax.Array, deterministic=False):
    q = network.apply(state.params, obs)  # [N, A]
    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    epsilon = (
      jnp.float32(eval_epsilon)
      if deterministic
      else losses.epsilon_greedy_epsilon(
        state.step, epsilon_start, epsilon_end, epsilon_decay_steps
      )
    )
    explore_key, action_key = jax.random.split(key)
    random_action = jax.random.randint(
      action_key, greedy.shape, 0, num_actions, jnp.int32
    )
    explore = jax.random.uniform(explore_key, greedy.shape) < epsilon
    action = jnp.where(explore, random_action, greedy)
    return action, {"epsilon": epsilon, "q_max": jnp.max(q, axis=-1)}

  def loss_fn(params, target_params, batch: types.Transition):
    q_tm1 = network.apply(params, batch.obs_tm1)  # [B, A]
    q_t_online = network.apply(params, batch.obs_t)
    q_t_target = network.apply(target_params, batch.obs_t)
    per_example = jax.vmap(losses.double_q_loss, in_axes=(0,) * 6 + (None,))(
      q_tm1,
      batch.action_tm1,
      batch.reward_t,
      discount * batch.discount_t,
      jax.lax.stop_gradient(q_t_target),
      jax.lax.stop_gradient(q_t_online),
      huber_delta,
    )
    return jnp.mean(per_example), {"q_mean": jnp.mean(q_tm1)}

  def update(state: DQNState, batch: types.Transition):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, state.target_params, batch
    )
    metrics = {"loss": loss, **aux}
    if axis_name is not None:  # the only multi-device line in the agent
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    target_params = optax.incremental_update(
      params, state.target_params, target_update_tau
    )
    metrics["grad_norm"] = optax.tree.norm(grads)
    new_state = DQNState(
      params=params,
      target_params=target_params,
      opt_state=opt_state,
      key=state.key,
      step=state.step + 1,
    )
    return new_state, metrics

  return types.Agent(init=init, act=act, update=update)
