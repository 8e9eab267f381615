"""`experiments.run` as a 2-process JAX job on localhost (CPU collectives).

Both processes train one data-parallel learner; process 0 writes the run
files; both write their shards of each checkpoint. The result must equal the
same run on one process with 2 simulated devices.
"""

import json
import os
import socket
import subprocess
import sys

from absl.testing import absltest

from tests.integration import helpers


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class TwoProcessRunTest(absltest.TestCase):
  def test_two_processes_match_two_local_devices(self):
    workdir = helpers.fresh_workdir("two_process_run")
    port = free_port()
    procs = []
    for i in range(2):
      env = dict(
        os.environ,
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
        JAX_NUM_PROCESSES="2",
        JAX_PROCESS_ID=str(i),
        JAX_PLATFORMS="cpu",
      )
      env.pop("XLA_FLAGS", None)  # one CPU device per process
      procs.append(
        subprocess.Popen(
          [
            sys.executable,
            "-m",
            "experiments.run",
            f"--config={helpers.SMOKE}",
            f"--workdir={workdir}",
          ],
          cwd=helpers.ROOT,
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
        )
      )
    outputs = []
    try:
      for p in procs:
        outputs.append(p.communicate(timeout=300))
    finally:
      for p in procs:
        if p.poll() is None:
          p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
      self.assertEqual(p.returncode, 0, err[-3000:])

    environment = json.load(open(os.path.join(workdir, "environment.json")))
    self.assertEqual(environment["process_count"], 2)
    self.assertEqual(environment["device_count"], 2)
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    self.assertEqual(summary["status"], "completed")
    self.assertIn("status       completed", outputs[0][0])
    self.assertNotIn("status", outputs[1][0])  # only process 0 reports

    local = helpers.fresh_workdir("two_device_run")
    result = subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.run",
        f"--config={helpers.SMOKE}",
        f"--workdir={local}",
      ],
      cwd=helpers.ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2"
      ),
    )
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    # The checkpoint written by two processes restores on one process with
    # two devices, and holds exactly what the one-process run computed.
    a, b = helpers.fingerprint(workdir, 2), helpers.fingerprint(local, 2)
    self.assertEqual(a["step"], 40)
    self.assertTrue(a["agent_replicated"])
    self.assertEqual(a["sha256"], b["sha256"])


if __name__ == "__main__":
  absltest.main()
