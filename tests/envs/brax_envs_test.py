"""The Brax adapter against Brax's own reset and step (HalfCheetah):
observations, rewards and metrics bit for bit, action repeat, truncation,
and Brax's done as termination."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import brax_envs
from jaxrl_vision.envs import registry


class BraxAdapterTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    from brax import envs  # noqa: PLC0415

    cls.brax = envs.get_environment("halfcheetah", backend="mjx")
    cls.env = registry.make_env(
      "halfcheetah", episode_length=3, action_repeat=2
    )
    # staticmethod: a jitted function stored on a class binds as a method.
    cls.brax_step = staticmethod(jax.jit(cls.brax.step))
    cls.step = staticmethod(jax.jit(cls.env.step))

  def test_spec(self):
    self.assertEqual(self.env.spec.obs_shape, (17,))
    self.assertEqual(self.env.spec.action_shape, (6,))
    self.assertEqual(self.env.spec.max_episode_steps, 3)

  def test_matches_brax_with_action_repeat_and_truncation(self):
    key = jax.random.key(0)
    ours = jax.jit(self.env.reset)(None, key)
    theirs = jax.jit(self.brax.reset)(key)
    np.testing.assert_array_equal(ours.obs["state"], theirs.obs)
    actions = jax.random.uniform(jax.random.key(1), (3, 6), minval=-1, maxval=1)
    for t in range(3):
      ours = self.step(None, ours, actions[t])
      first = self.brax_step(theirs, actions[t])
      theirs = self.brax_step(first, actions[t])
      np.testing.assert_array_equal(ours.obs["state"], theirs.obs)
      np.testing.assert_allclose(
        ours.reward, first.reward + theirs.reward, rtol=1e-6
      )
      for k, v in theirs.metrics.items():
        np.testing.assert_array_equal(ours.metrics[k], v, err_msg=k)
      self.assertFalse(bool(ours.terminated))
      self.assertEqual(bool(ours.truncated), t == 2)

  def test_brax_done_terminates_and_freezes(self):
    state = jax.jit(self.env.reset)(None, jax.random.key(2))
    done = state._replace(physics=state.physics.replace(done=jnp.float32(1)))
    nxt = self.step(None, done, jnp.ones(6))
    self.assertTrue(bool(nxt.terminated))
    self.assertFalse(bool(nxt.truncated))
    self.assertEqual(float(nxt.reward), 0.0)
    np.testing.assert_array_equal(nxt.obs["state"], state.obs["state"])

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "unknown Brax task 'ant'"):
      brax_envs.make_brax_env("ant")
    with self.assertRaisesRegex(ValueError, "action_repeat must be >= 1"):
      brax_envs.make_brax_env("hopper", action_repeat=0)


if __name__ == "__main__":
  absltest.main()
