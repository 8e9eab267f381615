"""Offline datasets on disk (host only, like checkpoint.py).

  <dir>/manifest.json        format, metadata, shards with sha256 and sizes
  <dir>/shard-00000.npz      one `offline.Episodes` slice per shard, uint8
                             images as collected, each frame stored once

Shards are written to a temporary name and renamed; the manifest is written
last. A directory without a manifest is an unfinished collection, and a shard
whose size or sha256 does not match the manifest is reported by name, never
silently used.
"""

import hashlib
import json
import os
import re
from typing import Any

import jax
import numpy as np

from jaxrl_vision.data import offline

FORMAT = "jaxrl_vision.episodes/1"
MANIFEST = "manifest.json"


class DatasetError(RuntimeError):
  """A dataset that is missing, unfinished, damaged or of another format."""


def write(
  directory: str,
  episodes: offline.Episodes,
  metadata: dict[str, Any],
  episodes_per_shard: int = 256,
) -> dict[str, Any]:
  """Writes `episodes` (numpy or jax arrays); returns the manifest."""
  episodes = jax.tree.map(np.asarray, episodes)
  num = len(episodes.length)
  if num == 0:
    raise ValueError("no episodes to write")
  os.makedirs(directory, exist_ok=True)
  if os.path.exists(os.path.join(directory, MANIFEST)):
    raise DatasetError(f"{directory} already holds a dataset")
  shards = []
  for i, start in enumerate(range(0, num, episodes_per_shard)):
    part = jax.tree.map(
      lambda x, s=start: x[s : s + episodes_per_shard], episodes
    )
    name = f"shard-{i:05d}.npz"
    path = os.path.join(directory, name)
    arrays = _flatten(part)
    with open(path + ".tmp", "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    shards.append(
      {
        "file": name,
        "episodes": len(part.length),
        "bytes": os.path.getsize(path),
        "sha256": _sha256(path),
      }
    )
  manifest = {
    "format": FORMAT,
    "metadata": metadata,
    "episodes": num,
    "transitions": int(np.sum(episodes.length)),
    "success_rate": round(
      float(np.mean(episodes.success, dtype=np.float64)), 6
    ),
    "fields": sorted(_flatten(jax.tree.map(lambda x: x[:1], episodes))),
    "shards": shards,
  }
  tmp = os.path.join(directory, MANIFEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(directory, MANIFEST))
  return manifest


def read_manifest(
  directory: str, missing_ok: bool = False
) -> dict[str, Any] | None:
  """A dataset's manifest (episodes, transitions, shards...) without its
  shards; None if there is none and `missing_ok`."""
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    if missing_ok:
      return None
    raise DatasetError(
      f"{directory}: no {MANIFEST} (missing, or a collection that did not "
      "finish)"
    )
  try:
    with open(path) as f:
      manifest = json.load(f)
  except json.JSONDecodeError as e:
    raise DatasetError(f"{path} is not valid JSON: {e}") from e
  if manifest.get("format") != FORMAT:
    raise DatasetError(
      f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}"
    )
  return manifest


def read(
  directory: str, example: offline.Episodes
) -> tuple[offline.Episodes, dict[str, Any]]:
  """Loads and verifies a dataset; `example` gives the Episodes structure.

  `example` may be any Episodes with the right pytree structure (e.g. from
  `jax.eval_shape` of a collector); only its structure is used.
  """
  manifest = read_manifest(directory)
  parts = []
  for shard in manifest["shards"]:
    file = os.path.join(directory, shard["file"])
    if not os.path.exists(file):
      raise DatasetError(f"{file} is missing")
    size = os.path.getsize(file)
    if size != shard["bytes"]:
      raise DatasetError(
        f"{file} has {size} bytes, the manifest says {shard['bytes']} "
        "(truncated or overwritten)"
      )
    if _sha256(file) != shard["sha256"]:
      raise DatasetError(f"{file} does not match its sha256 in the manifest")
    with np.load(file) as data:
      arrays = {k: data[k] for k in data.files}
    parts.append(_unflatten(arrays, example))
  episodes = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
  if len(episodes.length) != manifest["episodes"]:
    raise DatasetError(f"{directory}: episode count differs from the manifest")
  return episodes, manifest


def _field(path) -> str:
  """`obs.image` for the leaf at Episodes.obs["image"]: a safe archive name."""
  return re.sub(r"[^A-Za-z0-9_]+", ".", jax.tree_util.keystr(path)).strip(".")


def _flatten(episodes: offline.Episodes) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_leaves_with_path(episodes)
  return {_field(p): np.asarray(x) for p, x in leaves}


def _unflatten(arrays: dict[str, np.ndarray], example) -> offline.Episodes:
  paths = [_field(p) for p, _ in jax.tree_util.tree_leaves_with_path(example)]
  missing = sorted(set(paths) - set(arrays))
  if missing:
    raise DatasetError(f"dataset lacks fields {missing}")
  treedef = jax.tree.structure(example)
  return jax.tree.unflatten(treedef, [arrays[p] for p in paths])


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def fingerprint(manifest: dict[str, Any]) -> str:
  """A dataset's identity: sha256 over its shards' sha256s, in order.
  Equal for two copies of the same dataset wherever they lie."""
  h = hashlib.sha256()
  for shard in manifest["shards"]:
    h.update(shard["sha256"].encode())
  return h.hexdigest()
