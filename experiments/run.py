r"""Runs an experiment from a config file.

  python -m experiments.run --config=configs/<name>.py[:variant] \
      [--config.section.key=value ...] [--workdir=DIR]

Re-running with an existing --workdir resumes from its newest intact
checkpoint. Exit status: 0 done, 1 the run failed (e.g. a non-finite loss),
2 bad input (config, flags, workdir), 128+N stopped by signal N (resumable).
"""

import importlib
import importlib.util
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file, optionally `path.py:variant`.",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
  "workdir",
  None,
  "Run directory; default runs/<config>-<timestamp>. An existing one resumes.",
)


def _fail(message: str, code: int = 2) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, but bad flags are one line and exit 2, not a usage dump."""
  spec = next(
    (a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None
  )
  if spec is not None and not os.path.isfile(spec.partition(":")[0]):
    _fail(f"--config={spec}: no such file (run from the repository root)")
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 -- flags.Error or a config file's error
    _fail(_unknown_override(argv) or _one_line(e))


def _unknown_override(argv: list[str]) -> str | None:
  """Names a `--config.a.b=...` override whose key the config does not have.

  ml_collections reports it as a bare KeyError/AttributeError; we load the
  config file ourselves to say which key and what exists beside it.
  """
  spec = next(
    (a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None
  )
  if spec is None:
    return None
  path, _, variant = spec.partition(":")
  try:
    module_spec = importlib.util.spec_from_file_location("_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(variant or None)
  except Exception:  # noqa: BLE001 -- the original error says it better
    return None
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    key = arg[len("--config.") :].split("=", 1)[0]
    node, walked = config, []
    for part in key.split("."):
      if not hasattr(node, "keys") or part not in node:
        where = "config" + "".join(f".{w}" for w in walked)
        valid = (
          ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "none"
        )
        return (
          f"--config.{key}: {where} has no key {part!r}; valid keys: {valid}"
        )
      node = node[part]
      walked.append(part)
  return None


def _one_line(error: Exception) -> str:
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    lines = [lines[0].split("Traceback")[0] + lines[-1]]  # keep the cause
  text = " ".join(" ".join(lines).split())
  return text if len(text) < 400 else text[:397] + "..."


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  # Imports after flag parsing: `--help` and flag errors stay instant.
  import jax  # noqa: PLC0415
  from absl import logging  # noqa: PLC0415

  from experiments import loop  # noqa: PLC0415
  from experiments import rundir  # noqa: PLC0415
  from jaxrl_vision import recipes  # noqa: PLC0415
  from jaxrl_vision import validation  # noqa: PLC0415
  from jaxrl_vision.distributed import mesh as mesh_lib  # noqa: PLC0415

  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
  except Exception as e:  # noqa: BLE001 -- a config file that failed to load
    _fail(f"--config: {_one_line(e)}")
  try:
    _check_common(config, validation)
    mesh_lib.validate_config(config)  # before jax.distributed sees the values
    mesh_lib.initialize(
      config.distributed.coordinator_address or None,
      config.distributed.num_processes or None,
      None
      if config.distributed.process_id < 0
      else config.distributed.process_id,
      auto=config.distributed.auto_detect,
      cpu_devices=config.distributed.cpu_devices,
    )
    available = jax.device_count()
    if config.distributed.num_devices > available:
      raise validation.ConfigError(
        "distributed.num_devices",
        config.distributed.num_devices,
        f"at most {available} devices are available",
      )
    num_devices = config.distributed.num_devices or available
    pipeline = PIPELINES.get(config.experiment)
    if pipeline is not None:
      pipeline = importlib.import_module(pipeline)
      pipeline.validate(config, num_devices)
    else:
      validation.one_of(
        config, "experiment", recipes.recipe_names() + list(PIPELINES)
      )
      recipe = recipes.get_recipe(config)
      recipe.validate(config, num_devices)
  except validation.ConfigError as e:
    _fail(str(e))

  workdir = _WORKDIR.value
  if not workdir:
    path = config_flags.get_config_filename(flags.FLAGS["config"])
    variant = path.split(":", 1)[1] if ":" in path else None
    workdir = rundir.default_workdir(path.split(":", 1)[0], variant)
  print(f"workdir: {os.path.abspath(workdir)}", file=sys.stderr)
  try:
    if pipeline is not None:
      pipeline.run(config, workdir)
    else:
      loop.run(config, workdir, recipe)
  except loop.RunError as e:
    _fail(str(e), e.exit_code)


# Experiments made of several runs: config.experiment -> module with
# validate(config, num_devices) and run(config, workdir).
PIPELINES = {"visionary": "experiments.visionary"}


def _check_common(config, v) -> None:
  """Sections every config has (configs/common.py), checked before any jit."""
  if not isinstance(config.seed, int) or isinstance(config.seed, bool):
    raise v.ConfigError("seed", config.seed, "must be an integer")
  v.positive_int(config, "train.num_iterations")
  log_every = v.positive_int(config, "train.log_every")
  eval_every = v.positive_int(config, "eval.every")
  if eval_every % log_every:
    raise v.ConfigError(
      "eval.every",
      eval_every,
      f"must be a multiple of train.log_every ({log_every})",
    )
  every = v.non_negative_int(config, "checkpoint.every")
  if every % log_every:
    raise v.ConfigError(
      "checkpoint.every",
      every,
      f"must be 0 or a multiple of train.log_every ({log_every})",
    )
  v.positive_int(config, "checkpoint.max_to_keep")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=_parse_flags)
