"""The Visionary experiment end to end: `configs/visionary.py:smoke` by CLI.

One run (a few CPU minutes, most of it compilation): dataset, search,
derive, retrain and baseline for two seeds each, summary and plots. Then the
same command again, which must find every phase done and only rewrite the
summary; then a bad override, which must fail before any work.
"""

import json
import os

from absl.testing import absltest

from tests.integration import helpers

SMOKE = "configs/visionary.py:smoke"


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
      for k in range(2):
        run = json.load(open(self.path(group, f"seed{k}", "summary.json")))
        self.assertEqual(run["status"], "completed")
    # Two runs a side: df = 2 when the runs differ at all; identical scores
    # (say, all zero in so short a run) leave the test undefined.
    test = summary["t_test_final"]
    self.assertIn("p_value", test)
    self.assertIn(test["df"], (2, None))
    self.assertEqual(summary["dataset"]["episodes"], 16)
    self.assertIn("expert", summary["dataset"]["policy_success"])
    self.assertIn(
      "search_weights", json.load(open(self.path("architecture.json")))
    )
    for png in ("architecture.png", "learning_curves.png"):
      self.assertGreater(os.path.getsize(self.path(png)), 5000)
    # The retrained runs use the derived architecture, the baseline its own.
    found = json.load(open(self.path("found", "seed0", "config.json")))
    self.assertEqual(
      json.loads(found["network"]["architecture"]), summary["architecture"]
    )
    base = json.load(open(self.path("baseline", "seed1", "config.json")))
    self.assertEqual(base["network"]["architecture"], "baseline")
    self.assertEqual(base["seed"], found["seed"] + 1)
    self.assertIn("found", self.result.stdout)

  def test_rerun_skips_finished_phases(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    before = os.path.getmtime(self.path("found", "seed0", "metrics.jsonl"))
    again = helpers.cli(
      f"--config={SMOKE}", f"--workdir={self.workdir}", timeout=600
    )
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertIn("done already", again.stderr)
    self.assertEqual(
      os.path.getmtime(self.path("found", "seed0", "metrics.jsonl")), before
    )

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
