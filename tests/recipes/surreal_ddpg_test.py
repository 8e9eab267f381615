"""Surreal-DDPG's recipe: n-step transitions from a window by hand, the
smoke run's metrics and replay, bitwise resume, and bad configs."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import surreal_ddpg_lift
from jaxrl_vision import recipes
from jaxrl_vision.recipes import surreal_ddpg
from tests.integration import helpers


def _config(**overrides):
  return helpers.with_overrides(
    surreal_ddpg_lift.get_config("smoke"), **overrides
  )


class PureTest(absltest.TestCase):
  def test_by_hand(self):
    # Two worlds, n = 2, stride 3: windows of 4 steps. World 0's episode
    # terminates at step 1, world 1's is truncated at step 2. Observations
    # are step ids (final_obs: 100 + id) so the bootstrap state is visible.
    steps = jnp.arange(4.0)
    rows = surreal_ddpg.Steps(
      obs={"x": jnp.stack([steps, 10 + steps])[..., None]},
      actions=jnp.stack([steps, 10 + steps])[..., None],
      rewards=jnp.array([[1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.0, 8.0]]),
      terminated=jnp.array([[0, 1, 0, 0], [0, 0, 0, 0]], bool),
      ends=jnp.array([[0, 1, 0, 0], [0, 0, 1, 0]], bool),
      final_obs={"x": jnp.stack([100 + steps, 110 + steps])[..., None]},
    )
    t = surreal_ddpg.n_step_transitions(rows, gamma=0.5, n=2, stride=3)
    np.testing.assert_allclose(t.obs_tm1["x"][:, 0], [0, 1, 2, 10, 11, 12])
    np.testing.assert_allclose(t.action_tm1[:, 0], [0, 1, 2, 10, 11, 12])
    # World 0: 1 + 0.5 * 2 (terminates: no bootstrap), 2 (terminates),
    # 4 + 0.5 * 8 -> obs after step 3. World 1: 1 + 1, 2 + 2 (truncated at
    # step 2: bootstrap from its final obs, gamma^2), 4 (truncated, gamma).
    np.testing.assert_allclose(t.reward_t, [2, 2, 8, 2, 4, 4])
    np.testing.assert_allclose(t.discount_t, [0, 0, 0.25, 0.25, 0.25, 0.5])
    np.testing.assert_allclose(
      t.obs_t["x"][:, 0], [101, 101, 103, 111, 112, 112]
    )

  def test_bad_config(self):
    with self.assertRaisesRegex(Exception, "replay.capacity"):
      surreal_ddpg.validate(_config(**{"replay.capacity": 100}), 1)
    with self.assertRaisesRegex(Exception, "batch_size"):
      surreal_ddpg.validate(_config(**{"env.num_worlds": 12}), 3)
    with self.assertRaisesRegex(Exception, "agent.tau"):
      surreal_ddpg.validate(_config(**{"agent.tau": 0.1}), 1)
    with self.assertRaisesRegex(ValueError, "unknown variant"):
      surreal_ddpg_lift.get_config("pixel")


class SurrealDDPGRecipeTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.config = _config()
    cls.recipe = recipes.get_recipe(cls.config)
    cls.reference = helpers.fresh_workdir("ddpg_reference")
    cls.summary = helpers.run(cls.config, cls.reference, cls.recipe)
    cls.step, cls.leaves = helpers.final_state(cls.reference, cls.config)

  def test_run_reports_the_metrics(self):
    final = self.summary["final"]
    for name in ("eval/success", "episode/success", "learner/q"):
      self.assertIn(name, final)
    self.assertTrue(np.isfinite(final["learner/critic_loss"]))
    self.assertEqual(self.step, self.config.train.num_iterations)

  def test_replay_and_noise(self):
    # 8 worlds x 4 steps per iteration; the replay samples from 32 (one
    # iteration); OU noise of scale sigma_i = 2 i / 8: none in world 0.
    # Episodes of 10 steps: after the 2 prefill steps and one iteration
    # no world has reset its noise yet.
    trainer = surreal_ddpg.make_train(self.config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    state, metrics = jax.jit(trainer.step)(state)
    self.assertEqual(int(state.buffer.replay.size), 8 * 4)
    self.assertEqual(float(metrics["count/learner"]), 2.0)
    noise = np.asarray(state.buffer.noise)
    np.testing.assert_array_equal(noise[0], 0.0)
    self.assertTrue(np.all(np.abs(noise[1:]).sum(-1) > 0))
    np.testing.assert_allclose(
      state.buffer.sigma, 2.0 * np.arange(8) / 8, rtol=1e-6
    )

  def test_resume_is_bitwise(self):
    helpers.assert_resumes_bitwise(
      self.config, self.recipe, "ddpg_crashed", 4, self.step, self.leaves
    )


if __name__ == "__main__":
  absltest.main()
