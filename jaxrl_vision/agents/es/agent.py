"""Surreal-ES: evolution strategies as pure functions (spec surreal.md §1.4).

One iteration: `ask` perturbs the mean parameters theta into a population
of 2P antithetic members theta +- sigma eps_i, each eps_i regenerated from
a PRNG key (no noise table: every device can rebuild every eps from the
iteration's key, so data-parallel evaluation gathers only the returns);
the caller evaluates the members (vmapped episodes); `tell` ranks the 2P
returns, centres the ranks to [-0.5, 0.5] and steps Adam (with L2 weight
decay, the reference's l2coeff) along

  g = 1 / (2 P sigma) sum_i (F(theta + sigma eps_i) - F(theta - sigma eps_i)) eps_i.

The policy (the reference's [R-es] defaults): observations normalised by
running statistics of every evaluated step and clipped to +-5, MLP(256,
256) with tanh, then either tanh actions plus N(0, action_noise^2), or,
with `action_bins`, `action_bins` scores per action dimension whose argmax
picks one of `action_bins` evenly spaced values in [-1, 1] (the seed's
discretised Swimmer and Hopper).
"""

from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

OBS_CLIP = 5.0


class ObsStats(NamedTuple):
  """Running sums of the observations seen: count, sum, sum of squares."""

  count: jax.Array
  total: jax.Array
  total_sq: jax.Array


class ESState(NamedTuple):
  params: Any  # the search distribution's mean, theta
  opt_state: optax.OptState
  obs_stats: ObsStats
  iteration: jax.Array


class ES(NamedTuple):
  """init(key, obs_size) -> ESState;
  ask(state, key) -> members: [2P, ...] params, member 2i = theta +
    sigma eps_i, 2i + 1 = theta - sigma eps_i;
  tell(state, key, returns [2P], seen: ObsStats) -> (state, metrics), with
    the `ask` key;
  gradient(params, key, returns [2P]) -> g, the ascent direction `tell`
    hands to Adam;
  act(params, obs_stats, obs [B, D], key) -> actions [B, A] in [-1, 1]
    (key None: no action noise)."""

  init: Any
  ask: Any
  tell: Any
  gradient: Any
  act: Any


def centered_ranks(x: jax.Array) -> jax.Array:
  """Ranks of `x` ([N]) scaled to [-0.5, 0.5]: rank / (N - 1) - 0.5 (ties
  broken by position)."""
  n = x.shape[0]
  ranks = jnp.empty((n,), jnp.float32).at[jnp.argsort(x)].set(jnp.arange(n))
  return ranks / max(n - 1, 1) - 0.5


def normalize(stats: ObsStats, obs: jax.Array) -> jax.Array:
  """(obs - mean) / std from running sums, clipped to +-OBS_CLIP; the
  identity until anything has been seen."""
  count = jnp.maximum(stats.count, 1.0)
  mean = stats.total / count
  var = jnp.maximum(stats.total_sq / count - jnp.square(mean), 1e-4)
  std = jnp.where(stats.count > 0, jnp.sqrt(var), 1.0)
  mean = jnp.where(stats.count > 0, mean, 0.0)
  return jnp.clip((obs - mean) / std, -OBS_CLIP, OBS_CLIP)


def obs_stats(obs: jax.Array, mask: jax.Array | None = None) -> ObsStats:
  """The sums of `obs` ([..., D]) over the steps where `mask` ([...]) holds."""
  flat = obs.reshape(-1, obs.shape[-1])
  w = jnp.ones(flat.shape[:1]) if mask is None else mask.reshape(-1)
  w = w.astype(flat.dtype)
  return ObsStats(
    count=jnp.sum(w),
    total=jnp.sum(flat * w[:, None], 0),
    total_sq=jnp.sum(jnp.square(flat) * w[:, None], 0),
  )


class _Policy(nn.Module):
  outputs: int
  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for size in self.hidden_sizes:
      x = jnp.tanh(nn.Dense(size)(x))
    return nn.Dense(self.outputs)(x)


def make_es(
  action_size: int,
  *,
  population_size: int = 64,
  sigma: float = 0.02,
  learning_rate: float = 0.01,
  l2: float = 0.005,
  hidden_sizes: Sequence[int] = (256, 256),
  action_noise: float = 0.01,
  action_bins: int = 0,
) -> ES:
  """`population_size` members in P = population_size / 2 antithetic pairs."""
  if population_size < 2 or population_size % 2:
    raise ValueError(
      f"population_size must be even and >= 2 (antithetic pairs): "
      f"{population_size}"
    )
  if action_bins == 1:
    raise ValueError("action_bins must be 0 (continuous) or >= 2")
  pairs = population_size // 2
  outputs = action_size * action_bins if action_bins else action_size
  policy = _Policy(outputs, tuple(hidden_sizes))
  tx = optax.chain(optax.add_decayed_weights(l2), optax.adam(learning_rate))

  def init(key, obs_size):
    params = policy.init(key, jnp.zeros((1, obs_size)))["params"]
    zeros = jnp.zeros((obs_size,), jnp.float32)
    return ESState(
      params=params,
      opt_state=tx.init(params),
      obs_stats=ObsStats(jnp.float32(0), zeros, zeros),
      iteration=jnp.int32(0),
    )

  def noise(params, key):
    """[P, ...] eps_i per leaf, eps_i from fold_in(key, i)."""
    leaves, treedef = jax.tree.flatten(params)

    def one(i):
      keys = jax.random.split(jax.random.fold_in(key, i), len(leaves))
      return [
        jax.random.normal(k, x.shape, x.dtype)
        for k, x in zip(keys, leaves, strict=True)
      ]

    eps = jax.vmap(one)(jnp.arange(pairs))
    return jax.tree.unflatten(treedef, eps)

  def ask(state, key):
    eps = noise(state.params, key)
    return jax.tree.map(
      lambda t, e: jnp.stack([t + sigma * e, t - sigma * e], 1).reshape(
        (population_size,) + t.shape
      ),
      state.params,
      eps,
    )

  def gradient(params, key, returns):
    fitness = centered_ranks(returns).reshape(pairs, 2)
    diff = fitness[:, 0] - fitness[:, 1]  # F+ - F-
    return jax.tree.map(
      lambda e: jnp.tensordot(diff, e, axes=1) / (2 * pairs * sigma),
      noise(params, key),
    )

  def tell(state, key, returns, seen: ObsStats):
    grad = gradient(state.params, key, returns)
    # Ascent: Adam on -g (its weight decay pulls theta to 0).
    minus = jax.tree.map(jnp.negative, grad)
    updates, opt_state = tx.update(minus, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    stats = jax.tree.map(jnp.add, state.obs_stats, seen)
    metrics = {
      "return_mean": jnp.mean(returns),
      "return_max": jnp.max(returns),
      "grad_norm": optax.tree.norm(grad),
      "param_norm": optax.tree.norm(params),
    }
    state = ESState(params, opt_state, stats, state.iteration + 1)
    return state, metrics

  def act(params, stats, obs, key=None):
    out = policy.apply({"params": params}, normalize(stats, obs))
    if action_bins:
      scores = out.reshape(out.shape[:-1] + (action_size, action_bins))
      index = jnp.argmax(scores, -1).astype(jnp.float32)
      actions = index / (action_bins - 1) * 2.0 - 1.0
    else:
      actions = jnp.tanh(out)
    if key is not None:
      actions = actions + action_noise * jax.random.normal(key, actions.shape)
    return jnp.clip(actions, -1.0, 1.0)

  return ES(init, ask, tell, gradient, act)
