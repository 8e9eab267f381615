"""Surreal-DDPG's pieces as pure functions (spec surreal.md §1.3).

n_step_targets   R(n)_t = sum_{i<m} gamma^i r_{t+i} and the bootstrap
                 discount gam^m (0 where the episode terminated inside),
                 m = n or fewer where the episode ends first
ou_step          x <- x + theta (mu - x) dt + sigma sqrt(dt) N(0, I)
actor_sigmas     sigma_i = max_sigma * i / N for actor i in [0, N)
critic_loss      mean (Q(s, a) - y)^2 with y held fixed
"""

import jax
import jax.numpy as jnp

OU_THETA = 0.15
OU_DT = 1e-3


def n_step_targets(
  rewards: jax.Array,
  terminated: jax.Array,
  ends: jax.Array,
  gamma: float,
  n: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """n-step targets for the first T - n + 1 steps of a window of T steps.

  Args:
    rewards: [T] the reward of each step.
    terminated: [T] bool, the step ended its episode at a terminal state
      (no bootstrap).
    ends: [T] bool, the step ended its episode (terminated or truncated by
      the time limit: truncation bootstraps from the episode's final
      observation).
    gamma: the discount.
    n: the horizon, 1 <= n <= T.

  Returns:
    (returns [P], discounts [P], last [P]) for the P = T - n + 1 positions
    t: the discounted sum of the m rewards from t, where m <= n stops at
    the first step that ends the episode; gamma^m, or 0 when that step
    terminated; the index t + m - 1 of the step whose next observation
    (its `final_obs` where it ended an episode) is the bootstrap state.
  """
  length = rewards.shape[0]
  if not 1 <= n <= length:
    raise ValueError(f"need 1 <= n <= window length {length}: n={n}")
  positions = length - n + 1
  ret = jnp.zeros((positions,), jnp.float32)
  scale = jnp.ones((positions,), jnp.float32)  # gamma^i while running
  alive = jnp.ones((positions,), bool)  # no episode end before step t+i
  last = jnp.arange(positions)
  discount = jnp.zeros((positions,), jnp.float32)
  for i in range(n):
    r = rewards[i : i + positions]
    end, term = ends[i : i + positions], terminated[i : i + positions]
    ret = ret + jnp.where(alive, scale * r, 0.0)
    last = jnp.where(alive, jnp.arange(positions) + i, last)
    stop = alive & (end | (i == n - 1))
    discount = jnp.where(stop, jnp.where(term, 0.0, scale * gamma), discount)
    alive = alive & ~end
    scale = scale * gamma
  return ret, discount, last


def ou_step(
  x: jax.Array,
  key: jax.Array,
  sigma: jax.Array,
  theta: float = OU_THETA,
  dt: float = OU_DT,
  mu: float = 0.0,
) -> jax.Array:
  """One Ornstein-Uhlenbeck step of `x` ([..., A]; `sigma` broadcasts)."""
  noise = jax.random.normal(key, x.shape, x.dtype)
  return x + theta * (mu - x) * dt + sigma * jnp.sqrt(dt) * noise


def actor_sigmas(num_actors: int, max_sigma: float) -> jax.Array:
  """[N] per-actor exploration scales, linear from 0: max_sigma * i / N
  (the reference's; with one actor, max_sigma / 3)."""
  if num_actors == 1:
    return jnp.full((1,), max_sigma / 3.0, jnp.float32)
  return max_sigma * jnp.arange(num_actors, dtype=jnp.float32) / num_actors


def critic_loss(q: jax.Array, targets: jax.Array) -> jax.Array:
  """mean (Q - y)^2, y held fixed ([B] each)."""
  return jnp.mean(jnp.square(q - jax.lax.stop_gradient(targets)))
