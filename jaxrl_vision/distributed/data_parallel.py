"""Data parallelism with `jax.shard_map`: the only code that touches specs.

Agents and trainers are written for one device and take an `axis_name`; this
module maps them over a mesh. State that must agree across devices (params,
optimizer state) is replicated with `P()`. State that differs (worlds, replay,
RNG streams) carries an explicit leading device axis sharded with
`P(axis_name)`, which each device sees as size 1 and drops. A trainer's
read-only `data` (an offline dataset, `train.offline_data_shards`) is laid
out the same way: a leading device axis, one slice per device.
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision import train as train_lib


def data_parallel_update(
  update: Callable[[Any, Any], tuple[Any, Any]],
  mesh: Mesh,
  axis_name: str,
) -> Callable[[Any, Any], tuple[Any, Any]]:
  """update(state, batch) with state replicated and batch split on axis 0.

  `update` must average its gradients over `axis_name` (an agent built with
  `axis_name=...` does); the result is then the update on the global batch.
  """
  return jax.jit(
    jax.shard_map(
      update,
      mesh=mesh,
      in_specs=(P(), P(axis_name)),
      out_specs=(P(), P()),
      check_vma=False,
    )
  )


def _specs(per_device: Any, axis_name: str) -> Any:
  """Expands a per-field bool marker into a PartitionSpec prefix tree."""
  return type(per_device)(
    *(P(axis_name) if sharded else P() for sharded in per_device)
  )


def _add_device_axis(state, per_device):
  return type(state)(
    *(
      jax.tree.map(lambda x: x[None], field) if sharded else field
      for field, sharded in zip(state, per_device, strict=True)
    )
  )


def _drop_device_axis(state, per_device):
  return type(state)(
    *(
      jax.tree.map(lambda x: x[0], field) if sharded else field
      for field, sharded in zip(state, per_device, strict=True)
    )
  )


def place_data(data: Any, mesh: Mesh, axis_name: str) -> Any:
  """Arrays with a leading [num_devices] axis -> global arrays with that
  axis sharded over `mesh`: device d holds slice d and nothing else.

  From host (numpy) arrays each process builds only its own devices'
  slices, so no device ever holds the whole dataset. Arrays already placed
  so are returned as they are (placing twice costs nothing).
  """
  sharding = NamedSharding(mesh, P(axis_name))

  def place(x):
    if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(
      sharding, x.ndim
    ):
      return x
    x = np.asarray(x)
    if x.shape[:1] != (mesh.shape[axis_name],):
      raise ValueError(
        f"data leaf of shape {x.shape} needs a leading axis of "
        f"{mesh.shape[axis_name]} devices"
      )
    return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

  return jax.tree.map(place, data)


def data_parallel_trainer(
  trainer: train_lib.Trainer, mesh: Mesh, axis_name: str
) -> train_lib.Trainer:
  """Maps a trainer built with `axis_name` over `mesh`.

  The returned trainer's state has a leading [num_devices] axis on the
  per-device fields of `train.PER_DEVICE`; its functions are jittable and
  its `step` composes with `train.make_chunk`. Its `data` (when set) is
  placed with `place_data`, one slice per device, and each device's `step`
  sees its own slice. `evaluate(agent_state, key)` runs on every device
  and returns replicated metrics; the trainer, built with `axis_name`,
  splits its episodes over the devices (`train.make_evaluate`).
  """
  per_device = train_lib.PER_DEVICE
  specs = _specs(per_device, axis_name)
  data = trainer.data
  if data is not None:
    data = place_data(data, mesh, axis_name)

  def local_init(key):
    return _add_device_axis(trainer.init(key), per_device)

  def local_step(state, *data):
    data = jax.tree.map(lambda x: x[0], data)  # this device's slice
    state, metrics = trainer.step(_drop_device_axis(state, per_device), *data)
    return _add_device_axis(state, per_device), metrics

  init = jax.shard_map(
    local_init, mesh=mesh, in_specs=P(), out_specs=specs, check_vma=False
  )
  step = jax.shard_map(
    local_step,
    mesh=mesh,
    in_specs=(specs,) if data is None else (specs, P(axis_name)),
    out_specs=(specs, P()),
    check_vma=False,
  )
  evaluate = jax.shard_map(
    trainer.evaluate,
    mesh=mesh,
    in_specs=(P(), P()),
    out_specs=P(),
    check_vma=False,
  )
  return trainer._replace(
    init=init, step=step, evaluate=evaluate, data=data, host_evaluate=None
  )


def state_shardings(mesh: Mesh, axis_name: str, state: Any) -> Any:
  """NamedShardings matching `data_parallel_trainer`'s state layout."""
  per_device = train_lib.PER_DEVICE
  return type(state)(
    *(
      jax.tree.map(
        lambda _, s=sharded: NamedSharding(mesh, P(axis_name) if s else P()),
        field,
      )
      for field, sharded in zip(state, per_device, strict=True)
    )
  )
