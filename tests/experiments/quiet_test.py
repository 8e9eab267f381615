"""experiments.quiet: mujoco.mjx's Warp lines are gone, nothing else is."""

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

from experiments import quiet

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


class QuietTest(absltest.TestCase):
  def load(self, source: str, stdout: io.StringIO) -> None:
    """Runs `source` as a module through the quiet loader."""
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "noisy.py")
      with open(path, "w") as f:
        f.write(source)
      loader = quiet._QuietLoader("noisy", path)
      spec = importlib.util.spec_from_file_location(
        "noisy", path, loader=loader
      )
      with contextlib.redirect_stdout(stdout):
        loader.exec_module(importlib.util.module_from_spec(spec))

  def test_import_mjx_prints_nothing(self):
    # A fresh interpreter: this one may have imported mujoco.mjx already.
    result = subprocess.run(
      [
        sys.executable,
        "-c",
        "import experiments.quiet; import mujoco.mjx; print('after')",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
    )
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertEqual(result.stdout, "after\n")
    self.assertNotIn("warp", result.stderr.lower())

  def test_drops_only_the_expected_lines(self):
    printed = io.StringIO()
    self.load(
      "print(\"Failed to import warp: No module named 'warp'\")\n"
      "print('other', 1)\n"
      "print(\"Failed to import mujoco_warp: No module named 'warp'\")\n"
      "print('Failed to import warp: CUDA driver is too old')\n",
      printed,
    )
    self.assertEqual(
      printed.getvalue(),
      "other 1\nFailed to import warp: CUDA driver is too old\n",
    )

  def test_errors_still_raise_and_keep_what_was_printed(self):
    printed = io.StringIO()
    with self.assertRaisesRegex(RuntimeError, "broken"):
      self.load("print('why')\nraise RuntimeError('broken')\n", printed)
    self.assertEqual(printed.getvalue(), "why\n")


if __name__ == "__main__":
  absltest.main()
