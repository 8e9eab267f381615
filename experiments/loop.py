"""The host loop: chunks of jitted training between logs and checkpoints.

`run(config, workdir, recipe)` builds the trainer, resumes from the newest
intact checkpoint in `workdir` (or starts fresh), then repeats: one compiled
chunk of `train.log_every` iterations, a metrics line, sometimes an
evaluation, sometimes a checkpoint. Everything that is not host I/O lives in
`jaxrl_vision/`.
"""

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import tqdm

from experiments import rundir
from experiments import video
from jaxrl_vision import checkpoint
from jaxrl_vision import recipes
from jaxrl_vision import train as train_lib
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib

# Config keys that may change between a run and its resumption: they decide
# how long it runs and how it is hosted, not what one iteration computes.
RESUMABLE_KEYS = (
  "train.num_iterations",
  "eval.every",
  "eval.references",
  "video.",
  "checkpoint.",
  "run.",
  "distributed.coordinator_address",
  "distributed.num_processes",
  "distributed.process_id",
)


def init_compiler_options() -> dict[str, Any] | None:
  """XLA options for compiling `trainer.init`, a program that runs once.

  XLA:CPU spends about half of an init's compile in LLVM's -O3 passes over
  hundreds of small RNG kernels (one per parameter): at -O1 the Visionary
  search network's init compiles in 3.7 s instead of 7.6 s on the 2-core
  CPU, with the same bits (tests/experiments/loop_test.py). Other backends
  keep their defaults.
  """
  if jax.default_backend() == "cpu":
    return {"xla_backend_optimization_level": 1}
  return None


class RunError(Exception):
  """A run that stopped for a reason the user must see; `exit_code` for main."""

  exit_code = 1


class IncompatibleWorkdir(RunError):
  exit_code = 2


class NonFiniteError(RunError):
  pass


class Interrupted(RunError):
  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + signum


Hook = Callable[[int, Any], None]  # hook(iteration, state) after each chunk


class Setup(NamedTuple):
  trainer: train_lib.Trainer  # data-parallel over all devices when > 1
  num_devices: int
  init_key: jax.Array
  eval_key: jax.Array
  abstract_state: Any  # ShapeDtypeStructs with the shardings of init's output
  init: Any  # the compiled trainer.init
  compile_s: float


def seed_batching(config: ml_collections.ConfigDict) -> str:
  """`train.seed_batching` ("auto" = "unroll" on CPU, else "vmap"; see
  `train.vmap_seeds`)."""
  batching = config.train.get("seed_batching", "auto")
  if batching == "auto":
    return "unroll" if jax.default_backend() == "cpu" else "vmap"
  return batching


def eval_key(config: ml_collections.ConfigDict) -> jax.Array:
  """The evaluation key of a run; the evaluation at iteration `it` uses
  `fold_in(eval_key(config), it)`, so runs with the same seed are evaluated
  in the same worlds."""
  return jax.random.split(jax.random.key(config.seed))[1]


def devices(config: ml_collections.ConfigDict) -> tuple[int, str | None]:
  """(number of devices, data axis name or None for one) of a run."""
  num_devices = config.distributed.num_devices or jax.device_count()
  return num_devices, mesh_lib.DATA_AXIS if num_devices > 1 else None


def build(config: ml_collections.ConfigDict, recipe: recipes.Recipe) -> Setup:
  """The trainer for this config on this job's devices, and its state layout."""
  num_devices, axis_name = devices(config)
  trainer = recipe.make_train(config, axis_name, num_devices)
  if "num_seeds" in config:  # seeds as a vmapped axis of one program
    trainer = train_lib.vmap_seeds(
      trainer, config.num_seeds, seed_batching(config)
    )
  if axis_name is not None:
    mesh = mesh_lib.make_mesh(num_devices, axis_name)
    trainer = data_parallel.data_parallel_trainer(trainer, mesh, axis_name)
  init_key = jax.random.split(jax.random.key(config.seed))[0]
  t = time.time()
  init = (
    jax.jit(trainer.init)
    .lower(init_key)
    .compile(
      compiler_options=(init_compiler_options() or {})
      | (trainer.compiler_options or {})
      or None
    )
  )
  compile_s = time.time() - t
  abstract = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
    jax.eval_shape(trainer.init, init_key),
    init.output_shardings,
  )
  return Setup(
    trainer=trainer,
    num_devices=num_devices,
    init_key=init_key,
    eval_key=eval_key(config),
    abstract_state=abstract,
    init=init,
    compile_s=compile_s,
  )


def run(
  config: ml_collections.ConfigDict,
  workdir: str,
  recipe: recipes.Recipe,
  *,
  hooks: Sequence[Hook] = (),
) -> dict[str, Any] | None:
  """Trains to `config.train.num_iterations`.

  Returns the summary dict on process 0 (which writes all run files) and None
  on the other processes of a multi-host job.
  """
  wall_start = time.time()
  chief = jax.process_index() == 0
  summary = None
  os.makedirs(workdir, exist_ok=True)
  if config.run.compilation_cache:
    enable_compilation_cache(
      os.path.join(os.path.dirname(os.path.abspath(workdir)), ".jax_cache")
    )

  setup = build(config, recipe)
  trainer, num_devices = setup.trainer, setup.num_devices
  init_key, eval_key, abstract = (
    setup.init_key,
    setup.eval_key,
    setup.abstract_state,
  )
  compile_s = setup.compile_s

  config_dict = config.to_dict()
  manager = checkpoint.make_manager(
    os.path.join(workdir, "checkpoints"), config.checkpoint.max_to_keep
  )

  def check_meta(meta):
    saved_data = meta.get("data_fingerprint", "")
    if saved_data != trainer.data_fingerprint:
      raise IncompatibleWorkdir(
        f"{workdir} holds a run trained on other data (fingerprint "
        f"{saved_data[:16] or 'none'}, now "
        f"{trainer.data_fingerprint[:16] or 'none'}); use a new --workdir or "
        "the same dataset"
      )
    saved_devices = meta.get("num_devices", num_devices)
    if saved_devices != num_devices:
      raise IncompatibleWorkdir(
        f"{workdir} was written by a {saved_devices}-device run and this "
        f"run has {num_devices}; resume it on {saved_devices} devices "
        f"(--config.distributed.num_devices) or use a new --workdir"
      )
    diff = config_diff(meta["config"], config_dict)
    if diff:
      raise IncompatibleWorkdir(
        f"{workdir} holds a run with a different config; use a new "
        f"--workdir or the same config. Differences (checkpoint -> now): "
        + "; ".join(diff)
      )

  try:
    restored = checkpoint.restore_latest(manager, abstract, check_meta)
  except checkpoint.CheckpointError as e:
    raise IncompatibleWorkdir(str(e)) from e
  if restored is None:
    state, start = setup.init(init_key), 0
  else:
    state, start = restored.state, restored.step
    for why in restored.skipped:
      print(f"warning: {why}", file=sys.stderr)
    print(f"resuming {workdir} from iteration {start}", file=sys.stderr)

  if chief:
    rundir.write_json(os.path.join(workdir, "config.json"), config_dict)
    rundir.write_json(
      os.path.join(workdir, "environment.json"), rundir.environment()
    )
  metrics_log = (
    rundir.MetricsLog(
      os.path.join(workdir, "metrics.jsonl"),
      resume_step=start if restored else None,
    )
    if chief
    else None
  )
  tb = (
    _tensorboard(os.path.join(workdir, "tensorboard"), start) if chief else None
  )

  log_every = config.train.log_every
  ckpt_every = config.checkpoint.every or log_every
  eval_every = config.eval.every
  total = config.train.num_iterations
  steps_per_iteration = trainer.env_steps_per_iteration * num_devices

  chunks: dict[int, Any] = {}
  step = None  # the compiled step, when the trainer runs chunks from the host

  def compiled_chunk(length):
    nonlocal compile_s, step
    if length not in chunks:
      t = time.time()
      args = train_lib.step_args(trainer, state)
      if trainer.host_loop:
        if step is None:
          step = (
            jax.jit(trainer.step, donate_argnums=0)
            .lower(*args)
            .compile(compiler_options=trainer.compiler_options)
          )
        chunks[length] = train_lib.make_host_chunk(step, length)
      else:
        fn = jax.jit(
          train_lib.make_chunk(trainer.step, length), donate_argnums=0
        )
        chunks[length] = fn.lower(*args).compile(
          compiler_options=trainer.compiler_options
        )
      compile_s += time.time() - t
    return chunks[length]

  # A host evaluation compiles its act (and, once per shared programs, the
  # env) when first run: that time counts as run time, not compile time.
  evaluate = trainer.host_evaluate
  if evaluate is None:
    t = time.time()
    evaluate = (
      jax.jit(trainer.evaluate)
      .lower(state.agent, eval_key)
      .compile(compiler_options=trainer.compiler_options)
    )
    compile_s += time.time() - t

  stop = _StopFlag()
  status, it, run_s, records = "completed", start, 0.0, []
  video_file, references = None, None
  bar = tqdm.tqdm(
    total=total,
    initial=start,
    unit="it",
    dynamic_ncols=True,
    disable=not (chief and config.run.progress_bar and sys.stderr.isatty()),
  )
  try:
    with stop:
      while it < total:
        # Chunk boundaries sit on multiples of log_every from iteration 0, so a
        # resumed run replays exactly the computations of an uninterrupted one.
        length = min(log_every - it % log_every, total - it)
        chunk = compiled_chunk(length)
        t = time.time()
        state, metrics = chunk(*train_lib.step_args(trainer, state))
        metrics = jax.device_get(metrics)
        chunk_s = time.time() - t
        run_s += chunk_s
        first_bad = int(metrics.pop("first_nonfinite"))
        if first_bad >= 0:
          raise NonFiniteError(
            f"non-finite loss or metric at iteration {it + first_bad + 1}; "
            f"stopped. Last good checkpoint: {manager.latest_step()} in "
            f"{os.path.join(workdir, 'checkpoints')}"
          )
        it += length
        record = _clean(metrics)
        record["env_steps"] = it * steps_per_iteration
        if it % eval_every == 0 or it == total:
          t = time.time()
          record.update(
            _clean(
              jax.device_get(
                evaluate(state.agent, jax.random.fold_in(eval_key, it))
              )
            )
          )
          run_s += time.time() - t
        record["iterations_per_s"] = length / max(chunk_s, 1e-9)
        records.append(record)
        if chief:
          metrics_log.write(it, record)
          for name, value in record.items():
            if isinstance(value, list):  # per-seed values
              for k, x in enumerate(value):
                tb.add_scalar(f"{name[: -len('/seeds')]}/seed{k}", x, it)
            else:
              tb.add_scalar(name, value, it)
          tb.flush()
          eta = (total - it) * run_s / max(it - start, 1)
          _show(bar, it, total, eta, record, recipe.main_metrics)
        if it % ckpt_every == 0 or it == total or stop.signum:
          checkpoint.save(
            manager,
            it,
            state,
            {
              "config": config_dict,
              "iteration": it,
              "num_devices": num_devices,
              "data_fingerprint": trainer.data_fingerprint,
            },
          )
        for hook in hooks:
          hook(it, state)
        if stop.signum and it < total:
          status = "interrupted"
          raise Interrupted(
            f"stopped by signal {stop.signum} at iteration {it}; checkpoint "
            f"saved; rerun the same command to resume",
            stop.signum,
          )
    if (
      chief
      and recipe.references is not None
      and config.eval.get("references", True)
    ):
      references = write_references(
        config,
        recipe,
        jax.random.fold_in(eval_key, it),
        workdir,
        trainer.compiler_options,
      )
    if chief and recipe.video is not None and config.get("video"):
      video_file = write_rollouts(
        config,
        recipe,
        state.agent,
        eval_key,
        workdir,
        trainer.compiler_options,
      )
  except NonFiniteError:
    status = "diverged"
    raise
  except BaseException:
    status = "interrupted" if status == "interrupted" else "failed"
    raise
  finally:
    bar.close()
    manager.close()
    if chief:
      metrics_log.close()
      tb.close()
      summary = _summary(
        workdir,
        status,
        it,
        steps_per_iteration,
        compile_s,
        run_s,
        time.time() - wall_start,
        start if restored else None,
        recipe,
      )
      if video_file:
        summary["rollouts"] = video_file
      if references:
        summary["references"] = references
      rundir.write_json(os.path.join(workdir, "summary.json"), summary)
  if chief:
    _print_summary(summary)
  return summary


def write_references(
  config, recipe, key, workdir, compiler_options=None
) -> dict[str, float]:
  """<workdir>/references.json: `recipe.references`' scripted policies in
  the worlds of the final evaluation (`key`), beside the agent's figures."""
  fn = recipe.references(config)
  metrics = jax.device_get(
    jax.jit(fn).lower(key).compile(compiler_options=compiler_options)(key)
  )
  metrics = {k: float(v) for k, v in sorted(metrics.items())}
  rundir.write_json(os.path.join(workdir, "references.json"), metrics)
  return metrics


def write_rollouts(
  config, recipe, agent_state, key, workdir, compiler_options=None
) -> str | None:
  """<workdir>/rollouts.gif: `recipe.video`'s greedy episodes of seed 0
  (`config.video.num_episodes` of them; 0 = none), each labelled and framed
  green or red by its success. Returns the file's name in the workdir."""
  if not config.video.num_episodes:
    return None
  if "num_seeds" in config:
    agent_state = train_lib.seed_slice(agent_state, 0)
  frames, success = jax.device_get(
    jax.jit(recipe.video(config))
    .lower(agent_state, key)
    .compile(compiler_options=compiler_options)(
      agent_state, jax.random.split(key)[0]
    )
  )
  outcome = (np.asarray(success) > 0.5).astype(int)
  labels = [
    f"seed 0 ep{i}: {'success' if s else 'fail'}" for i, s in enumerate(outcome)
  ]
  name = "rollouts.gif"
  video.write_gif(
    os.path.join(workdir, name),
    np.asarray(frames),
    labels=labels,
    outcome=outcome,
  )
  return name


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  """`key: old -> new` for every differing leaf outside RESUMABLE_KEYS."""
  diffs = []
  for key in sorted(set(old) | set(new)):
    path = prefix + key
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += config_diff(a, b, path + ".")
    elif _normalise(a) != _normalise(b) and not any(
      path == k or (k.endswith(".") and path.startswith(k))
      for k in RESUMABLE_KEYS
    ):
      diffs.append(f"{path}: {a!r} -> {b!r}")
  return diffs


def _normalise(x):
  return json.loads(json.dumps(x)) if isinstance(x, tuple | list) else x


def enable_compilation_cache(path: str) -> None:
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
  """Host floats; drops groups that had no events in the chunk (count 0).

  Metrics of vmapped seeds ([S] arrays) log as their mean under the
  metric's name and as the list of S values under `<name>/seeds`.
  """
  empty = {
    k[: -len("/count")]
    for k, v in metrics.items()
    if k.endswith("/count") and not np.any(v)
  }
  out = {}
  for k, v in metrics.items():
    if k.split("/")[0] in empty:
      continue
    v = np.asarray(v, np.float64)
    out[k] = float(v.mean())
    if v.ndim and not k.endswith("/count"):
      out[f"{k}/seeds"] = [float(x) for x in v]
  return out


def _tensorboard(path: str, start: int):
  import tensorboardX  # noqa: PLC0415

  # purge_step hides events a killed run wrote after its last checkpoint.
  return tensorboardX.SummaryWriter(path, purge_step=start or None)


class _StopFlag:
  """SIGINT/SIGTERM ask the loop to checkpoint and stop at the next chunk."""

  def __init__(self):
    self.signum = 0
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.signum:  # a second signal: stop now
      raise KeyboardInterrupt
    self.signum = signum
    print(
      f"\nsignal {signum}: saving a checkpoint after this chunk "
      "(send it again to stop at once)",
      file=sys.stderr,
    )

  def __enter__(self):
    for s in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[s] = signal.signal(s, self._handle)
      except ValueError:  # not the main thread (e.g. inside some test runners)
        pass
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    return False


def _show(bar, it, total, eta_s, record, names) -> None:
  shown = {
    n.split("/")[-1] if n.startswith("learner/") else n: record[n]
    for n in names
    if n in record
  }
  text = " ".join(f"{k}={v:.3g}" for k, v in shown.items())
  if bar.disable:
    print(f"[{it}/{total} eta {eta_s:.0f}s] {text}", flush=True)
  else:
    bar.set_postfix_str(text, refresh=False)
    bar.update(it - bar.n)


def _summary(
  workdir,
  status,
  it,
  steps_per_iteration,
  compile_s,
  run_s,
  wall_s,
  resumed_from,
  recipe,
) -> dict[str, Any]:
  path = os.path.join(workdir, "metrics.jsonl")
  records = rundir.read_metrics(path) if os.path.exists(path) else []
  best = {}  # of returns and success rates: higher is better
  for r in records:
    for k, v in r.items():
      if (
        k.startswith(("eval/", "episode/"))
        and not k.endswith("/count")
        and isinstance(v, float)
        and math.isfinite(v)
      ):
        best[k] = max(best.get(k, -math.inf), v)
  plots = []
  if records:
    plots = rundir.plot_curves(
      path, recipe.main_metrics, os.path.join(workdir, "plots")
    )
  return {
    "status": status,
    "iterations": it,
    "env_steps": it * steps_per_iteration,
    "final": records[-1] if records else {},
    "best": best,
    "compile_time_s": round(compile_s, 3),
    "run_time_s": round(run_s, 3),
    "wall_time_s": round(wall_s, 3),
    "env_steps_per_s": round(
      (it - (resumed_from or 0)) * steps_per_iteration / max(run_s, 1e-9), 1
    ),
    "resumed_from": resumed_from,
    "plots": [os.path.relpath(p, workdir) for p in plots],
  }


def _print_summary(summary: dict[str, Any]) -> None:
  final = summary["final"]
  lines = [
    f"status       {summary['status']} at iteration {summary['iterations']}"
    f" ({summary['env_steps']} env steps)",
    f"time         compile {summary['compile_time_s']:.1f}s, run "
    f"{summary['run_time_s']:.1f}s, wall {summary['wall_time_s']:.1f}s "
    f"({summary['env_steps_per_s']:.0f} env steps/s)",
  ]
  for k in sorted(final):
    if (
      k not in ("step", "time", "env_steps")
      and "/count" not in k
      and not k.endswith("/seeds")
    ):
      best = summary["best"].get(k)
      lines.append(
        f"{k:<24} {final[k]:<10.4g}"
        + (f" best {best:.4g}" if best is not None else "")
      )
  print("\n".join(lines))


def restore_final_state(
  workdir: str, recipe: recipes.Recipe, config: ml_collections.ConfigDict
) -> tuple[int, Any]:
  """The newest checkpoint's state, e.g. to compare or evaluate runs."""
  abstract = build(config, recipe).abstract_state
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), 1000)
  try:
    restored = checkpoint.restore_latest(manager, abstract)
  finally:
    manager.close()
  if restored is None:
    raise RunError(f"no checkpoint in {workdir}")
  return restored.step, restored.state
