"""Surreal-PPO's recipe: the smoke run learns-shaped metrics, resumes
bitwise, and its segments never mix episodes."""

import json
import os

import jax
import numpy as np
from absl.testing import absltest
from PIL import Image

from configs import surreal_ppo_lift
from configs import surreal_ppo_stacking
from jaxrl_vision import recipes
from jaxrl_vision.recipes import surreal_ppo
from tests.integration import helpers


def _config(**overrides):
  return helpers.with_overrides(
    surreal_ppo_lift.get_config("smoke"), **overrides
  )


class SurrealPPORecipeTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.config = _config(**{"eval.references": True})
    cls.recipe = recipes.get_recipe(cls.config)
    cls.reference = helpers.fresh_workdir("ppo_reference")
    cls.summary = helpers.run(cls.config, cls.reference, cls.recipe)
    cls.step, cls.leaves = helpers.final_state(cls.reference, cls.config)

  def test_run_reports_the_metrics(self):
    final = self.summary["final"]
    for name in (
      "eval/success",
      "episode/success",
      "learner/kl",
      "learner/beta",
    ):
      self.assertIn(name, final)
    self.assertTrue(np.isfinite(final["learner/value_loss"]))
    self.assertBetween(final["learner/explained_variance"], -100.0, 1.0)
    self.assertEqual(self.step, self.config.train.num_iterations)

  def test_references_in_the_final_evaluation_worlds(self):
    refs = self.summary["references"]
    self.assertEqual(
      sorted(refs),
      sorted(
        f"{p}/{m}"
        for p in surreal_ppo.REFERENCES
        for m in ("return", "success")
      ),
    )
    # 20-step smoke episodes: the expert lifts in most worlds (it needs
    # about 15 steps), random actions never.
    self.assertGreaterEqual(refs["expert/success"], 0.5)
    self.assertEqual(refs["random/success"], 0.0)
    self.assertGreater(refs["expert/return"], refs["random/return"])
    written = json.load(open(os.path.join(self.reference, "references.json")))
    self.assertEqual(written, refs)

  def test_rollout_video(self):
    self.assertEqual(self.summary["rollouts"], "rollouts.gif")
    with Image.open(os.path.join(self.reference, "rollouts.gif")) as gif:
      # The first observation and one frame per step of each episode.
      frames = self.config.env.params.episode_length + 1
      self.assertEqual(gif.n_frames, frames)
      self.assertGreater(gif.width, 2 * self.config.video.image_size)

  def test_resume_is_bitwise(self):
    helpers.assert_resumes_bitwise(
      self.config, self.recipe, "ppo_crashed", 4, self.step, self.leaves
    )

  def test_segments_do_not_cross_episodes(self):
    # The steps init keeps for the first segment, with 3-step episodes:
    # an episode ends inside; the next starts there with a fresh LSTM state
    # (starts) and a reset observation, and keeps the old one's final_obs.
    config = _config(**{"env.num_worlds": 8, "env.params.episode_length": 3})
    trainer = surreal_ppo.make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    window = state.buffer.window
    ends = np.asarray(window.ends)
    starts = np.asarray(window.starts)
    # A start follows every end, and only an end (or the first step).
    np.testing.assert_array_equal(starts[:, 1:], ends[:, :-1])
    self.assertTrue(np.all(starts[:, 0]))
    # The step after an end sees a fresh episode: gripper back at 10 cm.
    z = np.asarray(window.obs["proprio"][..., 2])
    after = z[:, 1:][ends[:, :-1]]
    np.testing.assert_allclose(after, 0.1, atol=0.02)
    # final_obs at an end is the finished episode's, not the reset one.
    final_z = np.asarray(window.final_obs["proprio"][..., 2])
    self.assertFalse(np.allclose(final_z[ends], z[:, 1:][ends[:, :-1]]))

  def test_stacking_trains_with_a_curriculum(self):
    # One iteration of the stacking task's smoke config with demo resets:
    # the task's observe, expert and 23 object features fit the recipe.
    config = helpers.with_overrides(
      surreal_ppo_stacking.get_config("curriculum_smoke"),
      **{"env.num_worlds": 8},
    )
    surreal_ppo.validate(config, 1)
    trainer = surreal_ppo.make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    self.assertEqual(state.buffer.window.obs["object"].shape[-1], 23)
    state, metrics = jax.jit(trainer.step)(state, trainer.data)
    self.assertTrue(np.isfinite(float(metrics["sum/learner/value_loss"])))
    self.assertEqual(int(state.iteration), 1)

  def test_bad_config(self):
    with self.assertRaisesRegex(Exception, "num_worlds"):
      surreal_ppo.validate(_config(**{"env.num_worlds": 12}), 1)
    with self.assertRaisesRegex(Exception, "stride"):
      surreal_ppo.validate(_config(**{"train.stride": 22}), 1)
    with self.assertRaisesRegex(Exception, "curriculum.ratios"):
      surreal_ppo.validate(
        _config(**{"curriculum.ratios": {"sideways": 1.0}}), 1
      )
    with self.assertRaisesRegex(Exception, "batch_size"):
      surreal_ppo.validate(_config(), 3)  # 8 segments over 3 devices
    with self.assertRaisesRegex(Exception, "robot"):
      surreal_ppo.validate(_config(**{"env.params.robot": "ur5"}), 1)
    with self.assertRaisesRegex(ValueError, "unknown variant"):
      surreal_ppo_lift.get_config("curriculm")


if __name__ == "__main__":
  absltest.main()
