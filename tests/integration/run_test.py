"""The CLI end to end: a `:smoke` run writes a complete run directory."""

import glob
import json
import os

from absl.testing import absltest

from tests.integration import helpers


class SmokeRunTest(absltest.TestCase):
  def test_smoke_run_writes_a_complete_run_directory(self):
    workdir = helpers.fresh_workdir("smoke_run")
    result = helpers.cli(f"--config={helpers.SMOKE}", f"--workdir={workdir}")
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    config = json.load(open(os.path.join(workdir, "config.json")))
    self.assertEqual(config["experiment"], "dqn_pixels")
    self.assertEqual(config["train"]["num_iterations"], 40)

    env = json.load(open(os.path.join(workdir, "environment.json")))
    self.assertEqual(env["packages"]["jax"].split(".")[0], "0")
    self.assertGreaterEqual(env["device_count"], 1)
    self.assertIn("device_kind", env)
    self.assertIn("git", env)

    records = [
      json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))
    ]
    self.assertEqual([r["step"] for r in records], [10, 20, 30, 40])
    times = [r["time"] for r in records]
    self.assertEqual(times, sorted(times))
    self.assertIn("learner/loss", records[-1])
    self.assertIn("eval/return", records[1])  # eval.every = 20
    self.assertNotIn("eval/return", records[0])

    self.assertNotEmpty(
      glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    )
    self.assertTrue(os.path.isdir(os.path.join(workdir, "checkpoints", "40")))

    summary = json.load(open(os.path.join(workdir, "summary.json")))
    self.assertEqual(summary["status"], "completed")
    self.assertEqual(summary["iterations"], 40)
    self.assertEqual(summary["env_steps"], 40 * 16 * 4)
    self.assertGreater(summary["compile_time_s"], 0)
    self.assertGreater(summary["run_time_s"], 0)
    self.assertEqual(summary["final"]["step"], 40)
    for plot in summary["plots"]:
      with open(os.path.join(workdir, plot), "rb") as f:
        self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    self.assertIn("plots/eval_return.png", summary["plots"])
    self.assertIn("status       completed", result.stdout)


if __name__ == "__main__":
  absltest.main()
