"""Shared pieces of the integration tests: CLI runs and state comparison."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import ml_collections
import numpy as np

from configs import catch_dqn
from experiments import loop
from jaxrl_vision import recipes

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
SMOKE = "configs/catch_dqn.py:smoke"


# The run directories' shared parent; its `.jax_cache` is the session's
# persistent compilation cache (tests/conftest.py, and `loop.run`'s for
# every run directory here).
RUNS = os.path.join(tempfile.gettempdir(), "jaxrl_vision_tests")


def fresh_workdir(name: str) -> str:
  """An empty run directory under one shared parent.

  Sharing the parent shares the persistent compilation cache
  (`<parent>/.jax_cache`), which keeps the subprocess tests fast.
  """
  path = os.path.join(RUNS, name)
  shutil.rmtree(path, ignore_errors=True)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return path


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m experiments.run ARGS` from the repository root."""
  return subprocess.run(
    [sys.executable, "-m", "experiments.run", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, PYTHONUNBUFFERED="1"),
  )


def popen(*args: str) -> subprocess.Popen:
  return subprocess.Popen(
    [sys.executable, "-m", "experiments.run", *args],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def smoke_config(**overrides) -> ml_collections.ConfigDict:
  """The `:smoke` config, locked, with dotted-key overrides."""
  return with_overrides(catch_dqn.get_config("smoke"), **overrides)


def with_overrides(config, **overrides) -> ml_collections.ConfigDict:
  """`config` with dotted-key overrides ("train.num_iterations"), locked."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  config.lock()
  return config


def run(config, workdir: str, rec: recipes.Recipe, *, hooks=()):
  """`loop.run`, lowering its programs as a fresh process would.

  A program traced a second time in one process lowers to a slightly
  different module (JAX's in-memory caches deduplicate its private
  functions differently), so its persistent-cache key differs and it
  compiles again: ~50 s for Surreal-PPO's `init`. Clearing those caches
  first lets every in-process run hit the session's persistent cache
  (`tests/conftest.py`) and the CLI runs' entries.
  """
  jax.clear_caches()
  return loop.run(config, workdir, rec, hooks=hooks)


def recipe(config) -> recipes.Recipe:
  return recipes.get_recipe(config)


def final_state(workdir: str, config) -> tuple[int, list[np.ndarray]]:
  """(step, leaves as numpy) of the newest checkpoint in `workdir`."""
  step, state = loop.restore_final_state(workdir, recipe(config), config)
  return step, numpy_leaves(state)


def numpy_leaves(tree) -> list[np.ndarray]:
  """`tree`'s leaves as numpy arrays, typed PRNG keys as their key data."""
  leaves = []
  for leaf in jax.tree.leaves(tree):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    leaves.append(np.asarray(leaf))
  return leaves


def assert_bitwise_equal(a: list[np.ndarray], b: list[np.ndarray]) -> None:
  assert len(a) == len(b)
  for i, (x, y) in enumerate(zip(a, b, strict=True)):
    assert x.dtype == y.dtype and x.shape == y.shape, i
    # View as bytes so that NaN payloads and -0.0 count as differences too.
    assert x.tobytes() == y.tobytes(), f"leaf {i} differs"


class Crash(Exception):
  """Raised by `assert_resumes_bitwise`'s hook to kill a run mid-way."""


def assert_resumes_bitwise(
  config, rec: recipes.Recipe, name: str, crash_at: int, step: int, leaves
) -> None:
  """A run of `config` killed after iteration `crash_at`, then resumed in
  the same workdir, ends at `step` with exactly `leaves` (an uninterrupted
  run's `final_state`)."""
  workdir = fresh_workdir(name)

  def crash(it, state):
    del state
    if it == crash_at:
      raise Crash()

  try:
    run(config, workdir, rec, hooks=[crash])
  except Crash:
    pass
  else:
    raise AssertionError(f"the run never reached iteration {crash_at}")
  run(config, workdir, rec)
  resumed_step, resumed = final_state(workdir, config)
  assert resumed_step == step, (resumed_step, step)
  assert_bitwise_equal(resumed, leaves)


def fingerprint(workdir: str, devices: int) -> dict:
  """`fingerprint_worker`'s report on a :smoke run made with `devices` devices.

  Runs in a subprocess because the simulated device count is fixed when jax
  starts.
  """
  env = dict(
    os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"
  )
  result = subprocess.run(
    [sys.executable, "-m", "tests.integration.fingerprint_worker", workdir],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])
