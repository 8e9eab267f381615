"""Data parallelism with `jax.shard_map`: the only code that touches specs.

Agents and trainers are written for one device and take an `axis_name`; this
module maps them over a mesh. State that must agree across devices (params,
optimizer state) is replicated with `P()`. State that differs (worlds, replay,
RNG streams) carries an explicit leading device axis sharded with
`P(axis_name)`, which each device sees as size 1 and drops.
"""

from collections.abc import Callable
from typing import Any

import jax
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


def data_parallel_trainer(
  trainer: train_lib.Trainer, mesh: Mesh, axis_name: str
) -> train_lib.Trainer:
  """Maps a trainer built with `axis_name` over `mesh`.

  The returned trainer's state has a leading [num_devices] axis on the
  per-device fields of `train.PER_DEVICE`; its functions are jittable and
  its `step` composes with `train.make_chunk`.
  """
  per_device = train_lib.PER_DEVICE
  specs = _specs(per_device, axis_name)

  def local_init(key):
    return _add_device_axis(trainer.init(key), per_device)

  def local_step(state):
    state, metrics = trainer.step(_drop_device_axis(state, per_device))
    return _add_device_axis(state, per_device), metrics

  init = jax.shard_map(
    local_init, mesh=mesh, in_specs=P(), out_specs=specs, check_vma=False
  )
  step = jax.shard_map(
    local_step,
    mesh=mesh,
    in_specs=(specs,),
    out_specs=(specs, P()),
    check_vma=False,
  )
  return trainer._replace(init=init, step=step)


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
