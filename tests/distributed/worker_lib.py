"""Shared by the distributed tests and the worker processes they start.

Workers and tests build the same small DQN and the same deterministic global
batch from here. A worker reports one `RESULT {json}` line on stdout (`emit`,
`parse_result`); `run_workers` starts workers and collects their output.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

from jaxrl_vision import types
from jaxrl_vision.agents.dqn import agent as dqn_agent
from jaxrl_vision.networks import q_networks

NUM_ACTIONS = 3
OBS_SHAPE = (10, 5, 3)  # catch's default [rows, cols, RGB]
RESULT_PREFIX = "RESULT "  # marks the worker's one JSON line on stdout
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 600  # per batch of workers: a hang guard, not a speed check


def make_agent(axis_name: str | None) -> types.Agent:
  """A small double DQN for catch-sized images; `axis_name` as in make_dqn."""
  network = q_networks.make_discrete_q_network(
    NUM_ACTIONS,
    channels=(8,),
    kernel_sizes=(3,),
    strides=(1,),
    hidden_sizes=(32,),
  )
  return dqn_agent.make_dqn(
    network,
    NUM_ACTIONS,
    learning_rate=1e-3,
    discount=0.99,
    max_grad_norm=10.0,
    huber_delta=1.0,
    target_update_tau=0.1,
    epsilon_start=1.0,
    epsilon_end=0.05,
    epsilon_decay_steps=100,
    axis_name=axis_name,
  )


def make_batches(seed: int, num_batches: int, batch_size: int):
  """Host (numpy) transitions, every leaf [num_batches, batch_size, ...]."""
  rng = np.random.default_rng(seed)
  lead = (num_batches, batch_size)
  return types.Transition(
    obs_tm1=rng.integers(0, 256, lead + OBS_SHAPE, dtype=np.uint8),
    action_tm1=rng.integers(0, NUM_ACTIONS, lead, dtype=np.int32),
    reward_t=rng.choice([-1.0, 0.0, 1.0], lead).astype(np.float32),
    discount_t=(rng.random(lead) > 0.2).astype(np.float32),
    obs_t=rng.integers(0, 256, lead + OBS_SHAPE, dtype=np.uint8),
  )


def to_numpy(x) -> np.ndarray:
  """A host copy of one (local) array; typed PRNG keys become their data."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x)


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
  """{prefix + keystr(path): host array} over the tree's leaves."""
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {
    prefix + jax.tree_util.keystr(path): to_numpy(leaf) for path, leaf in leaves
  }


def shards_identical(x: jax.Array) -> bool:
  """Whether every addressable shard of `x` is bitwise equal to shard 0."""
  shards = [to_numpy(s.data) for s in x.addressable_shards]
  return all(s.tobytes() == shards[0].tobytes() for s in shards[1:])


def emit(result: dict) -> None:
  print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict:
  """The JSON of the one line that `emit` printed."""
  lines = [s for s in stdout.splitlines() if s.startswith(RESULT_PREFIX)]
  if len(lines) != 1:
    raise ValueError(f"expected one result line, got {len(lines)}:\n{stdout}")
  return json.loads(lines[0][len(RESULT_PREFIX) :])


def free_port() -> int:
  """A loopback TCP port that nothing was listening on a moment ago."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def worker_env(num_cpu_devices: int) -> dict[str, str]:
  """This process's environment for a CPU-only worker with N local devices."""
  env = dict(os.environ)
  # A stray multi-host description would make `mesh.initialize` join a job.
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES"):
    env.pop(name, None)
  env.pop("JAX_PROCESS_ID", None)
  env["JAX_PLATFORMS"] = "cpu"
  flags = [
    f
    for f in env.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
  ]
  flags.append(f"--xla_force_host_platform_device_count={num_cpu_devices}")
  env["XLA_FLAGS"] = " ".join(flags)
  paths = [str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
  env["PYTHONPATH"] = os.pathsep.join(paths)
  return env


class WorkerOutput(NamedTuple):
  returncode: int | None  # None: killed (timeout, or a peer failed)
  stdout: str
  stderr: str

  def describe(self, name: str) -> str:
    if self.returncode is None:
      status = "was killed (timed out, or a peer failed first)"
    else:
      status = f"exited with {self.returncode}"
    return (
      f"worker {name} {status}\n"
      f"--- stdout ---\n{self.stdout[-4000:]}\n"
      f"--- stderr ---\n{self.stderr[-8000:]}"
    )


def run_workers(
  commands: dict[str, list[str]],
  env: dict[str, str],
  log_dir: str,
  *,
  fail_fast: bool,
  timeout_s: float = TIMEOUT_S,
  envs: dict[str, dict[str, str]] | None = None,
) -> dict[str, WorkerOutput]:
  """Runs `python -m <args>` for every name at once, from the repo root.

  Kills whatever still runs at the deadline, or, with `fail_fast`, as soon as
  one worker has failed: peers in one job would otherwise wait for it until
  their own timeouts.

  Args:
    commands: {name: module and its arguments}.
    env: the workers' environment (see `worker_env`).
    log_dir: where <name>.stdout and <name>.stderr are written.
    fail_fast: stop all workers once one exits non-zero.
    timeout_s: deadline for all of them together.
    envs: {name: environment} for workers that need another than `env`.

  Returns:
    {name: WorkerOutput}.
  """
  procs, logs = {}, {}
  try:
    for name, args in commands.items():
      logs[name] = (
        os.path.join(log_dir, f"{name}.stdout"),
        os.path.join(log_dir, f"{name}.stderr"),
      )
      # Files, not pipes: a chatty worker cannot block on a full pipe.
      with open(logs[name][0], "w") as out, open(logs[name][1], "w") as err:
        procs[name] = subprocess.Popen(
          [sys.executable, "-m", *args],
          cwd=REPO_ROOT,
          env=(envs or {}).get(name, env),
          stdout=out,
          stderr=err,
          stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      codes = [p.poll() for p in procs.values()]
      if all(c is not None for c in codes):
        break
      if fail_fast and any(c not in (None, 0) for c in codes):
        break
      time.sleep(0.05)
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
      proc.wait()
  outputs = {}
  for name, proc in procs.items():
    with open(logs[name][0]) as out, open(logs[name][1]) as err:
      killed = proc.returncode < 0
      outputs[name] = WorkerOutput(
        None if killed else proc.returncode, out.read(), err.read()
      )
  return outputs
