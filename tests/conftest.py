"""One persistent compilation cache for the whole test session.

JAX decides at a process's first compilation whether it uses a persistent
cache, so the directory is set here, before any test module compiles. It is
the one `loop.run` picks for the run directories of `helpers.fresh_workdir`,
so in-process runs and the CLI subprocesses hit the same entries.
"""

import os

from experiments import loop
from tests.integration import helpers


def pytest_configure(config):
  del config
  loop.enable_compilation_cache(os.path.join(helpers.RUNS, ".jax_cache"))
