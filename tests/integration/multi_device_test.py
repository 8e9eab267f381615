"""The runner on 4 simulated CPU devices: shard_map training, checkpoints and
resume, end to end through the CLI."""

import json
import os
import subprocess
import sys

from absl.testing import absltest

from tests.integration import helpers

FOUR = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")


def cli(*args):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.run",
      f"--config={helpers.SMOKE}",
      *args,
    ],
    cwd=helpers.ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=FOUR,
  )


class MultiDeviceRunTest(absltest.TestCase):
  def test_four_devices_train_resume_bitwise_and_refuse_one(self):
    straight = helpers.fresh_workdir("four_straight")
    result = cli(f"--workdir={straight}")
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    env = json.load(open(os.path.join(straight, "environment.json")))
    self.assertEqual(env["device_count"], 4)

    resumed = helpers.fresh_workdir("four_resumed")
    first = cli(f"--workdir={resumed}", "--config.train.num_iterations=20")
    self.assertEqual(first.returncode, 0, first.stderr[-3000:])
    second = cli(f"--workdir={resumed}")
    self.assertEqual(second.returncode, 0, second.stderr[-3000:])
    self.assertIn("from iteration 20", second.stderr)

    a, b = helpers.fingerprint(straight, 4), helpers.fingerprint(resumed, 4)
    self.assertEqual(a["step"], 40)
    self.assertEqual(a["devices"], 4)
    self.assertTrue(a["agent_replicated"])
    self.assertEqual(a["sha256"], b["sha256"])

    summary = json.load(open(os.path.join(straight, "summary.json")))
    self.assertEqual(summary["env_steps"], 40 * 16 * 4)  # num_envs is global

    one_device = helpers.cli(
      f"--config={helpers.SMOKE}",
      f"--workdir={straight}",
      "--config.train.num_iterations=50",
    )
    self.assertEqual(one_device.returncode, 2, one_device.stderr[-3000:])
    self.assertIn(
      "written by a 4-device run and this run has 1", one_device.stderr
    )

  def test_surreal_ppo_on_four_cpu_devices(self):
    # Each device steps 4 of the 16 worlds and learns from its quarter of
    # every minibatch; metrics are the whole job's.
    workdir = helpers.fresh_workdir("four_ppo")
    result = subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.run",
        "--config=configs/surreal_ppo_lift.py:smoke",
        f"--workdir={workdir}",
        "--config.video.num_episodes=0",
        # The config's own way to split the CPU (not XLA_FLAGS).
        "--config.distributed.cpu_devices=4",
      ],
      cwd=helpers.ROOT,
      capture_output=True,
      text=True,
      timeout=300,
    )
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    env = json.load(open(os.path.join(workdir, "environment.json")))
    self.assertEqual(env["device_count"], 4)
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    self.assertEqual(summary["env_steps"], 6 * 16 * 20)  # worlds are global
    final = summary["final"]
    self.assertAlmostEqual(final["learner/learning_rate"], 3e-4, places=9)
    self.assertGreater(final["episode/count"], 0)


if __name__ == "__main__":
  absltest.main()
