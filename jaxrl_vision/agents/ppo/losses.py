"""Surreal-PPO's learning rule as pure functions (spec surreal.md §1.2.4).

PPO with the adaptive KL penalty (Heess et al., 2017) as the Surreal
reference implementation computes it: likelihood ratios against the
behaviour policy the actors recorded, a penalty toward a reference policy
(the last published parameters, the centre of the trust region), a hinge
beyond twice the KL target, truncated GAE over fixed-length segments, the
beta rule applied at each publish, the z-filter, and the learning-rate
staircase. Segment functions take one segment; callers vmap (rlax's
convention).
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxrl_vision.networks.policies import Gaussian

# §1.2.5 defaults.
KL_TARGET = 0.015
KL_CUTOFF = 250.0  # eta, the hinge's weight
BETA_RANGE = (1.0 / 35.0, 35.0)
BETA_SCALE = 1.5
PROB_FLOOR = 1e-5  # likelihoods are clamped below at this
BEHAVIOUR_FLOOR = 1e-2  # the ratio's denominator is at least this


def truncated_gae(
  rewards: jax.Array,
  values: jax.Array,
  next_values: jax.Array,
  terminated: jax.Array,
  ends: jax.Array,
  *,
  gamma: float,
  lam: float,
  horizon: int,
) -> tuple[jax.Array, jax.Array]:
  """Advantages and returns of one segment, each over `horizon` steps.

  For a segment of T steps (rewards r_k, values V_k of the observation
  before step k, next_values V'_k of the one after it: V_{k+1}, or the
  final observation's value where an episode ended at step k) and
  position j = 0..T-H:

    d_k = r_k + gamma (1 - term_k) V'_k - V_k
    A_j = sum_{k<H} (gamma lam)^k d_{j+k}
    R_j = sum_{k<m} gamma^k r_{j+k} + gamma^m (1 - term) V'_{j+m-1}

  where both sums stop at the first episode end (`ends`, terminated or
  truncated) inside the window and m <= H is the steps taken. Without an
  end this is the reference implementation's `_gae_and_return` (H = 5 over
  25-step segments: 21 positions); nothing of the next episode leaks back.
  Unlike the reference (which zeroes V_{k+1} at every done), a truncated
  episode bootstraps from its final observation.

  Args:
    rewards, values, next_values: [T] float32 (values held fixed).
    terminated: [T], the MDP ended at step k (no bootstrap).
    ends: [T], the episode ended at step k (terminated or truncated).
    gamma: discount.
    lam: GAE's lambda.
    horizon: H <= T.

  Returns:
    (advantages [T - H + 1], returns [T - H + 1]).
  """
  chex.assert_rank([rewards, values, next_values, terminated, ends], 1)
  num_steps = rewards.shape[0]
  chex.assert_equal_shape([rewards, values, next_values, terminated, ends])
  if not 1 <= horizon <= num_steps:
    raise ValueError(f"horizon must be in [1, {num_steps}]: {horizon}")
  boot = gamma * (1.0 - terminated.astype(jnp.float32)) * next_values
  live = 1.0 - ends.astype(jnp.float32)  # [T]
  deltas = rewards + boot - values
  positions = num_steps - horizon + 1
  adv = jnp.zeros((positions,), jnp.float32)
  ret = jnp.zeros((positions,), jnp.float32)
  weight = jnp.ones((positions,), jnp.float32)  # no end before step j + k
  for k in range(horizon):  # H is small and static
    window = slice(k, k + positions)
    adv = adv + (gamma * lam) ** k * weight * deltas[window]
    last = 1.0 if k == horizon - 1 else 1.0 - live[window]
    ret = ret + gamma**k * weight * (rewards[window] + last * boot[window])
    weight = weight * live[window]
  return adv, ret


def normalize_advantages(
  advantages: jax.Array, axis_name: str | None = None
) -> jax.Array:
  """(A - mean) / max(std, 1e-4) over the whole batch (`norm_adv`); with
  `axis_name`, over the batch of every device (equal shards)."""
  mean = jnp.mean(advantages)
  if axis_name is not None:
    mean = jax.lax.pmean(mean, axis_name)
  var = jnp.mean(jnp.square(advantages - mean))
  if axis_name is not None:
    var = jax.lax.pmean(var, axis_name)
  return (advantages - mean) / jnp.maximum(jnp.sqrt(var), 1e-4)


def log_prob(dist: Gaussian, action: jax.Array) -> jax.Array:
  """[...] log-density of `action` under the diagonal Gaussian."""
  z = (action - dist.mean) / dist.std
  return jnp.sum(
    -0.5 * jnp.square(z) - jnp.log(dist.std) - 0.5 * jnp.log(2 * jnp.pi),
    axis=-1,
  )


def kl(p: Gaussian, q: Gaussian) -> jax.Array:
  """[...] KL(p || q) of two diagonal Gaussians."""
  return jnp.sum(
    jnp.log(q.std / p.std)
    + (jnp.square(p.std) + jnp.square(p.mean - q.mean))
    / (2 * jnp.square(q.std))
    - 0.5,
    axis=-1,
  )


def entropy(dist: Gaussian) -> jax.Array:
  return jnp.sum(0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(dist.std), -1)


def actor_loss(
  policy: Gaussian,
  behaviour: Gaussian,
  reference: Gaussian,
  actions: jax.Array,
  advantages: jax.Array,
  beta: jax.Array,
  *,
  kl_target: float = KL_TARGET,
  kl_cutoff: float = KL_CUTOFF,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The adaptive-KL surrogate over a batch [N, A] (§1.2.4):

    L = -mean[A p(a) / max(p_b(a), 0.01)] + beta mean KL(ref || pi)
        + 1[KL > 2 target] eta (KL - 2 target)^2,

  with likelihoods p = max(exp(log p), 1e-5) and KL the batch mean.

  Returns:
    (loss, {"kl": mean KL(ref || pi), "entropy", "ratio"}).
  """
  p = jnp.maximum(jnp.exp(log_prob(policy, actions)), PROB_FLOOR)
  p_b = jnp.maximum(jnp.exp(log_prob(behaviour, actions)), PROB_FLOOR)
  ratio = p / jnp.maximum(p_b, BEHAVIOUR_FLOOR)
  mean_kl = jnp.mean(kl(reference, policy))
  excess = mean_kl - 2.0 * kl_target
  hinge = jnp.where(excess > 0, kl_cutoff * jnp.square(excess), 0.0)
  loss = -jnp.mean(advantages * ratio) + beta * mean_kl + hinge
  return loss, {
    "kl": mean_kl,
    "entropy": jnp.mean(entropy(policy)),
    "ratio": jnp.mean(ratio),
  }


def value_loss(values: jax.Array, returns: jax.Array) -> jax.Array:
  """mean (V - R)^2."""
  return jnp.mean(jnp.square(values - returns))


def explained_variance(
  values: jax.Array, returns: jax.Array, axis_name: str | None = None
) -> jax.Array:
  """1 - var(R - V) / var(R): 1 for a perfect critic, 0 for a constant,
  below 0 for one worse than the targets' mean; with `axis_name`, over
  every device's batch (equal shards)."""

  def var(x):
    mean = jnp.mean(x)
    if axis_name is not None:
      mean = jax.lax.pmean(mean, axis_name)
    v = jnp.mean(jnp.square(x - mean))
    return v if axis_name is None else jax.lax.pmean(v, axis_name)

  return 1.0 - var(returns - values) / jnp.maximum(var(returns), 1e-8)


def adapt_beta(
  beta: jax.Array,
  mean_kl: jax.Array,
  *,
  kl_target: float = KL_TARGET,
  beta_range: tuple[float, float] = BETA_RANGE,
  scale: float = BETA_SCALE,
) -> jax.Array:
  """The rule at each publish: beta x1.5 when the cycle's mean KL exceeds
  twice the target (if beta < its maximum), /1.5 when it is below half the
  target (if beta > its minimum). The range is checked before scaling, as
  the reference does, so beta may end one step past a bound."""
  up = (mean_kl > 2.0 * kl_target) & (beta < beta_range[1])
  down = (mean_kl < 0.5 * kl_target) & (beta > beta_range[0]) & ~up
  return jnp.where(up, beta * scale, jnp.where(down, beta / scale, beta))


def stop_early(mean_kl: jax.Array, kl_target: float = KL_TARGET) -> jax.Array:
  """() bool: actor epochs stop once KL(ref || pi) > 4 x target."""
  return mean_kl > 4.0 * kl_target


def lr_staircase(
  publishes: jax.Array,
  *,
  initial: float = 1e-4,
  minimum: float = 5e-5,
  num_steps: int = 1220,
  update_freq: int = 100,
) -> jax.Array:
  """LinearWithMinLR stepped once per publish: the rate drops by
  (initial - minimum) / (num_steps // update_freq) every `update_freq`
  publishes, to `minimum`."""
  drops = num_steps // update_freq
  step = (initial - minimum) / drops
  rate = initial - step * jnp.floor(publishes / update_freq)
  return jnp.maximum(rate, minimum)


class ZFilter(NamedTuple):
  """Running statistics of low-dimensional observations [D]."""

  total: jax.Array  # [D] sum
  total_sq: jax.Array  # [D] sum of squares
  count: jax.Array  # () float32


def zfilter_init(size: int, eps: float = 1e-5) -> ZFilter:
  return ZFilter(
    jnp.zeros((size,), jnp.float32),
    jnp.zeros((size,), jnp.float32),
    jnp.float32(eps),
  )


def zfilter_update(stats: ZFilter, x: jax.Array) -> ZFilter:
  """Adds a batch x [..., D]."""
  flat = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
  return ZFilter(
    stats.total + jnp.sum(flat, 0),
    stats.total_sq + jnp.sum(jnp.square(flat), 0),
    stats.count + flat.shape[0],
  )


def zfilter_apply(stats: ZFilter, x: jax.Array, clip: float = 5.0):
  """clip((x - mu) / max(sigma, 1e-5), -clip, clip); the identity (then
  clipped) before the filter has seen two observations."""
  mean = stats.total / stats.count
  var = jnp.maximum(stats.total_sq / stats.count - jnp.square(mean), 0.0)
  std = jnp.where(stats.count > 1.5, jnp.maximum(jnp.sqrt(var), 1e-5), 1.0)
  return jnp.clip((x - mean) / std, -clip, clip)
