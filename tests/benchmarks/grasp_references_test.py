"""Tests for the grasp reference-policy benchmark's layouts and policies."""

import types

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import visionary as visionary_config
from experiments.benchmarks import grasp_references
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp


class TaskParamsTest(absltest.TestCase):
  def test_layouts(self):
    config = visionary_config.get_config().task.params
    params = grasp_references.task_params("visionary", 16)
    self.assertEqual(params["image_size"], 16)
    self.assertEqual(params["object_extent"], config.object_extent)
    self.assertEqual(params["num_objects"], config.num_objects)
    sparse = grasp_references.task_params("grasp_default", 16)
    self.assertNotIn("object_extent", sparse)
    self.assertNotIn("object_jitter", sparse)
    self.assertEqual(sparse["num_objects"], config.num_objects)


class ReferencePoliciesTest(absltest.TestCase):
  def test_four_argument_policies_drop_the_episode_key(self):
    # A stand-in task whose expert returns its noise scale and its key's
    # bits, so a wrong argument (or an episode key that leaks in) shows.
    def expert_action(model, state, key, noise_scale):
      del model, state
      bits = jax.random.key_data(key)[-1].astype(jnp.float32)
      return jnp.full((7,), bits + noise_scale)

    task = types.SimpleNamespace(
      expert_action=expert_action, random_action=common.random_action
    )
    policies = grasp_references.reference_policies(task)
    self.assertEqual(list(policies), ["expert", "straight_descent", "random"])
    # Fingertips 5 cm up, open: the straight descent moves down, open.
    state = types.SimpleNamespace(
      obs={"gripper_closed": jnp.float32(0.0), "height": jnp.float32(0.05)}
    )
    key = jax.random.key(0)
    expected = {
      "expert": expert_action(None, state, key, 0.0),  # noiseless
      "straight_descent": grasp.straight_descent_action(None, state, key),
      "random": common.random_action(key),
    }
    for name, policy in policies.items():
      for episode_key in (jax.random.key(1), jax.random.key(2)):
        np.testing.assert_array_equal(
          policy(None, state, key, episode_key), expected[name], err_msg=name
        )
    np.testing.assert_allclose(
      expected["straight_descent"], [0, 0, -1, 0, 1, 1, 0]
    )


if __name__ == "__main__":
  absltest.main()
