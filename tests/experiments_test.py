"""Host-side pieces of the runner: config diffs and the metrics log."""

import json
import os
import tempfile

from absl.testing import absltest

from experiments import loop
from experiments import rundir


class ConfigDiffTest(absltest.TestCase):
  def test_lists_changed_keys_and_ignores_resumable_ones(self):
    old = {
      "agent": {"lr": 0.1, "sizes": [1, 2]},
      "train": {"num_iterations": 10},
      "checkpoint": {"every": 5},
      "seed": 0,
    }
    new = {
      "agent": {"lr": 0.2, "sizes": (1, 2)},
      "train": {"num_iterations": 99},
      "checkpoint": {"every": 50},
      "seed": 0,
      "extra": 1,
    }
    self.assertEqual(
      loop.config_diff(old, new),
      ["agent.lr: 0.1 -> 0.2", "extra: '<missing>' -> 1"],
    )

  def test_identical_configs_have_no_diff(self):
    config = {"a": {"b": (1, 2)}, "c": "x"}
    self.assertEqual(loop.config_diff(config, config), [])


class MetricsLogTest(absltest.TestCase):
  def test_resume_drops_lines_after_the_checkpoint_and_a_cut_line(self):
    path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    with open(path, "w") as f:
      for step in (10, 20, 30):
        f.write(json.dumps({"step": step, "time": 0.0}) + "\n")
      f.write('{"step": 40, "ti')  # killed mid-write
    log = rundir.MetricsLog(path, resume_step=20)
    log.write(30, {"x": 1.0})
    log.close()
    steps = [r["step"] for r in rundir.read_metrics(path)]
    self.assertEqual(steps, [10, 20, 30])
    self.assertEqual(rundir.read_metrics(path)[-1]["x"], 1.0)

  def test_fresh_run_starts_a_new_log(self):
    path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    with open(path, "w") as f:
      f.write(json.dumps({"step": 10, "time": 0.0}) + "\n")
    rundir.MetricsLog(path, resume_step=None).close()
    self.assertEqual(rundir.read_metrics(path), [])


if __name__ == "__main__":
  absltest.main()
