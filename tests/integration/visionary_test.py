"""The Visionary experiment end to end: `configs/visionary.py:smoke` by CLI.

One run (a few CPU minutes, most of it compilation): dataset, search (two
seeds in one program), derive, found and baseline groups (two seeds each in
one program), references, summary, plots and the rollout GIF. Then the same
command again, which must find every phase done; a changed or bad config,
which must fail before any work; and a group run interrupted and resumed
on the pipeline's dataset, which must end bitwise where the pipeline's did
with no dataset in its checkpoints.
"""

import json
import os

import jax
from absl.testing import absltest
from PIL import Image

from configs import visionary as visionary_config
from experiments import datasets
from experiments import loop
from experiments import visionary
from jaxrl_vision import train
from jaxrl_vision.data import episode_store
from jaxrl_vision.recipes import qtopt_offline
from tests.integration import helpers

SMOKE = "configs/visionary.py:smoke"


class Crash(Exception):
  pass


class VisionarySmokeTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.workdir = helpers.fresh_workdir("visionary_smoke")
    cls.result = helpers.cli(
      f"--config={SMOKE}", f"--workdir={cls.workdir}", timeout=1200
    )

  def path(self, *parts):
    return os.path.join(self.workdir, *parts)

  def test_run_writes_the_experiment(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    summary = json.load(open(self.path("summary.json")))
    self.assertEqual(summary["status"], "completed")
    for group in ("found", "baseline"):
      row = summary[group]
      self.assertLen(row["runs"], 2)
      self.assertBetween(row["mean"], 0.0, 100.0)
      self.assertIsNotNone(row["std"])
      self.assertGreaterEqual(row["best"], row["mean"] - 1e-6)
      run = json.load(open(self.path(group, "summary.json")))
      self.assertEqual(run["status"], "completed")
      # One program, two seeds: per-seed metrics in every evaluation.
      records = [
        json.loads(line) for line in open(self.path(group, "metrics.jsonl"))
      ]
      evals = [r for r in records if "eval/success/seeds" in r]
      self.assertLen(evals, 2)
      self.assertLen(evals[-1]["eval/success/seeds"], 2)
    # Two runs a side: df = 2 when the runs differ at all; identical scores
    # (say, all zero in so short a run) leave the test undefined.
    test = summary["t_test_final"]
    self.assertIn("p_value", test)
    self.assertIn(test["df"], (2, None))
    self.assertEqual(summary["dataset"]["episodes"], 16)
    composition = summary["dataset"]["composition"]
    self.assertEqual(sum(p["episodes"] for p in composition.values()), 16)
    for name in ("expert", "straight_descent", "random"):
      self.assertBetween(summary["references"][name], 0.0, 1.0)
    # The references run in one program (a switch over the policy index):
    # each name must still get its own policy's score.
    self.assertGreaterEqual(summary["references"]["expert"], 0.75)
    self.assertLessEqual(summary["references"]["random"], 0.25)
    # The search is evaluated once, at its end.
    records = [
      json.loads(line) for line in open(self.path("search", "metrics.jsonl"))
    ]
    evals = [r["step"] for r in records if "eval/success/seeds" in r]
    self.assertEqual(evals, [20])
    arch = json.load(open(self.path("architecture.json")))
    self.assertLen(arch["seeds"], 2)
    self.assertIn("merge_ops_agree", arch["agreement"])
    self.assertIn("locations_top_ge_0.5", arch["decisiveness"])
    for png in ("architecture.png", "learning_curves.png"):
      self.assertGreater(os.path.getsize(self.path(png)), 5000)
    gif = Image.open(self.path("rollouts.gif"))
    self.assertGreater(gif.n_frames, 1)
    # The found group trains the derived architecture, the baseline its own.
    found = json.load(open(self.path("found", "config.json")))
    self.assertEqual(
      json.loads(found["network"]["architecture"]), summary["architecture"]
    )
    base = json.load(open(self.path("baseline", "config.json")))
    self.assertEqual(base["network"]["architecture"], "baseline")
    self.assertEqual(base["seed"], found["seed"])  # the same eval worlds
    self.assertIn("found", self.result.stdout)
    self.assertNotIn("warp", self.result.stdout + self.result.stderr)

  def test_rerun_skips_finished_phases(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    before = os.path.getmtime(self.path("found", "metrics.jsonl"))
    again = helpers.cli(
      f"--config={SMOKE}", f"--workdir={self.workdir}", timeout=600
    )
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertIn("done already", again.stderr)
    self.assertEqual(
      os.path.getmtime(self.path("found", "metrics.jsonl")), before
    )

  def test_group_resumes_bitwise_without_the_dataset(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    config = visionary_config.get_config("smoke")
    config.run.progress_bar = False
    dataset_dir = self.path("dataset")
    episodes, manifest = datasets.load_or_collect(
      visionary.dataset_config(config), dataset_dir, lambda m: None
    )
    data = (train.offline_data(episodes), episode_store.fingerprint(manifest))
    recipe = qtopt_offline.make_recipe(data)
    group = visionary.phase_config(
      config,
      architecture="baseline",
      seed=config.seed + 1,
      num_seeds=config.num_seeds,
      num_iterations=config.train.num_iterations,
      dataset_path=dataset_dir,
    )
    # The CLI run's compiled programs come from the session's persistent
    # cache (tests/conftest.py), which the CLI run wrote into.
    workdir = helpers.fresh_workdir("visionary_resume")

    def crash(it, state):
      del state
      if it == 15:
        raise Crash

    group.checkpoint.every = 10
    group.train.log_every = 5
    with self.assertRaises(Crash):
      helpers.run(group, workdir, recipe, hooks=[crash])
    helpers.run(group, workdir, recipe)
    _, resumed = loop.restore_final_state(workdir, recipe, group)
    _, pipeline = loop.restore_final_state(self.path("baseline"), recipe, group)
    helpers.assert_bitwise_equal(
      helpers.numpy_leaves(resumed.agent), helpers.numpy_leaves(pipeline.agent)
    )
    # The checkpoint holds the agent, keys and counters, not the images.
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(resumed))
    images = data[0].episodes.obs["image"]
    self.assertLess(state_bytes, 50 * images.nbytes)
    for leaf in jax.tree.leaves(resumed):
      self.assertNotEqual(leaf.shape[-3:], images.shape[-3:])
    # Resuming on other data is refused.
    other = (data[0], "0" * 64)
    with self.assertRaisesRegex(loop.IncompatibleWorkdir, "other data"):
      helpers.run(group, workdir, qtopt_offline.make_recipe(other))

  def test_changed_config_is_refused(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    other = helpers.cli(
      f"--config={SMOKE}",
      f"--workdir={self.workdir}",
      "--config.agent.gamma=0.5",
    )
    self.assertEqual(other.returncode, 2, other.stderr[-2000:])
    self.assertIn("agent.gamma", other.stderr)

  def test_bad_search_space_fails_fast(self):
    bad = helpers.cli(
      f"--config={SMOKE}",
      f"--workdir={self.workdir}_bad",
      "--config.search.architecture=everything",
    )
    self.assertEqual(bad.returncode, 2)
    self.assertIn("search.architecture", bad.stderr)
    self.assertFalse(os.path.exists(f"{self.workdir}_bad"))


if __name__ == "__main__":
  absltest.main()
