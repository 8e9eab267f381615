"""Surreal-PPO's actor-critic: the actor's last-layer init option."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.networks import policies

ACTIONS, BATCH = 10, 64


def _means(actor_out_scale):
  net = policies.make_actor_critic(
    ACTIONS,
    lstm_size=0,
    hidden_sizes=(300, 200),
    actor_out_scale=actor_out_scale,
  )
  low = jax.random.normal(jax.random.key(1), (BATCH, 40))  # z-filtered-like
  params = net.init(jax.random.key(0), None, low)
  x = net.encode(params, None, low)
  _, dist, _ = net.step(
    params, net.initial_carry(BATCH), x, jnp.ones(BATCH, bool)
  )
  return params, np.asarray(dist.mean)


class ActorOutScaleTest(absltest.TestCase):
  def test_default_means_are_far_from_zero_scaled_are_near(self):
    # The default (LeCun) last layer: per-action means of +-0.5 or so,
    # e.g. a two-handed robot's grip held open (< 0) in every state.
    _, default = _means(None)
    self.assertGreater(np.abs(default.mean(0)).max(), 0.2)
    _, scaled = _means(0.01)
    self.assertLess(np.abs(scaled).max(), 0.02)

  def test_only_the_actor_output_layer_changes(self):
    a, _ = _means(None)
    b, _ = _means(0.01)
    flat_a = dict(jax.tree_util.tree_leaves_with_path(a))
    flat_b = dict(jax.tree_util.tree_leaves_with_path(b))
    changed = [
      jax.tree_util.keystr(k)
      for k in flat_a
      if not np.array_equal(flat_a[k], flat_b[k])
    ]
    self.assertLen(changed, 1)
    self.assertIn("actor_out", changed[0])
    self.assertIn("kernel", changed[0])


if __name__ == "__main__":
  absltest.main()
