"""Surreal-PPO: acting and learning as pure functions (spec surreal.md §1.2).

The learner keeps current parameters and a *reference* copy, the last
published ones: actors act with the reference (their behaviour is recorded
with each step), the KL penalty pulls toward it, and every
`publish_every` consumed segments the reference becomes the current
parameters, beta adapts to the mean KL since the last publish and the
learning-rate staircase steps (§1.2.4).

One `learn` call is one learner iteration on a minibatch of segments:
advantages and returns once with the current critic, up to
`actor_epochs` actor steps (stopped once KL(ref || pi) > 4 x target), then
`critic_epochs` critic steps, then the z-filter update. Two Adams with
global-norm clipping, one on the actor loss and one on the critic loss,
both over every parameter (the shared trunk gets both; each head only its
own loss's updates, as the reference's two optimizers).
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl_vision.agents.ppo import losses
from jaxrl_vision.networks import policies
from jaxrl_vision.networks.policies import Gaussian


class Segments(NamedTuple):
  """A batch of segments, [B, T, ...] per step (B segments of T steps).

  obs / final_obs: observations before / after each step (final_obs is the
  finished episode's last one where the episode ended there); starts: obs
  is the first of its episode; behaviour: the actor's policy at acting
  time (per-world std jitter included); carry: the actor's LSTM state
  before the segment's first step, [B, L] each."""

  obs: Any
  final_obs: Any
  actions: jax.Array
  rewards: jax.Array
  terminated: jax.Array
  ends: jax.Array
  starts: jax.Array
  behaviour: Gaussian
  carry: policies.Carry


class PPOState(NamedTuple):
  params: Any
  reference: Any  # published params
  zfilter: losses.ZFilter
  reference_zfilter: losses.ZFilter
  actor_opt: optax.OptState
  critic_opt: optax.OptState
  beta: jax.Array
  kl_sum: jax.Array  # per-iteration KLs since the last publish
  kl_count: jax.Array
  consumed: jax.Array  # segments since the last publish
  publishes: jax.Array


class PPO(NamedTuple):
  """init(key, obs, warm_obs=None) -> PPOState (obs: one step, [B, ...]);
  act(state, carry, obs, starts, key, log_std_noise, deterministic) ->
    (actions, behaviour Gaussian, carry), with the reference parameters;
  learn(state, segments) -> (state, metrics): one learner iteration;
  network: the ActorCritic."""

  init: Any
  act: Any
  learn: Any
  network: policies.ActorCritic


def make_ppo(
  action_size: int,
  *,
  pixels: bool = False,
  lstm_size: int = 100,
  hidden_sizes: tuple[int, ...] = (300, 200),
  init_log_std: float = -1.0,
  actor_out_scale: float | None = None,
  gamma: float = 0.995,
  lam: float = 0.97,
  horizon: int = 5,
  kl_target: float = losses.KL_TARGET,
  kl_cutoff: float = losses.KL_CUTOFF,
  beta_init: float = 1.0,
  actor_epochs: int = 10,
  critic_epochs: int = 10,
  learning_rate: float = 1e-4,
  min_learning_rate: float = 5e-5,
  lr_num_steps: int = 1220,
  lr_update_freq: int = 100,
  max_grad_norm: float = 5.0,
  publish_every: int = 4096,
  reward_scale: float = 1.0,
  axis_name: str | None = None,
) -> PPO:
  """Builds Surreal-PPO for `action_size` actions in [-1, 1]; the
  observation's low-dim leaves are z-filtered. `reward_scale` multiplies
  the rewards the learner sees (the reference's `reward_scale`, 0.01 for
  its Hopper): it sets the value function's scale.

  With `axis_name` (data parallelism, `distributed.data_parallel`) each
  device learns from its own slice of every minibatch: advantages are
  normalised with the global mean and std, gradients, KLs (so every device
  stops its epochs together) and metrics are averaged, the z-filter sums
  and the consumed-segment count are summed over devices. The hinge acts
  on each device's KL; everything else equals one device on the whole
  minibatch."""
  if axis_name is None:
    pmean = psum = lambda x: x  # noqa: E731
  else:
    pmean = lambda x: jax.lax.pmean(x, axis_name)  # noqa: E731
    psum = lambda x: jax.lax.psum(x, axis_name)  # noqa: E731
  net = policies.make_actor_critic(
    action_size,
    pixels=pixels,
    lstm_size=lstm_size,
    hidden_sizes=hidden_sizes,
    init_log_std=init_log_std,
    actor_out_scale=actor_out_scale,
  )
  adam = optax.chain(
    optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam()
  )

  def features(params, zfilter, obs, batch_dims):
    image = obs.get("image")
    low = policies.low_dim(obs, batch_dims)
    return net.encode(params, image, losses.zfilter_apply(zfilter, low))

  def init(key, obs, warm_obs=None):
    """obs: one step [B, ...]; warm_obs (optional, [M, ...]): observations
    the z-filter starts from, in the current and the reference parameters
    alike (otherwise it is the identity until the first learner iteration
    and the first publish jumps)."""
    low = policies.low_dim(obs, 1)
    params = net.init(key, obs.get("image"), low)
    zf = losses.zfilter_init(low.shape[-1])
    if warm_obs is not None:  # every device's, under data parallelism
      added = losses.zfilter_update(
        jax.tree.map(jnp.zeros_like, zf), policies.low_dim(warm_obs, 1)
      )
      zf = jax.tree.map(jnp.add, zf, psum(added))
    zero = jnp.float32(0)
    return PPOState(
      params=params,
      reference=params,
      zfilter=zf,
      reference_zfilter=zf,
      actor_opt=adam.init(params),
      critic_opt=adam.init(params),
      beta=jnp.float32(beta_init),
      kl_sum=zero,
      kl_count=zero,
      consumed=jnp.int32(0),
      publishes=jnp.int32(0),
    )

  def act(state, carry, obs, starts, key, log_std_noise, deterministic=False):
    x = features(state.reference, state.reference_zfilter, obs, 1)
    carry, dist, _ = net.step(state.reference, carry, x, starts)
    dist = Gaussian(dist.mean, dist.std * jnp.exp(log_std_noise))
    noise = jax.random.normal(key, dist.mean.shape)
    actions = dist.mean if deterministic else dist.mean + dist.std * noise
    return actions, dist, carry

  def unroll(params, zfilter, seg: Segments):
    """Per step: policy and value of obs, value of final_obs; [B, T]."""
    time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    x = time_major(features(params, zfilter, seg.obs, 2))
    x_final = time_major(features(params, zfilter, seg.final_obs, 2))
    starts = time_major(seg.starts)
    if not lstm_size:  # no recurrence: all steps at once, no scan
      _, dist, value = net.unroll(params, seg.carry, x, starts)
      _, _, next_value = net.unroll(params, seg.carry, x_final, starts)
      batch_major = lambda t: jax.tree.map(time_major, t)  # noqa: E731
      return batch_major(dist), time_major(value), time_major(next_value)

    def one(carry, inputs):
      feat, feat_final, start = inputs
      carry, dist, value = net.step(params, carry, feat, start)
      _, _, next_value = net.step(
        params, carry, feat_final, jnp.zeros_like(start)
      )
      return carry, (dist, value, next_value)

    _, (dist, value, next_value) = jax.lax.scan(
      one, seg.carry, (x, x_final, starts)
    )
    batch_major = lambda t: jax.tree.map(time_major, t)  # noqa: E731
    return batch_major(dist), time_major(value), time_major(next_value)

  def learn(state: PPOState, seg: Segments):
    num_steps = seg.rewards.shape[1]
    positions = num_steps - horizon + 1
    head = lambda x: x[:, :positions]  # noqa: E731
    params = state.params
    _, values, next_values = unroll(params, state.zfilter, seg)
    gae = jax.vmap(
      lambda *a: losses.truncated_gae(*a, gamma=gamma, lam=lam, horizon=horizon)
    )
    rewards = seg.rewards * reward_scale
    adv, ret = gae(rewards, values, next_values, seg.terminated, seg.ends)
    adv = losses.normalize_advantages(adv, axis_name)
    ref_dist, _, _ = unroll(state.reference, state.reference_zfilter, seg)
    ref_dist = jax.tree.map(head, ref_dist)
    behaviour = jax.tree.map(head, seg.behaviour)
    actions = head(seg.actions)
    lr = losses.lr_staircase(
      state.publishes,
      initial=learning_rate,
      minimum=min_learning_rate,
      num_steps=lr_num_steps,
      update_freq=lr_update_freq,
    )

    def actor_loss(p):
      dist, _, _ = unroll(p, state.zfilter, seg)
      return losses.actor_loss(
        jax.tree.map(head, dist),
        behaviour,
        ref_dist,
        actions,
        adv,
        state.beta,
        kl_target=kl_target,
        kl_cutoff=kl_cutoff,
      )

    def critic_loss(p):
      _, v, _ = unroll(p, state.zfilter, seg)
      return losses.value_loss(head(v), ret)

    def apply(p, opt, grads):
      updates, opt = adam.update(grads, opt, p)
      return jax.tree.map(lambda w, u: w - lr * u, p, updates), opt

    def actor_epoch(carry, _):
      p, opt, stopped, info = carry
      (loss, new_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(p)
      loss, grads, new_info = pmean((loss, grads, new_info))
      stopped = stopped | losses.stop_early(new_info["kl"], kl_target)
      p, opt = jax.lax.cond(
        stopped, lambda: (p, opt), lambda: apply(p, opt, grads)
      )
      epochs = info["epochs"] + jnp.where(stopped, 0.0, 1.0)
      info = dict(new_info, loss=loss, epochs=epochs)
      return (p, opt, stopped, info), None

    info0 = {"kl": 0.0, "entropy": 0.0, "ratio": 0.0, "loss": 0.0}
    info0 = dict(jax.tree.map(jnp.float32, info0), epochs=jnp.float32(0))
    (params, actor_opt, _, info), _ = jax.lax.scan(
      actor_epoch,
      (params, state.actor_opt, jnp.bool_(False), info0),
      None,
      actor_epochs,
    )

    def critic_epoch(carry, _):
      p, opt = carry
      loss, grads = jax.value_and_grad(critic_loss)(p)
      loss, grads = pmean((loss, grads))
      return apply(p, opt, grads), loss

    (params, critic_opt), value_losses = jax.lax.scan(
      critic_epoch, (params, state.critic_opt), None, critic_epochs
    )
    # The critic before this iteration's epochs, on its own targets.
    explained = losses.explained_variance(head(values), ret, axis_name)
    low = policies.low_dim(seg.obs, 2)
    added = losses.zfilter_update(
      jax.tree.map(jnp.zeros_like, state.zfilter),
      low.reshape(-1, low.shape[-1]),
    )
    zfilter = jax.tree.map(jnp.add, state.zfilter, psum(added))
    state = state._replace(
      params=params,
      actor_opt=actor_opt,
      critic_opt=critic_opt,
      zfilter=zfilter,
      kl_sum=state.kl_sum + info["kl"],
      kl_count=state.kl_count + 1,
      consumed=state.consumed + psum(jnp.int32(seg.rewards.shape[0])),
    )
    state = jax.lax.cond(
      state.consumed >= publish_every, publish, lambda s: s, state
    )
    metrics = {
      "actor_loss": info["loss"],
      "kl": info["kl"],
      "entropy": info["entropy"],
      "ratio": info["ratio"],
      "actor_epochs": info["epochs"],
      "value_loss": value_losses[-1],
      "beta": state.beta,
      "learning_rate": lr,
      "std": jnp.mean(jnp.exp(params["core"]["log_std"])),
      "return_target": pmean(jnp.mean(ret)),
      "explained_variance": explained,
    }
    return state, metrics

  def publish(state: PPOState) -> PPOState:
    mean_kl = state.kl_sum / jnp.maximum(state.kl_count, 1.0)
    return state._replace(
      reference=state.params,
      reference_zfilter=state.zfilter,
      beta=losses.adapt_beta(state.beta, mean_kl, kl_target=kl_target),
      kl_sum=jnp.float32(0),
      kl_count=jnp.float32(0),
      consumed=jnp.int32(0),
      publishes=state.publishes + 1,
    )

  return PPO(init, act, learn, net)
