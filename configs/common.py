"""Sections every experiment shares: checkpointing, devices, the runner.

Keys that only change how a run is hosted (not what it computes) may differ
when a run is resumed; see `experiments.loop.RESUMABLE_KEYS`.
"""

import ml_collections


def add_common(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.checkpoint = ml_collections.ConfigDict(
    dict(
      every=0,  # iterations between checkpoints; 0: every log step
      max_to_keep=3,
    )
  )
  config.distributed = ml_collections.ConfigDict(
    dict(
      num_devices=0,  # 0: every device of the job
      # The host CPU as this many XLA devices (0: JAX's default, one). Each
      # runs on its own thread, so a data-parallel run uses every core of a
      # CPU-only machine; other backends' devices are unaffected.
      cpu_devices=0,
      # Multi-host: set these, or JAX_COORDINATOR_ADDRESS /
      # JAX_NUM_PROCESSES / JAX_PROCESS_ID, on every process.
      coordinator_address="",
      num_processes=0,
      process_id=-1,
      auto_detect=False,  # TPU pods, SLURM: let JAX find all of them
    )
  )
  config.run = ml_collections.ConfigDict(
    dict(
      compilation_cache=True,  # persistent XLA cache in <workdir>/../.jax_cache
      progress_bar=True,  # tqdm on a terminal; plain lines otherwise
    )
  )
  return config
