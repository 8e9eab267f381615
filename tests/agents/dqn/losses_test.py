"""Tests for DQN losses."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.agents.dqn import losses


def _f32(x):
  return jnp.asarray(x, jnp.float32)


class DoubleQLossTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # target = r + discount * q_t_target[argmax q_t_online]; td = target - q
    # huber(td) = td^2 / 2 if |td| <= delta else delta * (|td| - delta / 2)
    # argmax [5, 0] = 0: target = 1 + 0.5 * 3 = 2.5, td = 2.5 - 1 = 1.5,
    # huber = 1 * (1.5 - 0.5) = 1.0.
    ("linear", [1, 2], 0, 1.0, 0.5, [3, 4], [5, 0], 1.0, 1.0),
    # Same td = 1.5 inside delta = 2: 1.5^2 / 2 = 1.125.
    ("quadratic_wide_delta", [1, 2], 0, 1.0, 0.5, [3, 4], [5, 0], 2.0, 1.125),
    # argmax [0, 5] = 1 picks q_t_target[1] = 2 (not max 3):
    # target = 0 + 0.9 * 2 = 1.8, td = 1.8 - 2 = -0.2, huber = 0.04 / 2.
    ("double_q_selects", [1, 2], 1, 0.0, 0.9, [3, 2], [0, 5], 1.0, 0.02),
    # Terminal: discount 0, target = r = -1, td = -1 - 2 = -3,
    # huber = 1 * (3 - 0.5) = 2.5.
    ("terminal", [1, 2], 1, -1.0, 0.0, [100, 100], [0, 1], 1.0, 2.5),
    # td = 0 gives zero loss: target = 1 + 1 * 1 = 2 = q_tm1[1].
    ("zero_td", [0, 2], 1, 1.0, 1.0, [1, 7], [1, 0], 1.0, 0.0),
  )
  def test_hand_computed(
    self,
    q_tm1,
    a_tm1,
    r_t,
    discount_t,
    q_t_target,
    q_t_online,
    delta,
    expected,
  ):
    loss_fn = self.variant(losses.double_q_loss, static_argnums=6)
    loss = loss_fn(
      _f32(q_tm1),
      jnp.int32(a_tm1),
      _f32(r_t),
      _f32(discount_t),
      _f32(q_t_target),
      _f32(q_t_online),
      delta,
    )
    chex.assert_shape(loss, ())
    np.testing.assert_allclose(loss, expected, rtol=1e-6, atol=1e-7)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # d loss / d q_tm1[a] = -clip(td, -delta, delta), 0 for other actions.
    # td = 1 + 0.5 * 3 - 1 = 1.5, clipped to delta = 1: grad -1.
    ("linear", [1, 2], 0, 1.0, 0.5, [3, 4], [5, 0], [-1.0, 0.0]),
    # td = 0 + 0.9 * 2 - 2 = -0.2: grad 0.2.
    ("quadratic", [1, 2], 1, 0.0, 0.9, [3, 2], [0, 5], [0.0, 0.2]),
  )
  def test_gradient_flows_only_through_q_tm1(
    self, q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online, expected
  ):
    def loss(q_tm1, q_t_target, q_t_online):
      return losses.double_q_loss(
        q_tm1,
        jnp.int32(a_tm1),
        _f32(r_t),
        _f32(discount_t),
        q_t_target,
        q_t_online,
        1.0,
      )

    grads = self.variant(jax.grad(loss, argnums=(0, 1, 2)))(
      _f32(q_tm1), _f32(q_t_target), _f32(q_t_online)
    )
    np.testing.assert_allclose(grads[0], expected, rtol=1e-5, atol=1e-6)
    # The target is held fixed: no gradient into either next-state Q.
    np.testing.assert_array_equal(grads[1], [0.0, 0.0])
    np.testing.assert_array_equal(grads[2], [0.0, 0.0])

  def test_rank_is_checked(self):
    with self.assertRaises(AssertionError):
      losses.double_q_loss(
        jnp.zeros((2, 3)),  # a batch, which callers must vmap over
        jnp.zeros((2,), jnp.int32),
        jnp.zeros((2,)),
        jnp.zeros((2,)),
        jnp.zeros((2, 3)),
        jnp.zeros((2, 3)),
        1.0,
      )

  def test_vmapped_batch_matches_per_example(self):
    # The two hand-computed examples above, as a batch: [1.0, 0.02].
    losses_b = jax.vmap(losses.double_q_loss, in_axes=(0,) * 6 + (None,))(
      _f32([[1, 2], [1, 2]]),
      jnp.array([0, 1], jnp.int32),
      _f32([1.0, 0.0]),
      _f32([0.5, 0.9]),
      _f32([[3, 4], [3, 2]]),
      _f32([[5, 0], [0, 5]]),
      1.0,
    )
    np.testing.assert_allclose(losses_b, [1.0, 0.02], rtol=1e-6)


class EpsilonScheduleTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
    # eps = start + clip(step / decay, 0, 1) * (end - start)
    ("start", 0, 1.0, 0.05, 500, 1.0),
    ("quarter", 125, 1.0, 0.05, 500, 0.7625),  # 1 - 0.25 * 0.95
    ("half", 250, 1.0, 0.05, 500, 0.525),  # 1 - 0.5 * 0.95
    ("end", 500, 1.0, 0.05, 500, 0.05),
    ("after_end", 5000, 1.0, 0.05, 500, 0.05),  # clipped at 1
    ("increasing", 5, 0.0, 1.0, 10, 0.5),  # 0 + 0.5 * 1
    ("zero_decay_start", 0, 1.0, 0.1, 0, 1.0),  # 0 / max(0, 1) = 0
    ("zero_decay_next", 1, 1.0, 0.1, 0, 0.1),  # 1 / 1 = 1
  )
  def test_values(self, step, start, end, decay_steps, expected):
    schedule = self.variant(
      losses.epsilon_greedy_epsilon, static_argnums=(1, 2, 3)
    )
    epsilon = schedule(jnp.int32(step), start, end, decay_steps)
    chex.assert_shape(epsilon, ())
    np.testing.assert_allclose(epsilon, expected, rtol=1e-6)


if __name__ == "__main__":
  absltest.main()
