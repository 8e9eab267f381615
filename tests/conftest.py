"""One persistent compilation cache for the whole test session.

JAX decides at a process's first compilation whether it uses a persistent
cache, so the directory is set here, before any test module compiles. It is
the directory the run directories of `helpers.fresh_workdir` share, so the
in-process `loop.run` calls and the CLI subprocesses hit the same entries.
"""

import os
import tempfile

from experiments import loop


def pytest_configure(config):
  del config
  loop.enable_compilation_cache(
    os.path.join(tempfile.gettempdir(), "jaxrl_vision_tests", ".jax_cache")
  )
