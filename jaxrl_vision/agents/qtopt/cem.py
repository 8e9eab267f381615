"""Cross-entropy method (CEM) maximisation over a mixed action space.

QT-Opt picks actions by maximising Q(s, a) over a with CEM (spec B1.3): a
per-dimension Gaussian over the continuous sub-actions whose mean and std are
refit to the elite samples each iteration, with the best sample seen returned.
The discrete gripper command follows the TF-Agents sampler: every discrete
value gets a fixed share of the samples (sample k has value k % num_discrete),
so no command is ever starved of candidates.

The agent's action (float32 [7], spec B1.1) is searched as 4 continuous dims in
[-1, 1] (T[3] and the yaw as a fraction of `MAX_YAW`) plus one discrete value
(0 = open, 1 = close); `decode_action` turns these into the env's encoding.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrl_vision.envs.manipulation.common import ACTION_SIZE
from jaxrl_vision.envs.manipulation.common import MAX_YAW

NUM_CONTINUOUS = 4  # T[3], yaw / MAX_YAW
NUM_DISCRETE = 2  # 0 = open, 1 = close

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


def cem_maximize(
  score_fn: ScoreFn,
  key: jax.Array,
  *,
  num_continuous: int,
  num_discrete: int,
  iterations: int = 2,
  num_samples: int = 64,
  num_elites: int = 6,
  init_mean: jax.Array | None = None,
  init_std: float | jax.Array = 0.5,
  low: float = -1.0,
  high: float = 1.0,
  min_std: float = 1e-3,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Maximises `score_fn` by Gaussian CEM; returns the best sample seen.

  Each iteration draws `num_samples` continuous points from N(mean, std),
  clipped to [low, high], pairs sample k with discrete value
  k % num_discrete, scores them, and refits mean and std (population std,
  floored at `min_std`) to the continuous parts of the `num_elites` best.
  Pure and jittable; vmap it over keys or over closures of `score_fn`.

  Args:
    score_fn: score_fn(continuous [N, D] float32, discrete [N] int32) ->
      scores [N] float32, N = num_samples.
    key: PRNG key.
    num_continuous: D, the number of continuous dims.
    num_discrete: the number of discrete values (>= 1, <= num_samples).
    iterations: CEM iterations (>= 1).
    num_samples: N, samples per iteration.
    num_elites: samples refit to (<= num_samples).
    init_mean: [D] initial mean; zeros when None.
    init_std: () or [D] initial std.
    low: lower bound of every continuous dim.
    high: upper bound of every continuous dim.
    min_std: floor on the refit std, so the search never collapses to a point.

  Returns:
    (continuous [D] float32, discrete () int32, score () float32) of the
    highest-scoring sample over all iterations.
  """
  if not 1 <= num_discrete <= num_samples:
    raise ValueError(
      f"need 1 <= num_discrete <= num_samples, got "
      f"{num_discrete} and {num_samples}"
    )
  if not 1 <= num_elites <= num_samples:
    raise ValueError(
      f"need 1 <= num_elites <= num_samples, got {num_elites} and {num_samples}"
    )
  if iterations < 1:
    raise ValueError(f"need iterations >= 1, got {iterations}")
  shape = (num_continuous,)
  mean = (
    jnp.zeros(shape, jnp.float32)
    if init_mean is None
    else jnp.broadcast_to(jnp.asarray(init_mean, jnp.float32), shape)
  )
  std = jnp.broadcast_to(jnp.asarray(init_std, jnp.float32), shape)
  discrete = jnp.arange(num_samples, dtype=jnp.int32) % num_discrete  # [N]

  def iteration(carry, noise):
    mean, std, best_continuous, best_discrete, best_score = carry
    samples = jnp.clip(mean + std * noise, low, high)  # [N, D]
    scores = score_fn(samples, discrete).astype(jnp.float32)  # [N]
    elite_scores, elite_idx = jax.lax.top_k(scores, num_elites)
    elites = samples[elite_idx]  # [E, D]
    mean = jnp.mean(elites, axis=0)
    std = jnp.maximum(jnp.std(elites, axis=0), min_std)
    better = elite_scores[0] > best_score
    best_continuous = jnp.where(better, elites[0], best_continuous)
    best_discrete = jnp.where(better, discrete[elite_idx[0]], best_discrete)
    best_score = jnp.where(better, elite_scores[0], best_score)
    return (mean, std, best_continuous, best_discrete, best_score), None

  init = (
    mean,
    std,
    jnp.clip(mean, low, high),
    jnp.zeros((), jnp.int32),
    jnp.full((), -jnp.inf, jnp.float32),
  )
  # All iterations' noise in one draw: [I, N, D].
  noise = jax.random.normal(key, (iterations, num_samples, num_continuous))
  (_, _, continuous, discrete_best, score), _ = jax.lax.scan(
    iteration, init, noise
  )
  return continuous, discrete_best, score


def decode_action(continuous: jax.Array, discrete: jax.Array) -> jax.Array:
  """Maps a CEM point to the env's action encoding (spec B1.1).

  Args:
    continuous: [..., 4] float: T[3] in [-1, 1] and the yaw step as a fraction
      of `MAX_YAW`.
    discrete: [...] int: 0 = open, 1 = close.

  Returns:
    [..., 7] float32: (T[3], sin(yaw), cos(yaw), open, close), with
    (open, close) one-hot.
  """
  continuous = jnp.asarray(continuous, jnp.float32)
  yaw = continuous[..., 3] * MAX_YAW
  close = (jnp.asarray(discrete) == 1).astype(jnp.float32)
  action = jnp.concatenate(
    [
      continuous[..., :3],
      jnp.stack([jnp.sin(yaw), jnp.cos(yaw), 1.0 - close, close], axis=-1),
    ],
    axis=-1,
  )
  return action


def encode_action(action: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Inverts `decode_action` as the env reads an action.

  T is clipped to [-1, 1] and the yaw to +-`MAX_YAW`, as the env does, so the
  result is the CEM point of the motion the env would execute.

  Args:
    action: [..., 7] float (T[3], sin, cos, open, close).

  Returns:
    (continuous [..., 4] float32, discrete [...] int32: 1 iff close > open).
  """
  action = jnp.asarray(action, jnp.float32)
  if action.shape[-1] != ACTION_SIZE:
    raise ValueError(
      f"expected [..., {ACTION_SIZE}] actions, got {action.shape}"
    )
  yaw = jnp.clip(jnp.arctan2(action[..., 3], action[..., 4]), -MAX_YAW, MAX_YAW)
  continuous = jnp.concatenate(
    [jnp.clip(action[..., :3], -1.0, 1.0), (yaw / MAX_YAW)[..., None]], axis=-1
  )
  discrete = (action[..., 6] > action[..., 5]).astype(jnp.int32)
  return continuous, discrete
