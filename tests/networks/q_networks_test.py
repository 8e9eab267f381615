"""Tests for Q-networks."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import absltest

from jaxrl_vision.networks import q_networks


class DiscreteQNetworkTest(chex.TestCase):
  def test_shapes_and_single_trace(self):
    network = q_networks.make_discrete_q_network(
      num_actions=3,
      channels=(4, 8),
      kernel_sizes=(3, 3),
      strides=(1, 1),
      hidden_sizes=(16,),
    )
    obs = jnp.zeros((1, 10, 5, 3), jnp.uint8)
    params = network.init(jax.random.key(0), obs)
    # A lambda: chex refuses to wrap flax's (already wrapped) `apply`.
    apply = jax.jit(
      chex.assert_max_traces(lambda p, o: network.apply(p, o), n=1)
    )
    for i in range(3):
      batch = jax.random.randint(jax.random.key(i), (6, 10, 5, 3), 0, 256)
      q = apply(params, batch.astype(jnp.uint8))
    chex.assert_shape(q, (6, 3))
    chex.assert_tree_all_finite(q)
    # 10x5 -> 8x3 -> 6x1 (VALID, k=3, s=1); 6 * 1 * 8 = 48 inputs to the MLP.
    dense_0 = params["params"]["MLP_0"]["Dense_0"]["kernel"]
    chex.assert_shape(dense_0, (48, 16))


if __name__ == "__main__":
  absltest.main()
