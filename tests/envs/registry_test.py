"""Tests for the env registry."""

import chex
from absl.testing import absltest

from jaxrl_vision.envs import catch
from jaxrl_vision.envs import registry


class RegistryTest(chex.TestCase):
  def test_make_env_passes_kwargs(self):
    env = registry.make_env("catch", rows=5, cols=4, pixel_scale=2)
    self.assertEqual(env.spec.obs_shape, (10, 8, 3))
    self.assertEqual(env.spec.num_actions, 3)
    self.assertIn("catch", registry.env_names())

  def test_manipulation_tasks_are_registered(self):
    self.assertEqual(
      set(registry.env_names()) & {"catch", "grasp", "stack"},
      {"catch", "grasp", "stack"},
    )
    env = registry.make_env("grasp", image_size=32, episode_length=5)
    self.assertEqual(env.spec.obs_shape, (32, 32, 3))
    self.assertEqual(env.spec.action_shape, (7,))
    self.assertEqual(env.spec.max_episode_steps, 5)
    env = registry.make_env("stack", image_size=16)
    self.assertEqual(env.spec.obs_shape, (16, 16, 3))

  def test_unknown_name_lists_valid_names(self):
    with self.assertRaisesRegex(KeyError, "cath.*valid names:.*catch"):
      registry.make_env("cath")

  def test_misspelt_kwarg_raises(self):
    with self.assertRaises(TypeError):
      registry.make_env("catch", row=5)

  def test_register_then_make(self):
    name = "catch_for_registry_test"
    self.addCleanup(registry._ENVS.pop, name, None)
    registry.register_env(name, catch.make_catch)
    self.assertIn(name, registry.env_names())
    self.assertEqual(registry.make_env(name, rows=3).spec.obs_shape, (3, 5, 3))

  def test_duplicate_registration_raises(self):
    with self.assertRaisesRegex(ValueError, "already registered"):
      registry.register_env("catch", catch.make_catch)
    name = "catch_twice_for_registry_test"
    self.addCleanup(registry._ENVS.pop, name, None)
    registry.register_env(name, catch.make_catch)
    with self.assertRaises(ValueError):
      registry.register_env(name, catch.make_catch)


if __name__ == "__main__":
  absltest.main()
