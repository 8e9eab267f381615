"""Hides the two "Failed to import warp" lines that `import mujoco.mjx` prints.

`mujoco/mjx/warp/__init__.py` (mujoco-mjx 3.17) `print`s to stdout why NVIDIA
Warp, an optional GPU backend that this project does not use, could not be
imported:

  Failed to import warp: No module named 'warp'
  Failed to import mujoco_warp: No module named 'warp'

Every run would begin with them although nothing is wrong. Importing this
module (`experiments/__init__.py` does, so every `python -m experiments.<...>`
program has it before its first import) makes the import of that one module
drop exactly those two lines. Everything else it prints is passed on, errors
are raised as usual, and so is the message of a Warp that is installed but
fails to load. Nothing is imported here: the hook waits for `mujoco.mjx`, so
it neither slows `--help` nor runs before `MUJOCO_GL` is set.
"""

import contextlib
import importlib.abc
import importlib.machinery
import io
import sys

# The exact lines, so that any other message of mujoco.mjx still shows.
EXPECTED_LINES = (
  "Failed to import warp: No module named 'warp'",
  "Failed to import mujoco_warp: No module named 'warp'",
)
_MODULE = "mujoco.mjx.warp"


def drop_expected_lines(text: str) -> str:
  """`text` without the lines in `EXPECTED_LINES`; other lines are kept."""
  lines = text.splitlines(keepends=True)
  return "".join(x for x in lines if x.rstrip("\r\n") not in EXPECTED_LINES)


class _QuietLoader(importlib.machinery.SourceFileLoader):
  """The usual loader, with the expected lines taken out of stdout."""

  def exec_module(self, module) -> None:
    printed = io.StringIO()
    try:
      with contextlib.redirect_stdout(printed):
        super().exec_module(module)
    finally:  # on an error too: what else was printed may explain it
      sys.stdout.write(drop_expected_lines(printed.getvalue()))


class _QuietFinder(importlib.abc.MetaPathFinder):
  """Finds `mujoco.mjx.warp` as the other finders would, but quiet."""

  def find_spec(self, name, path, target=None):
    if name != _MODULE:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(name, path, target)
      if spec is not None:
        break
    else:
      return None
    # Only a plain source install is rewrapped; anything unusual is left as
    # it is (the lines then show, and tests/experiments/quiet_test.py fails).
    if type(spec.loader) is not importlib.machinery.SourceFileLoader:
      return None
    spec.loader = _QuietLoader(spec.loader.name, spec.loader.path)
    return spec


if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
  sys.meta_path.insert(0, _QuietFinder())
