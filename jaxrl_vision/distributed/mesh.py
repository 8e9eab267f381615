"""Devices and processes: the one place that builds a `Mesh`.

Multi-host jobs start with `initialize`, driven by the config's `distributed`
section or by JAX's own environment variables (`JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`). On TPU pods and SLURM clusters JAX can
find all three by itself: pass `auto=True` (`distributed.auto_detect`).
"""

import os

import jax
from jax.sharding import Mesh

DATA_AXIS = "data"


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  local_device_ids: list[int] | None = None,
  auto: bool = False,
) -> bool:
  """Joins a multi-process job if one is described; returns whether it did.

  Arguments left as None fall back to the environment variables above. With
  no coordinator anywhere and one process, this does nothing (a laptop run)
  unless `auto`, which lets JAX detect a TPU pod or SLURM job itself.
  """
  if auto:
    jax.distributed.initialize()
    return True
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and "JAX_PROCESS_ID" in os.environ:
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if address is None and (num_processes or 1) == 1:
    return False
  jax.distributed.initialize(
    coordinator_address=address,
    num_processes=num_processes,
    process_id=process_id,
    local_device_ids=local_device_ids,
  )
  return True


def make_mesh(
  num_devices: int | None = None, axis_name: str = DATA_AXIS
) -> Mesh:
  """A 1-D data-parallel mesh over the first `num_devices` global devices."""
  devices = jax.devices()
  if num_devices is None:
    num_devices = len(devices)
  if not 0 < num_devices <= len(devices):
    raise ValueError(
      f"asked for {num_devices} devices; {len(devices)} are available"
    )
  return jax.make_mesh(
    (num_devices,),
    (axis_name,),
    devices=devices[:num_devices],
    axis_types=(jax.sharding.AxisType.Explicit,),
  )
