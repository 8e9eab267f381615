"""Host programs: the runner, dataset collection, pipelines and benchmarks."""

# First, so that no entry point starts with mujoco.mjx's Warp lines.
from experiments import quiet as _quiet  # noqa: F401
