"""DQN losses over one example; callers vmap (the rlax convention)."""

import chex
import jax
import jax.numpy as jnp
import rlax


def double_q_loss(
  q_tm1: jax.Array,
  a_tm1: jax.Array,
  r_t: jax.Array,
  discount_t: jax.Array,
  q_t_target: jax.Array,
  q_t_online: jax.Array,
  huber_delta: float,
) -> jax.Array:
  """Huber loss on the double-Q TD error (van Hasselt et al., 2016).

  target = r_t + discount_t * q_t_target[argmax_a q_t_online[a]]
  loss = huber(target - q_tm1[a_tm1]), with the target held fixed.

  Args:
    q_tm1: [A] online Q-values at the transition's first observation.
    a_tm1: () int action taken.
    r_t: () reward.
    discount_t: () gamma, times 0 where the episode terminated.
    q_t_target: [A] target-network Q-values at the next observation.
    q_t_online: [A] online Q-values at the next observation (selector).
    huber_delta: where the Huber loss turns from quadratic to linear.

  Returns:
    () loss.
  """
  chex.assert_rank([q_tm1, a_tm1, r_t, discount_t], [1, 0, 0, 0])
  td = rlax.double_q_learning(
    q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online
  )
  return rlax.huber_loss(td, huber_delta)


def epsilon_greedy_epsilon(
  step: jax.Array, start: float, end: float, decay_steps: int
) -> jax.Array:
  """Linear decay from `start` to `end` over `decay_steps` learner steps."""
  frac = jnp.clip(step / max(decay_steps, 1), 0.0, 1.0)
  return start + frac * (end - start)
