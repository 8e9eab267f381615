"""The Visionary experiment: dataset -> search -> derive -> retrain vs baseline.

`run(config, workdir)` chains ordinary training runs of the `qtopt_offline`
recipe (each a resumable run directory of `experiments.loop`) and writes the
experiment's own files:

  <workdir>/dataset/                the fixed offline dataset (unless dataset.path)
  <workdir>/search/                 the search network's run
  <workdir>/architecture.json       the pruned architecture + the search weights
  <workdir>/architecture.png        the same, drawn (the paper's Fig. 5 style)
  <workdir>/found/seed<k>/          the found architecture retrained from scratch
  <workdir>/baseline/seed<k>/       the QT-Opt baseline on the same data
  <workdir>/learning_curves.png     eval success vs iteration (Fig. 6 style)
  <workdir>/summary.json            Table I: mean +- std, best, t-test

Re-running the same command resumes: finished phases are skipped and an
interrupted one continues from its newest checkpoint.
"""

import json
import math
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from scipy import stats

from experiments import datasets
from experiments import loop
from experiments import rundir
from jaxrl_vision import validation as v
from jaxrl_vision.networks import visionary
from jaxrl_vision.recipes import qtopt_offline

SEARCH_SPACES = ("search", "supernet_only", "attention_only")
# The paper's stacking numbers (Table I), for the summary's comparison.
PAPER = {
  "task": "stacking (simulation), 15 runs each",
  "baseline": {"mean": 74.8, "std": 7.3, "best": 83.1},
  "visionary": {"mean": 84.1, "std": 4.4, "best": 91.4},
  "t": 4.23,
  "df": 28,
  "p_value": "< 0.001",
}
LAST_EVALS = 5  # a run's "last" score: the mean of its last evaluations


def dataset_config(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """The `experiments.collect` config of this experiment's dataset."""
  d = config.dataset
  return ml_collections.ConfigDict(
    dict(
      seed=config.seed,
      task=config.task.to_dict(),
      num_episodes=d.num_episodes,
      episodes_per_call=d.episodes_per_call,
      expert_weight=d.expert_weight,
      expert_noise=d.expert_noise,
      expert_epsilon=d.expert_epsilon,
      episodes_per_shard=d.episodes_per_shard,
    )
  )


def phase_config(
  config: ml_collections.ConfigDict,
  *,
  architecture: str,
  seed: int,
  num_iterations: int,
  dataset_path: str,
) -> ml_collections.ConfigDict:
  """The `qtopt_offline` run config of one phase."""
  c = ml_collections.ConfigDict()
  c.experiment = "qtopt_offline"
  c.seed = seed
  c.task = config.task.to_dict()
  c.dataset = dict(path=dataset_path)
  c.network = dict(trunk=config.network.trunk, architecture=architecture)
  c.agent = config.agent.to_dict()
  c.train = config.train.to_dict()
  c.train.num_iterations = num_iterations
  c.eval = config.eval.to_dict()
  c.checkpoint = config.checkpoint.to_dict()
  c.distributed = config.distributed.to_dict()
  c.run = config.run.to_dict()
  c.run.compilation_cache = False  # the pipeline sets one cache for all
  return c


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError before anything compiles."""
  v.positive_int(config, "num_seeds")
  v.one_of(config, "search.architecture", SEARCH_SPACES)
  search_iterations = v.positive_int(config, "search.num_iterations")
  if search_iterations % config.train.log_every:
    raise v.ConfigError(
      "search.num_iterations",
      search_iterations,
      f"must be a multiple of train.log_every ({config.train.log_every})",
    )
  v.positive_int(config, "dataset.num_episodes")
  per_call = v.positive_int(config, "dataset.episodes_per_call")
  if config.dataset.num_episodes % per_call:
    raise v.ConfigError(
      "dataset.num_episodes",
      config.dataset.num_episodes,
      f"must be a multiple of dataset.episodes_per_call ({per_call})",
    )
  v.number_in(config, "dataset.expert_weight", 0, 1)
  v.number_in(config, "dataset.expert_noise", 0, float("inf"), high_open=True)
  v.number_in(config, "dataset.expert_epsilon", 0, 1)
  v.positive_int(config, "dataset.episodes_per_shard")
  for architecture in (config.search.architecture, "baseline"):
    qtopt_offline.validate(
      phase_config(
        config,
        architecture=architecture,
        seed=config.seed,
        num_iterations=config.train.num_iterations,
        dataset_path=config.dataset.path or "<workdir>/dataset",
      ),
      num_devices,
    )


def _completed(workdir: str, num_iterations: int) -> bool:
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    summary = json.load(f)
  return (
    summary.get("status") == "completed"
    and summary.get("iterations") == num_iterations
  )


def _run_phase(name, config, workdir, recipe) -> None:
  if _completed(workdir, config.train.num_iterations):
    print(f"[visionary] {name}: done already ({workdir})", file=sys.stderr)
    return
  print(f"[visionary] {name}: training in {workdir}", file=sys.stderr)
  loop.run(config, workdir, recipe)


def eval_curve(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """(iterations, eval/success) of a run, from its metrics.jsonl."""
  steps, success = [], []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      if "eval/success" in record:
        steps.append(record["step"])
        success.append(record["eval/success"])
  return np.asarray(steps), np.asarray(success, np.float64)


def run_scores(success: np.ndarray) -> dict[str, float]:
  """A run's scores in percent: final eval, best eval, mean of the last 5."""
  return {
    "final": 100 * float(success[-1]),
    "best": 100 * float(np.max(success)),
    "last": 100 * float(np.mean(success[-LAST_EVALS:])),
  }


def group_stats(scores: list[dict[str, float]]) -> dict[str, Any]:
  """Table I's row: mean +- sample std over runs, and the best run."""
  final = np.array([s["final"] for s in scores])
  best = np.array([s["best"] for s in scores])
  return {
    "mean": round(float(final.mean()), 2),
    "std": round(float(final.std(ddof=1)), 2) if len(final) > 1 else None,
    "best": round(float(best.max()), 2),
    "mean_of_best": round(float(best.mean()), 2),
    "runs": scores,
  }


def t_test(a: list[float], b: list[float]) -> dict[str, Any]:
  """Independent two-sample Student's t-test (the paper's Table I test)."""
  if len(a) < 2 or len(b) < 2:
    return {"t": None, "df": None, "p_value": None, "why": "needs >= 2 runs"}
  if np.std(a) == 0 and np.std(b) == 0:
    return {"t": None, "df": None, "p_value": None, "why": "no variance"}
  result = stats.ttest_ind(a, b, equal_var=True)
  return {
    "t": round(float(result.statistic), 3),
    "df": len(a) + len(b) - 2,
    "p_value": float(result.pvalue),
  }


def plot_curves(path, curves, references) -> None:
  """Mean +- std of eval success over iterations per group (Fig. 6 style)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  colours = {"found": "tab:red", "baseline": "tab:blue", "search": "tab:gray"}
  for name, runs in curves.items():
    length = min(len(s) for _, s in runs)
    steps = runs[0][0][:length]
    values = 100 * np.stack([s[:length] for _, s in runs])
    mean = values.mean(0)
    ax.plot(steps, mean, label=f"{name} ({len(runs)} runs)", c=colours[name])
    if len(runs) > 1:
      std = values.std(0, ddof=1)
      ax.fill_between(
        steps, mean - std, mean + std, alpha=0.2, color=colours[name]
      )
  styles = ("--", ":", "-.")
  for (label, value), style in zip(references.items(), styles, strict=False):
    ax.axhline(100 * value, ls=style, lw=1, c="k", alpha=0.6, label=label)
  ax.set_xlabel("training iteration")
  ax.set_ylabel("eval success (%)")
  ax.set_ylim(-2, 102)
  ax.legend(loc="center right", fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """The whole experiment; returns the summary written to summary.json."""
  start = time.time()
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  config_dict = config.to_dict()
  if os.path.exists(config_path):
    with open(config_path) as f:
      diff = loop.config_diff(json.load(f), config_dict)
    if diff:
      raise loop.IncompatibleWorkdir(
        f"{workdir} holds a visionary run with a different config; use a "
        "new --workdir or the same config. Differences (then -> now): "
        + "; ".join(diff)
      )
  rundir.write_json(config_path, config_dict)
  if config.run.compilation_cache:
    loop.enable_compilation_cache(
      os.path.join(os.path.dirname(os.path.abspath(workdir)), ".jax_cache")
    )

  def log(message):
    print(f"[visionary] {message}", file=sys.stderr, flush=True)

  dataset_dir = config.dataset.path or os.path.join(workdir, "dataset")
  episodes, manifest = datasets.load_or_collect(
    dataset_config(config), dataset_dir, log
  )
  per_policy = datasets.policy_success(episodes)
  log(
    f"dataset {dataset_dir}: {manifest['episodes']} episodes, "
    f"{manifest['transitions']} transitions, success "
    f"{manifest['success_rate']:.3f} ({per_policy})"
  )
  del episodes
  recipe = qtopt_offline.make_recipe()

  def phase(architecture, seed, num_iterations):
    return phase_config(
      config,
      architecture=architecture,
      seed=seed,
      num_iterations=num_iterations,
      dataset_path=os.path.abspath(dataset_dir),
    )

  # 1. Search: architecture and weights trained jointly by the RL loss.
  space = config.search.architecture
  search_config = phase(space, config.seed, config.search.num_iterations)
  search_dir = os.path.join(workdir, "search")
  _run_phase("search", search_config, search_dir, recipe)

  # 2. Derive: argmax op per location, attention edges with weight > 0.5.
  _, state = loop.restore_final_state(search_dir, recipe, search_config)
  params = jax.device_get(state.agent.params)
  searched = qtopt_offline.architecture(space)
  weights = visionary.arch_weights(params, searched)
  found = visionary.derive(params, searched)
  found_json = visionary.architecture_to_json(found)
  rundir.write_json(
    os.path.join(workdir, "architecture.json"),
    {
      "found": found_json,
      "search_space": space,
      "search_weights": weights,
    },
  )
  visionary.draw_architecture(
    found, weights, os.path.join(workdir, "architecture.png")
  )
  log(f"found architecture: {json.dumps(found_json)}")

  # 3-4. Retrain the found architecture from scratch, and the baseline, on
  # the same data with the same seeds.
  groups = {
    "found": json.dumps(found_json, sort_keys=True),
    "baseline": "baseline",
  }
  dirs: dict[str, list[str]] = {name: [] for name in groups}
  for k in range(config.num_seeds):
    for name, architecture in groups.items():
      d = os.path.join(workdir, name, f"seed{k}")
      cfg = phase(
        architecture, config.seed + 1 + k, config.train.num_iterations
      )
      _run_phase(f"{name} seed {k}", cfg, d, recipe)
      dirs[name].append(d)

  # 5-6. Scores, t-test, curves.
  curves = {name: [eval_curve(d) for d in ds] for name, ds in dirs.items()}
  curves["search"] = [eval_curve(search_dir)]
  scores = {
    name: [run_scores(s) for _, s in runs] for name, runs in curves.items()
  }
  table = {name: group_stats(scores[name]) for name in ("found", "baseline")}
  found_final = [s["final"] for s in scores["found"]]
  base_final = [s["final"] for s in scores["baseline"]]
  references = {
    f"dataset: {name} policy": rate for name, rate in per_policy.items()
  }
  plot_curves(os.path.join(workdir, "learning_curves.png"), curves, references)
  gap = table["found"]["mean"] - table["baseline"]["mean"]
  summary = {
    "status": "completed",
    "task": config.task.name,
    "eval_episodes_per_run": config.eval.num_episodes,
    "dataset": {
      "episodes": manifest["episodes"],
      "transitions": manifest["transitions"],
      "success_rate": manifest["success_rate"],
      "policy_success": per_policy,
      "path": os.path.abspath(dataset_dir),
    },
    "search": {
      "space": space,
      "scores": scores["search"][0],
      "weights": weights,
    },
    "architecture": found_json,
    "found": table["found"],
    "baseline": table["baseline"],
    "gap_points": round(gap, 2),
    "t_test_final": t_test(found_final, base_final),
    "scores_note": (
      "success in percent; final = last evaluation, best = best evaluation, "
      f"last = mean of the last {LAST_EVALS}; mean/std over runs of final"
    ),
    "paper_table_1": PAPER,
    "wall_s": round(time.time() - start, 1),
  }
  rundir.write_json(os.path.join(workdir, "summary.json"), summary)
  _print(summary)
  return summary


def _print(summary) -> None:
  f, b, t = summary["found"], summary["baseline"], summary["t_test_final"]
  std = lambda s: "n/a" if s is None else f"{s:.1f}"  # noqa: E731
  p = t["p_value"]
  print(
    "\nVisionary summary (eval success %, mean +- std over runs | best):\n"
    f"  found     {f['mean']:5.1f} +- {std(f['std'])} | {f['best']:.1f}\n"
    f"  baseline  {b['mean']:5.1f} +- {std(b['std'])} | {b['best']:.1f}\n"
    f"  gap {summary['gap_points']:+.1f} points, t = {t['t']}, df = "
    f"{t['df']}, p = {'n/a' if p is None or math.isnan(p) else f'{p:.3g}'}\n"
    f"  dataset policies: {summary['dataset']['policy_success']}",
    flush=True,
  )
