"""The Visionary experiment: dataset -> search -> derive -> retrain vs baseline.

`run(config, workdir)` chains ordinary training runs of the `qtopt_offline`
recipe (each a resumable run directory of `experiments.loop`) and writes the
experiment's own files:

  <workdir>/dataset/            the fixed offline dataset (unless dataset.path)
  <workdir>/search/             the search network's run, `search.num_seeds`
                                seeds vmapped in one program
  <workdir>/architecture.json   the pruned architecture, the search weights,
                                how decided they were, the seeds' agreement
  <workdir>/architecture.png    the same, drawn (the paper's Fig. 5 style)
  <workdir>/found/              the found architecture retrained from scratch
  <workdir>/baseline/           the QT-Opt baseline on the same data
                                (each group: `num_seeds` seeds in one program)
  <workdir>/references.json     scripted references in the evaluation worlds
  <workdir>/learning_curves.png eval success vs iteration (Fig. 6 style)
  <workdir>/rollouts.gif        found and baseline policies, side by side
  <workdir>/summary.json        Table I: mean +- std, best, t-test

The dataset is read once and put on the device once (on D > 1 devices, one
slice of E / D episodes on each); every phase trains on that copy (an
argument of its compiled step, never in its checkpoints).
Re-running the same command resumes: finished phases are skipped and an
interrupted one continues from its newest checkpoint.
"""

import functools
import json
import math
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import stats

from experiments import datasets
from experiments import loop
from experiments import plots
from experiments import rundir
from experiments import video
from jaxrl_vision import train
from jaxrl_vision import validation as v
from jaxrl_vision.data import episode_store
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import scripted
from jaxrl_vision.recipes import qtopt_offline
from jaxrl_vision.search import visionary as space

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
GROUPS = ("found", "baseline")


def dataset_config(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """The `experiments.collect` config of this experiment's dataset."""
  d = config.dataset.to_dict()
  del d["path"]
  return ml_collections.ConfigDict(
    dict(seed=config.seed, task=config.task.to_dict(), **d)
  )


def phase_config(
  config: ml_collections.ConfigDict,
  *,
  architecture: str,
  seed: int,
  num_seeds: int,
  num_iterations: int,
  dataset_path: str,
  eval_every: int | None = None,
  search: bool = False,
) -> ml_collections.ConfigDict:
  """The `qtopt_offline` run config of one phase (a group of seeds),
  evaluated every `eval_every` iterations (default `config.eval.every`);
  the `search` phase's agent takes `config.search.agent`'s departures
  from `config.agent`."""
  c = ml_collections.ConfigDict()
  c.experiment = "qtopt_offline"
  c.seed = seed
  c.num_seeds = num_seeds
  c.task = config.task.to_dict()
  c.dataset = dict(path=dataset_path)
  c.network = dict(config.network.to_dict(), architecture=architecture)
  c.search = {
    k: config.search[k]
    for k in (
      "arch_optimizer",
      "arch_learning_rate",
      "arch_momentum",
      "warmup_iterations",
      "entropy_weight",
      "cost_weight",
      "holdout_every",
      "arch_batch_size",
    )
  }
  c.agent = config.agent.to_dict()
  if search:
    c.agent.update(config.search.agent)
  c.train = config.train.to_dict()
  c.train.num_iterations = num_iterations
  c.eval = config.eval.to_dict()
  if eval_every is not None:
    c.eval.every = eval_every
  c.checkpoint = config.checkpoint.to_dict()
  c.distributed = config.distributed.to_dict()
  c.run = config.run.to_dict()
  c.run.compilation_cache = False  # the pipeline sets one cache for all
  return c


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError before anything compiles."""
  num_seeds = v.positive_int(config, "num_seeds")
  if num_seeds < 2:
    raise v.ConfigError("num_seeds", num_seeds, "needs >= 2 (a t-test)")
  v.one_of(config, "search.architecture", SEARCH_SPACES)
  search_seeds = v.positive_int(config, "search.num_seeds")
  retrain = v.non_negative_int(config, "search.retrain_seed")
  if retrain >= search_seeds:
    raise v.ConfigError(
      "search.retrain_seed",
      retrain,
      f"must be < search.num_seeds ({search_seeds})",
    )
  v.number_in(config, "search.gate_threshold", 0, 1, low_open=True)
  search_iterations = v.positive_int(config, "search.num_iterations")
  if search_iterations % config.train.log_every:
    raise v.ConfigError(
      "search.num_iterations",
      search_iterations,
      f"must be a multiple of train.log_every ({config.train.log_every})",
    )
  if config.search.warmup_iterations >= search_iterations:
    raise v.ConfigError(
      "search.warmup_iterations",
      config.search.warmup_iterations,
      f"must be < search.num_iterations ({search_iterations})",
    )
  v.multiple_of(
    config,
    "dataset.num_episodes",
    num_devices,
    f"each of the {num_devices} devices holds an equal share",
  )
  per_call = v.positive_int(config, "dataset.episodes_per_call")
  if config.dataset.num_episodes % per_call:
    raise v.ConfigError(
      "dataset.num_episodes",
      config.dataset.num_episodes,
      f"must be a multiple of dataset.episodes_per_call ({per_call})",
    )
  mix = config.dataset.mix.to_dict()
  unknown = sorted(set(mix) - set(datasets.POLICIES))
  if unknown:
    raise v.ConfigError(
      "dataset.mix",
      mix,
      f"unknown policies {unknown}; valid: " + ", ".join(datasets.POLICIES),
    )
  for name in mix:
    v.number_in(config, f"dataset.mix.{name}", 0, float("inf"), high_open=True)
  if sum(mix.values()) <= 0:
    raise v.ConfigError("dataset.mix", mix, "needs a positive total weight")
  v.number_in(config, "dataset.expert_noise", 0, float("inf"), high_open=True)
  v.number_in(config, "dataset.explore_epsilon", 0, 1)
  v.number_in(config, "dataset.random_close", 0, 1)
  low, high = config.dataset.offset_range
  if not 0 <= low <= high:
    raise v.ConfigError(
      "dataset.offset_range", (low, high), "needs 0 <= low <= high (metres)"
    )
  v.positive_int(config, "dataset.episodes_per_shard")
  episodes = v.positive_int(config, "eval.num_episodes")
  if v.non_negative_int(config, "video.num_episodes") > episodes:
    raise v.ConfigError(
      "video.num_episodes",
      config.video.num_episodes,
      f"must be <= eval.num_episodes ({episodes}): the video records the "
      "first of the evaluation's worlds",
    )
  unknown = sorted(set(config.search.agent) - set(config.agent))
  if unknown:
    raise v.ConfigError(
      "search.agent",
      config.search.agent.to_dict(),
      f"unknown agent keys {unknown}; valid: "
      + ", ".join(sorted(config.agent)),
    )
  for architecture in (config.search.architecture, "baseline"):
    qtopt_offline.validate(
      phase_config(
        config,
        architecture=architecture,
        seed=config.seed,
        num_seeds=num_seeds,
        num_iterations=config.train.num_iterations,
        dataset_path=config.dataset.path or "<workdir>/dataset",
        search=architecture != "baseline",
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


_START = time.time()


def _log(message: str) -> None:
  """Prints `[visionary m:ss] message`: the time since this module was
  imported, the program's start under `experiments.run`."""
  minutes, seconds = divmod(int(time.time() - _START), 60)
  print(
    f"[visionary {minutes}:{seconds:02d}] {message}",
    file=sys.stderr,
    flush=True,
  )


def _run_phase(name, config, workdir, recipe) -> None:
  if _completed(workdir, config.train.num_iterations):
    _log(f"{name}: done already ({workdir})")
    return
  _log(f"{name}: training {config.num_seeds} seeds in {workdir}")
  loop.run(config, workdir, recipe)


def eval_curves(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """(iterations [K], eval success [S, K]) of a group run's seeds."""
  steps, success = [], []
  for record in rundir.read_metrics(os.path.join(workdir, "metrics.jsonl")):
    if "eval/success/seeds" in record:
      steps.append(record["step"])
      success.append(record["eval/success/seeds"])
  return np.asarray(steps), np.asarray(success, np.float64).T


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
  n = len(final)
  std = float(final.std(ddof=1)) if n > 1 else None
  # Student's t 95% interval of the mean over runs.
  half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if std else None
  return {
    "mean": round(float(final.mean()), 2),
    "std": None if std is None else round(std, 2),
    "ci95": None if half is None else round(half, 2),
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


def references(config, task, programs, found_config, workdir) -> dict:
  """Success of the scripted references in the groups' final evaluation
  worlds (same key, same episodes): the noiseless expert, a straight
  descent (no x-y skill) and the random policy. Run in the pipeline's
  episode `programs`; cached in workdir."""
  path = os.path.join(workdir, "references.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  policies = scripted.reference_policies(task, grasp.straight_descent_action)
  names = tuple(policies)
  model = task.env.init_model()
  key = jax.random.fold_in(
    loop.eval_key(found_config), found_config.train.num_iterations
  )

  @jax.jit
  def act(index, model, env_state, key):
    # One program for every reference: the policy index is an argument.
    keys = jax.random.split(key, programs.num_episodes)
    branches = [jax.vmap(policies[n], in_axes=(None, 0, 0)) for n in names]
    return jax.lax.switch(index, branches, model, env_state, keys)

  out = {}
  for index, name in enumerate(names):
    policy = functools.partial(act, index, model)
    episodes = train.run_episodes(programs, policy, key)
    out[name] = round(float(jnp.mean(episodes.final["success"])), 4)
  out["episodes"] = config.eval.num_episodes
  rundir.write_json(path, out)
  return out


def derive(search_dir, recipe, search_config, config) -> dict[str, Any]:
  """architecture.json's content from the search run's final parameters."""
  _, state = loop.restore_final_state(search_dir, recipe, search_config)
  params = jax.device_get(state.agent.params)  # leaves [S, ...]
  searched = space.architecture(search_config.network.architecture)
  seeds = []
  for k in range(search_config.num_seeds):
    own = jax.tree.map(lambda x, k=k: x[k], params)
    weights = space.arch_weights(own, searched)
    found = space.derive(own, searched, config.search.gate_threshold)
    seeds.append(
      {
        "found": found,
        "weights": weights,
        "decisiveness": space.decisiveness(weights),
      }
    )
  agreement = (
    space.architecture_agreement(seeds[0]["found"], seeds[1]["found"])
    if len(seeds) > 1
    else None
  )
  if len(seeds) > 2:  # every pair: how reproducible the choice is
    pairs = [
      space.architecture_agreement(a["found"], b["found"])["merge_ops_agree"]
      for i, a in enumerate(seeds)
      for b in seeds[i + 1 :]
    ]
    agreement = dict(agreement, pairwise_merge_ops_agree=pairs)
  chosen = seeds[config.search.retrain_seed]
  return {
    # Seed `search.retrain_seed`'s network is retrained; the others say
    # how reproducible that choice is.
    "found": space.architecture_to_json(chosen["found"]),
    "retrain_seed": config.search.retrain_seed,
    "search_space": search_config.network.architecture,
    "gate_threshold": config.search.gate_threshold,
    "search_weights": chosen["weights"],
    "decisiveness": chosen["decisiveness"],
    "seeds": [
      {
        "found": space.architecture_to_json(s["found"]),
        "weights": s["weights"],
        "decisiveness": s["decisiveness"],
      }
      for s in seeds
    ],
    "agreement": agreement,
  }


def record_rollouts(
  config, recipe, programs, group_configs, dirs, path
) -> None:
  """rollouts.gif: `video.num_episodes` greedy episodes of seed 0 of each
  group, in the same worlds, side by side (the first worlds of the
  pipeline's episode `programs`)."""
  n = config.video.num_episodes
  frames, labels, outcome = [], [], []
  # Worlds of their own, drawn from the evaluation key (not one of its
  # evaluations).
  key = jax.random.split(loop.eval_key(group_configs["found"]))[0]
  for name, cfg in group_configs.items():
    _, state = loop.restore_final_state(dirs[name], recipe, cfg)
    agent_state = train.seed_slice(state.agent, 0)
    env = qtopt_offline.make_env(cfg)
    agent = qtopt_offline.make_agent(
      cfg, qtopt_offline.make_q_function(cfg, env)
    )
    act = functools.partial(train.make_greedy_act(agent), agent_state)
    episodes = train.run_episodes(programs, act, key, record=True)
    episodes = jax.device_get(episodes)
    success = np.asarray(episodes.final["success"])[:n]
    frames.append(np.asarray(episodes.images)[:, :n])
    labels.extend(
      f"{name} ep{i}: {'success' if s > 0.5 else 'fail'}"
      for i, s in enumerate(success)
    )
    outcome.extend(int(s > 0.5) for s in success)
  video.write_gif(
    path, np.concatenate(frames, axis=1), labels=labels, outcome=outcome
  )


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

  # One env program of eval.num_episodes worlds for the dataset's
  # collection (when episodes_per_call matches), every evaluation (on one
  # device), reference and video: compiled once, whatever acts.
  task = datasets.make_task(dataset_config(config))
  programs = train.make_episode_programs(
    task.env, task.env.init_model(), config.eval.num_episodes
  )
  dataset_dir = config.dataset.path or os.path.join(workdir, "dataset")
  episodes, manifest = datasets.load_or_collect(
    dataset_config(config), dataset_dir, _log, programs
  )
  composition = datasets.composition(episodes)
  _log(
    f"dataset {dataset_dir}: {manifest['episodes']} episodes, "
    f"{manifest['transitions']} transitions, success "
    f"{manifest['success_rate']:.3f} ({composition})"
  )
  # Once on the device(s), for every phase.
  num_devices, axis_name = loop.devices(config)
  dataset = qtopt_offline.device_data(
    episodes, num_devices, config.search.holdout_every
  )
  if axis_name is not None:
    mesh = mesh_lib.make_mesh(num_devices, axis_name)
    dataset = data_parallel.place_data(dataset, mesh, axis_name)
  data = (dataset, episode_store.fingerprint(manifest))
  del episodes
  recipe = qtopt_offline.make_recipe(data, programs)

  def phase(
    architecture, seed, num_seeds, num_iterations, eval_every=None, search=False
  ):
    return phase_config(
      config,
      architecture=architecture,
      seed=seed,
      num_seeds=num_seeds,
      num_iterations=num_iterations,
      dataset_path=os.path.abspath(dataset_dir),
      eval_every=eval_every,
      search=search,
    )

  # 1. Search: architecture and weights trained jointly by the RL loss.
  space_name = config.search.architecture
  search_config = phase(
    space_name,
    config.seed,
    config.search.num_seeds,
    config.search.num_iterations,
    # Its score is only reported beside the groups': one evaluation, at
    # the end.
    eval_every=config.search.num_iterations,
    search=True,
  )
  search_dir = os.path.join(workdir, "search")
  _run_phase("search", search_config, search_dir, recipe)

  # 2. Derive: argmax op per location, attention edges above the threshold.
  arch = derive(search_dir, recipe, search_config, config)
  rundir.write_json(os.path.join(workdir, "architecture.json"), arch)
  found = space.architecture_from_json(arch["found"])
  plots.draw_architecture(
    found, arch["search_weights"], os.path.join(workdir, "architecture.png")
  )
  _log(f"found architecture: {json.dumps(arch['found'])}")
  _log(f"search decisiveness: {json.dumps(arch['decisiveness'])}")

  # 3-4. The found architecture from scratch and the baseline, each group's
  # seeds vmapped in one program, on the same data, evaluated in the same
  # worlds (same seed, hence the same evaluation keys).
  group_configs = {
    "found": phase(
      json.dumps(arch["found"], sort_keys=True),
      config.seed + 1,
      config.num_seeds,
      config.train.num_iterations,
    ),
    "baseline": phase(
      "baseline",
      config.seed + 1,
      config.num_seeds,
      config.train.num_iterations,
    ),
  }
  dirs = {name: os.path.join(workdir, name) for name in GROUPS}
  for name in GROUPS:
    _run_phase(name, group_configs[name], dirs[name], recipe)

  # 5-6. Scores, t-test, references, curves, rollouts.
  curves = {name: eval_curves(d) for name, d in dirs.items()}
  curves["search"] = eval_curves(search_dir)
  scores = {
    name: [run_scores(s) for s in success]
    for name, (_, success) in curves.items()
  }
  table = {name: group_stats(scores[name]) for name in GROUPS}
  found_final = [s["final"] for s in scores["found"]]
  base_final = [s["final"] for s in scores["baseline"]]
  refs = references(config, task, programs, group_configs["found"], workdir)
  plots.plot_group_curves(
    os.path.join(workdir, "learning_curves.png"),
    curves,
    {name: refs[name] for name in ("expert", "straight_descent", "random")},
  )
  if config.video.num_episodes:
    record_rollouts(
      config,
      recipe,
      programs,
      group_configs,
      dirs,
      os.path.join(workdir, "rollouts.gif"),
    )
  gap = table["found"]["mean"] - table["baseline"]["mean"]
  summary = {
    "status": "completed",
    "task": config.task.name,
    "eval_episodes_per_run": config.eval.num_episodes,
    "dataset": {
      "episodes": manifest["episodes"],
      "transitions": manifest["transitions"],
      "success_rate": manifest["success_rate"],
      "composition": composition,
      "path": os.path.abspath(dataset_dir),
    },
    "references": refs,
    "search": {
      "space": space_name,
      "seeds": config.search.num_seeds,
      "scores": scores["search"],
      "decisiveness": [s["decisiveness"] for s in arch["seeds"]],
      "agreement": arch["agreement"],
    },
    "architecture": arch["found"],
    "found": table["found"],
    "baseline": table["baseline"],
    "gap_points": round(gap, 2),
    "t_test_final": t_test(found_final, base_final),
    "scores_note": (
      "success in percent; final = last evaluation, best = best evaluation, "
      f"last = mean of the last {LAST_EVALS}; mean/std/ci95 over runs of "
      "final; every run and reference is evaluated in the same worlds"
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
  refs = summary["references"]
  print(
    "\nVisionary summary (eval success %, mean +- std over runs | best):\n"
    f"  found     {f['mean']:5.1f} +- {std(f['std'])} | {f['best']:.1f}\n"
    f"  baseline  {b['mean']:5.1f} +- {std(b['std'])} | {b['best']:.1f}\n"
    f"  gap {summary['gap_points']:+.1f} points, t = {t['t']}, df = "
    f"{t['df']}, p = {'n/a' if p is None or math.isnan(p) else f'{p:.3g}'}\n"
    f"  references: expert {100 * refs['expert']:.0f}%, straight descent "
    f"{100 * refs['straight_descent']:.0f}%, random "
    f"{100 * refs['random']:.0f}%\n"
    f"  search: top merge weight >= 0.5 at "
    f"{summary['search']['decisiveness'][0]['locations_top_ge_0.5']}/5 "
    "locations",
    flush=True,
  )
