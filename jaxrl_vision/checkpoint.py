"""Orbax checkpoints of the whole training state (host only).

A checkpoint is a step folder written by `orbax.checkpoint.CheckpointManager`
holding the state pytree and a JSON record of the config that made it. Orbax
writes to a temporary folder and renames it on commit, so a process killed at
any moment leaves either a complete checkpoint or none. After the commit we add
`sha256.json`, the digests of every file, so that a checkpoint damaged later
(truncated, overwritten) is detected on restore rather than silently used.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

_DIGESTS = "sha256.json"


class CheckpointError(RuntimeError):
  """No usable checkpoint, or one that does not fit this run."""


@dataclasses.dataclass(frozen=True)
class Restored:
  step: int
  state: Any
  meta: dict[str, Any]
  skipped: tuple[str, ...]  # why newer checkpoints were not used


def make_manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    create=True,
    # Synchronous: when `save` returns, the checkpoint is on disk and sealed.
    enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(
    os.path.abspath(directory), options=options, item_names=("state", "meta")
  )


def save(
  manager: ocp.CheckpointManager, step: int, state: Any, meta: dict[str, Any]
) -> None:
  """Saves `state` and JSON `meta` at `step`, then seals it with digests."""
  meta = dict(meta, state_signature=signature(state))
  manager.save(
    step,
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(_fill_empty(state)),
      meta=ocp.args.JsonSave(meta),
    ),
    force=True,
  )
  manager.wait_until_finished()
  if jax.process_index() == 0:
    folder = _step_dir(manager, step)
    digests = _digest_folder(folder)
    tmp = os.path.join(folder, _DIGESTS + ".tmp")
    with open(tmp, "w") as f:
      json.dump(digests, f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, _DIGESTS))


def restore_latest(
  manager: ocp.CheckpointManager,
  abstract_state: Any,
  check_meta=None,
) -> Restored | None:
  """Restores the newest checkpoint that is intact, or returns None.

  A damaged checkpoint is reported, moved aside to `<dir>/../corrupt/`, and the
  next older one is tried. `check_meta(meta)` may raise `CheckpointError` to
  refuse a checkpoint that does not fit this run (that is not corruption, so
  it propagates). Likewise a checkpoint whose sha256 seal holds but whose
  state does not restore into `abstract_state` (another tree structure, e.g.
  a NamedTuple that gained a field, with the same leaves) is intact: it is
  refused with `CheckpointError` and left where it is.
  """
  skipped = []
  for step in sorted(manager.all_steps(), reverse=True):
    folder = _step_dir(manager, step)
    try:
      sealed = _verify(folder)
      meta = manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
      ).meta
    except Exception as e:  # noqa: BLE001 -- any failure means unusable
      skipped.append(_quarantine(manager, step, e))
      continue
    if check_meta is not None:
      check_meta(meta)
    _check_signature(folder, meta.get("state_signature"), abstract_state)
    try:
      state = manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_fill_empty(abstract_state))
        ),
      ).state
      state = _empty_again(state, abstract_state)
    except Exception as e:  # noqa: BLE001
      if sealed:  # the bytes are as written: this run wants another state
        raise CheckpointError(
          f"checkpoint {folder} is intact (its sha256 seal holds) but does "
          "not restore into the state this run builds, probably written by "
          f"another version of the code ({_first_line(e)}). It was left in "
          "place: use another --workdir, or move it away to start over."
        ) from e
      skipped.append(_quarantine(manager, step, e))
      continue
    return Restored(step=step, state=state, meta=meta, skipped=tuple(skipped))
  if skipped:
    raise CheckpointError("no intact checkpoint left: " + "; ".join(skipped))
  return None


# Orbax refuses zero-size arrays (MJX data has some, e.g. `act` of a model
# without actuator activations): each is stored as one element and
# restored to its empty shape, which carries no information.


def _is_empty(x) -> bool:
  return 0 in x.shape


def _fill_empty(tree):
  def fill(x):
    if not _is_empty(x):
      return x
    if isinstance(x, jax.ShapeDtypeStruct):
      return jax.ShapeDtypeStruct((1,), x.dtype, sharding=x.sharding)
    return jax.numpy.zeros((1,), x.dtype)

  return jax.tree.map(fill, tree)


def _empty_again(state, abstract):
  def empty(x, a):
    if not _is_empty(a):
      return x
    return jax.device_put(jax.numpy.zeros(a.shape, a.dtype), a.sharding)

  return jax.tree.map(empty, state, abstract)


def _step_dir(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(manager.directory), str(step))


def _digest_folder(folder: str) -> dict[str, str]:
  digests = {}
  for root, _, files in os.walk(folder):
    for name in sorted(files):
      path = os.path.join(root, name)
      rel = os.path.relpath(path, folder)
      if rel.startswith(_DIGESTS):
        continue
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      digests[rel] = h.hexdigest()
  return digests


def _verify(folder: str) -> bool:
  """Raises CheckpointError if a sealed file changed; True if sealed."""
  path = os.path.join(folder, _DIGESTS)
  if not os.path.exists(path):
    # Killed between orbax's commit and our seal: orbax's own commit marker
    # still vouches that the write finished.
    logging.warning("checkpoint %s has no %s; trusting orbax", folder, _DIGESTS)
    return False
  with open(path) as f:
    expected = json.load(f)
  actual = _digest_folder(folder)
  missing = sorted(set(expected) - set(actual))
  if missing:
    raise CheckpointError(f"missing file {missing[0]}")
  changed = sorted(k for k in expected if expected[k] != actual[k])
  if changed:
    raise CheckpointError(f"file {changed[0]} does not match its sha256")
  return True


def _quarantine(manager, step: int, error: Exception) -> str:
  folder = _step_dir(manager, step)
  why = f"checkpoint {step} is damaged ({_first_line(error)})"
  if jax.process_index() == 0:
    corrupt = os.path.join(os.path.dirname(folder.rstrip("/")), "..", "corrupt")
    os.makedirs(corrupt, exist_ok=True)
    dest = os.path.join(corrupt, f"{step}-{int(time.time())}")
    shutil.move(folder, dest)
    why += f"; moved to {os.path.normpath(dest)}"
  manager.reload()
  logging.error("%s", why)
  return why


def signature(state: Any) -> list[str]:
  """One `path: dtype[shape]` line per leaf; equal signatures restore."""
  leaves = jax.tree_util.tree_leaves_with_path(state)
  return [
    f"{jax.tree_util.keystr(path)}: {leaf.dtype}{list(leaf.shape)}"
    for path, leaf in leaves
  ]


def _check_signature(folder: str, saved: list[str] | None, abstract) -> None:
  if saved is None:
    raise CheckpointError(f"checkpoint {folder} records no state signature")
  wanted = signature(abstract)
  if saved == wanted:
    return
  only_saved = [s for s in saved if s not in wanted]
  only_wanted = [s for s in wanted if s not in saved]
  raise CheckpointError(
    f"checkpoint {folder} holds a different state than this run builds "
    "(another network, buffer size or device count?): "
    f"checkpoint has {only_saved[:3]}, this run has {only_wanted[:3]}"
  )


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
