"""Runs survive interruption: resumed runs end bitwise where unbroken ones do."""

import json
import os
import signal
import time

from absl.testing import absltest

from tests.integration import helpers

NUM_ITERATIONS = 40  # smoke: log every 10, checkpoint every 10


class Crash(Exception):
  pass


def crash_at(iteration):
  def hook(it, state):
    del state
    if it == iteration:
      raise Crash(f"simulated crash at {it}")

  return hook


def metric_lines(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def deterministic(record):
  return {
    k: v for k, v in record.items() if k not in ("time", "iterations_per_s")
  }


class ResumeTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.config = helpers.smoke_config(**{"checkpoint.every": 20})
    cls.reference = helpers.fresh_workdir("resume_reference")
    helpers.run(cls.config, cls.reference, helpers.recipe(cls.config))
    cls.reference_step, cls.reference_leaves = helpers.final_state(
      cls.reference, cls.config
    )

  def workdir(self, name):
    return helpers.fresh_workdir("resume_" + name)

  def test_resumed_run_is_bitwise_identical(self):
    workdir = self.workdir("crashed")
    recipe = helpers.recipe(self.config)
    # Crash at 30: the last checkpoint is 20, so 21..30 are redone on resume.
    with self.assertRaises(Crash):
      helpers.run(self.config, workdir, recipe, hooks=[crash_at(30)])
    self.assertEqual([r["step"] for r in metric_lines(workdir)], [10, 20, 30])
    summary = helpers.run(self.config, workdir, recipe)
    self.assertEqual(summary["resumed_from"], 20)

    step, leaves = helpers.final_state(workdir, self.config)
    self.assertEqual(step, self.reference_step)
    helpers.assert_bitwise_equal(leaves, self.reference_leaves)
    # The same metrics.jsonl continues: no duplicated or missing steps, and
    # the redone steps log what the unbroken run logged.
    ours, theirs = metric_lines(workdir), metric_lines(self.reference)
    self.assertEqual([r["step"] for r in ours], [10, 20, 30, 40])
    self.assertEqual(
      [deterministic(r) for r in ours], [deterministic(r) for r in theirs]
    )

  def test_comparison_detects_a_different_run(self):
    # Guards the test above: a different seed must not compare equal.
    config = helpers.smoke_config(**{"checkpoint.every": 20, "seed": 1})
    workdir = self.workdir("other_seed")
    helpers.run(config, workdir, helpers.recipe(config))
    _, leaves = helpers.final_state(workdir, config)
    with self.assertRaises(AssertionError):
      helpers.assert_bitwise_equal(leaves, self.reference_leaves)

  def test_sigkill_loses_at_most_one_interval_and_resumes_bitwise(self):
    workdir = self.workdir("killed")
    args = (
      f"--config={helpers.SMOKE}",
      f"--workdir={workdir}",
      "--config.checkpoint.every=20",
    )
    proc = helpers.popen(*args)
    ckpts = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
      if os.path.isdir(os.path.join(ckpts, "20")):
        break
      time.sleep(0.01)
    if proc.poll() is not None:
      self.skipTest(
        "the run finished before it could be killed"
      )  # pragma: no cover
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    self.assertEqual(proc.returncode, -signal.SIGKILL)

    result = helpers.cli(*args)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn("resuming", result.stderr)
    step, leaves = helpers.final_state(workdir, self.config)
    self.assertEqual(step, NUM_ITERATIONS)
    helpers.assert_bitwise_equal(leaves, self.reference_leaves)
    steps = [r["step"] for r in metric_lines(workdir)]
    self.assertEqual(steps, [10, 20, 30, 40])

  def test_sigterm_checkpoints_then_resumes(self):
    workdir = self.workdir("terminated")
    args = (
      f"--config={helpers.SMOKE}",
      f"--workdir={workdir}",
      "--config.train.num_iterations=4000",
      "--config.checkpoint.every=1000",
    )
    proc = helpers.popen(*args)
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
      if os.path.exists(metrics) and os.path.getsize(metrics) > 0:
        break
      time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    self.assertEqual(proc.returncode, 128 + signal.SIGTERM, stderr[-3000:])
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    self.assertEqual(summary["status"], "interrupted")
    stopped_at = summary["iterations"]
    self.assertLess(stopped_at, 4000)
    # The checkpoint is at the stop, not at the last multiple of 1000.
    self.assertTrue(
      os.path.isdir(os.path.join(workdir, "checkpoints", str(stopped_at)))
    )
    result = helpers.cli(
      *args[:2],
      f"--config.train.num_iterations={stopped_at + 10}",
      "--config.checkpoint.every=1000",
    )
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn(f"from iteration {stopped_at}", result.stderr)


if __name__ == "__main__":
  absltest.main()
