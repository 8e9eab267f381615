"""Smoke test: the RubiksShift benchmark runs at a tiny size and ends with
one JSON line carrying the headline keys."""

import json
import os
import subprocess
import sys

from absl.testing import absltest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


class BenchmarkSmokeTest(absltest.TestCase):
  def test_tiny_run_prints_summary_json(self):
    env = dict(os.environ, PYTHONPATH=_ROOT, JAX_PLATFORMS="cpu")
    result = subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.benchmarks.rubiks_shift",
        "--batch=1",
        "--channels=8",
        "--frames=2",
        "--size=8",
        "--trials=2",
        "--warmup=1",
      ],
      cwd=_ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
    )
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
      "speedup_vs_reference_fwd_bwd",
      "conv3d_over_shift_block",
      "copy_bandwidth_fraction",
      "device",
    ):
      self.assertIn(key, summary)
    self.assertTrue(summary["deterministic"])
    self.assertEqual(summary["shape"], [1, 8, 2, 8, 8])


if __name__ == "__main__":
  absltest.main()
