"""Surreal-DDPG: acting and learning as pure functions (spec surreal.md §1.3).

One `update` is one learner iteration on a replay batch of n-step
transitions (`types.Transition` with `reward_t` the n-step return R(n)
and `discount_t` its bootstrap discount gamma^m, 0 where the episode
terminated; `losses.n_step_targets` makes both):

  critic  y = R(n) + gamma^m Q'(phi'(s_n), mu'(phi'(s_n)))  (target nets)
          L_Q = mean (Q(phi(s), a) - y)^2, on the critic and phi, Adam with
          optional L2 weight decay (the reference's `weight_decay`)
  actor   L_mu = -mean Q(sg phi(s), mu(sg phi(s))), on the actor only,
          with the updated critic; gradients clipped per value
  target  a hard copy every `target_update_period` updates (the
          reference's default), or Polyak averaging with `target_tau`.

Acting adds each world's exploration noise (the recipe's per-world OU
process, `losses.ou_step`) to the actor's action: clip(clip(mu(s)) + x).
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl_vision import types
from jaxrl_vision.agents.ddpg import losses
from jaxrl_vision.networks import ddpg as ddpg_networks
from jaxrl_vision.networks import policies


class DDPGState(NamedTuple):
  params: Any  # {"encoder", "actor", "critic"}
  target: Any  # the target networks' copy
  actor_opt: optax.OptState
  critic_opt: optax.OptState
  updates: jax.Array  # () int32, learner iterations taken


class DDPG(NamedTuple):
  """init(key, obs) -> DDPGState (obs: one step, [B, ...]);
  act(state, obs, noise [B, A]) -> actions [B, A] in [-1, 1] (noise 0:
  the greedy action); update(state, batch) -> (state, metrics);
  networks: the DDPGNetworks."""

  init: Any
  act: Any
  update: Any
  networks: ddpg_networks.DDPGNetworks


CRITIC_PARTS = ("encoder", "critic")  # what the critic loss trains


def make_ddpg(
  action_size: int,
  *,
  pixels: bool = False,
  actor_hidden_sizes: tuple[int, ...] = (300, 200),
  critic_state_size: int = 400,
  critic_hidden_sizes: tuple[int, ...] = (300,),
  layer_norm: bool = False,
  actor_learning_rate: float = 1e-4,
  critic_learning_rate: float = 1e-4,
  actor_grad_clip: float = 1.0,
  weight_decay: float = 0.0,
  target_update_period: int = 500,
  target_tau: float = 0.0,
  axis_name: str | None = None,
) -> DDPG:
  """Builds Surreal-DDPG for `action_size` actions in [-1, 1].

  `target_tau` > 0 replaces the hard copies with Polyak averaging. With
  `axis_name` (data parallelism) every device learns from its slice of the
  batch and the gradients and metrics are averaged, so all devices apply
  the same update."""
  nets = ddpg_networks.make_ddpg_networks(
    action_size,
    pixels=pixels,
    actor_hidden_sizes=actor_hidden_sizes,
    critic_state_size=critic_state_size,
    critic_hidden_sizes=critic_hidden_sizes,
    layer_norm=layer_norm,
  )
  pmean = (
    (lambda x: x)
    if axis_name is None
    else (lambda x: jax.lax.pmean(x, axis_name))
  )
  # Each optimizer owns its share of the parameters: the critic's
  # {encoder, critic}, the actor's params["actor"].
  critic_tx = optax.chain(
    optax.add_decayed_weights(weight_decay), optax.adam(critic_learning_rate)
  )
  actor_tx = optax.chain(
    optax.clip(actor_grad_clip), optax.adam(actor_learning_rate)
  )
  critic_part = lambda p: {k: p[k] for k in CRITIC_PARTS}  # noqa: E731

  def perceive(params, obs):
    return nets.perceive(params, obs.get("image"), policies.low_dim(obs, 1))

  def init(key, obs):
    params = nets.init(key, obs.get("image"), policies.low_dim(obs, 1))
    return DDPGState(
      params=params,
      target=params,
      actor_opt=actor_tx.init(params["actor"]),
      critic_opt=critic_tx.init(critic_part(params)),
      updates=jnp.int32(0),
    )

  def act(state, obs, noise):
    mean = nets.actor(state.params, perceive(state.params, obs))
    return jnp.clip(jnp.clip(mean, -1.0, 1.0) + noise, -1.0, 1.0)

  def critic_loss(trained, params, target, batch: types.Transition):
    params = dict(params, **trained)
    phi_next = perceive(target, batch.obs_t)
    q_next = nets.critic(target, phi_next, nets.actor(target, phi_next))
    y = batch.reward_t + batch.discount_t * q_next
    q = nets.critic(params, perceive(params, batch.obs_tm1), batch.action_tm1)
    return losses.critic_loss(q, y), {"q": jnp.mean(q), "target": jnp.mean(y)}

  def actor_loss(actor, params, batch: types.Transition):
    params = dict(params, actor=actor)
    phi = perceive(params, batch.obs_tm1)  # no gradient reaches phi
    return -jnp.mean(nets.critic(params, phi, nets.actor(params, phi)))

  def update(state: DDPGState, batch: types.Transition):
    params = state.params
    trained = critic_part(params)
    (q_loss, info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
      trained, params, state.target, batch
    )
    step, critic_opt = critic_tx.update(pmean(grads), state.critic_opt, trained)
    params = dict(params, **optax.apply_updates(trained, step))
    pi_loss, grads = jax.value_and_grad(actor_loss)(
      params["actor"], params, batch
    )
    step, actor_opt = actor_tx.update(
      pmean(grads), state.actor_opt, params["actor"]
    )
    params = dict(params, actor=optax.apply_updates(params["actor"], step))
    updates = state.updates + 1
    if target_tau > 0:
      target = optax.incremental_update(params, state.target, target_tau)
    else:
      copy = updates % target_update_period == 0
      target = jax.tree.map(
        lambda p, t: jnp.where(copy, p, t), params, state.target
      )
    metrics = pmean({"critic_loss": q_loss, "actor_loss": pi_loss, **info})
    state = DDPGState(params, target, actor_opt, critic_opt, updates)
    return state, metrics

  return DDPG(init, act, update, nets)
