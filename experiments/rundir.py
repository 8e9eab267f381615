"""Everything a run writes to its directory (host only).

<workdir>/config.json        the resolved config
<workdir>/environment.json   package versions, devices, git commit
<workdir>/metrics.jsonl      one JSON object per log step ("step", "time", ...)
<workdir>/tensorboard/       TensorBoard event files
<workdir>/checkpoints/       orbax checkpoints (see jaxrl_vision/checkpoint.py)
<workdir>/plots/*.png        curves of the recipe's main metrics, at the end
<workdir>/summary.json       status, final and best metrics, compile/run time
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from typing import Any

import jax

PACKAGES = (
  "jax",
  "jaxlib",
  "flax",
  "optax",
  "chex",
  "rlax",
  "mujoco",
  "mujoco-mjx",
  "brax",
  "orbax-checkpoint",
  "ml-collections",
  "absl-py",
  "numpy",
  "tensorboardX",
  "matplotlib",
)


def default_workdir(config_path: str, variant: str | None) -> str:
  name = os.path.splitext(os.path.basename(config_path))[0]
  if variant:
    name += f"-{variant}"
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  return os.path.join("runs", f"{name}-{stamp}")


def write_json(path: str, obj: Any) -> None:
  """Atomic JSON write: a killed run never leaves a half-written file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=_jsonable)
    f.write("\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def environment() -> dict[str, Any]:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  devices = jax.devices()
  return {
    "python": sys.version.split()[0],
    "platform": platform.platform(),
    "hostname": socket.gethostname(),
    "argv": sys.argv,
    "packages": versions,
    "backend": jax.default_backend(),
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "local_device_count": jax.local_device_count(),
    "process_count": jax.process_count(),
    "git": _git_state(),
    "started": datetime.datetime.now().isoformat(timespec="seconds"),
  }


def _git_state() -> dict[str, Any] | None:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(
      ["git", "-C", root, "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
    dirty = subprocess.run(
      ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": bool(dirty)}


class MetricsLog:
  """Appends to metrics.jsonl, fsynced per line; resumes without duplicates."""

  def __init__(self, path: str, resume_step: int | None):
    self.path = path
    if resume_step is not None and os.path.exists(path):
      self._truncate_after(resume_step)
    elif os.path.exists(path):
      os.remove(path)
    self._file = open(path, "a")

  def _truncate_after(self, step: int) -> None:
    """Drops lines logged after the checkpoint we resume from (redone now)."""
    kept = []
    with open(self.path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          break  # a line cut short by a kill: it and anything after is redone
        if record["step"] > step:
          break
        kept.append(line if line.endswith("\n") else line + "\n")
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(kept)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    record = {"step": step, "time": time.time(), **metrics}
    self._file.write(json.dumps(record, default=_jsonable) + "\n")
    self._file.flush()
    os.fsync(self._file.fileno())

  def close(self) -> None:
    self._file.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_curves(
  metrics_path: str, names: tuple[str, ...], out_dir: str
) -> list[str]:
  """One PNG per metric (x: step), skipping metrics never logged."""
  import matplotlib  # noqa: PLC0415 -- only the end of a run needs it

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  records = read_metrics(metrics_path)
  os.makedirs(out_dir, exist_ok=True)
  written = []
  for name in names:
    points = [
      (r["step"], r[name])
      for r in records
      if name in r and r[name] is not None and math.isfinite(r[name])
    ]
    if not points:
      continue
    steps, values = zip(*points, strict=True)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(steps, values, marker="o" if len(points) < 30 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel(name)
    ax.set_title(name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, name.replace("/", "_") + ".png")
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
  return written


def _jsonable(x: Any) -> Any:
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")
