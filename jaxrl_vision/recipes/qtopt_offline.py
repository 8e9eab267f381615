"""QT-Opt on a fixed offline dataset, for any Visionary architecture.

One training run of the Visionary protocol (spec B1.1, B1.5): the
grasping Q-function of `networks.visionary` with the architecture named in
`network.architecture` (a preset name or an `architecture.json` dump),
trained by `agents.qtopt` on the episodes in `dataset.path`, evaluated
greedily (CEM) in fresh MJX worlds. `experiments/visionary.py` chains such
runs into search -> derive -> retrain, and the baseline.

On D > 1 devices the run is data parallel (`train.make_offline_train`):
each device holds E / D of the episodes and draws batch_size / D of each
batch from them; gradients and metrics are averaged over the devices.
"""

import ml_collections
import optax

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import validation as v
from jaxrl_vision.agents.qtopt import agent as qtopt
from jaxrl_vision.data import episode_store
from jaxrl_vision.data import offline
from jaxrl_vision.envs import registry as env_registry
from jaxrl_vision.networks import visionary
from jaxrl_vision.search import visionary as space

OPTIMIZERS = ("sgd", "adam")


def make_env(config: ml_collections.ConfigDict):
  return env_registry.make_env(config.task.name, **config.task.params)


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  v.one_of(config, "task.name", ("grasp", "stack"))
  env = env_registry.make_env(
    config.task.name,
    **v.kwargs_for(
      config, "task.params", env_registry.get_env_factory(config.task.name)
    ),
  )
  v.one_of(config, "network.trunk", visionary.TRUNKS)
  v.boolean(config, "network.coord_channels")
  try:
    arch = space.architecture(config.network.architecture)
    visionary.make_q_function(config.network.trunk, arch, env.spec.obs_shape[0])
  except ValueError as e:
    raise v.ConfigError(
      "network.architecture", config.network.architecture[:80], str(e)
    ) from e
  v.one_of(config, "agent.optimizer", OPTIMIZERS)
  v.number_in(config, "agent.learning_rate", 0, 1, low_open=True)
  v.one_of(config, "search.arch_optimizer", OPTIMIZERS)
  v.number_in(config, "search.arch_learning_rate", 0, 10, low_open=True)
  v.number_in(config, "search.arch_momentum", 0, 1, high_open=True)
  v.non_negative_int(config, "search.warmup_iterations")
  v.number_in(config, "search.entropy_weight", 0, 100)
  v.number_in(config, "search.cost_weight", 0, 100)
  holdout_every = v.non_negative_int(config, "search.holdout_every")
  if holdout_every == 1:
    raise v.ConfigError(
      "search.holdout_every", 1, "0 (no split) or >= 2 (1 holds out all)"
    )
  arch_batch = v.non_negative_int(config, "search.arch_batch_size")
  if bool(holdout_every) != bool(arch_batch):
    raise v.ConfigError(
      "search.arch_batch_size",
      arch_batch,
      f"must be > 0 exactly when search.holdout_every is ({holdout_every})",
    )
  v.number_in(config, "agent.momentum", 0, 1, high_open=True)
  v.number_in(config, "agent.gamma", 0, 1)
  v.number_in(config, "agent.polyak_decay", 0, 1)
  v.positive_int(config, "agent.lag_every")
  v.number_in(config, "agent.l2_scale", 0, 1)
  v.one_of(config, "agent.target", qtopt.TARGETS)
  v.number_in(
    config, "agent.conservative_weight", 0, float("inf"), high_open=True
  )
  v.positive_int(config, "agent.conservative_samples")
  v.non_negative_int(config, "agent.image_shift")
  if config.agent.image_shift >= env.spec.obs_shape[0]:
    raise v.ConfigError(
      "agent.image_shift",
      config.agent.image_shift,
      f"must be < the image size ({env.spec.obs_shape[0]})",
    )
  for prefix in ("cem", "target_cem"):
    samples = v.positive_int(config, f"agent.{prefix}_samples")
    elites = v.positive_int(config, f"agent.{prefix}_elites")
    v.positive_int(config, f"agent.{prefix}_iterations")
    if elites > samples:
      raise v.ConfigError(
        f"agent.{prefix}_elites",
        elites,
        f"must be <= agent.{prefix}_samples ({samples})",
      )
    if samples < 2:
      raise v.ConfigError(
        f"agent.{prefix}_samples", samples, "needs >= 2 (open and close)"
      )
  v.positive_int(config, "num_seeds")
  v.one_of(config, "train.seed_batching", ("auto",) + train.SEED_BATCHING)
  v.multiple_of(
    config, "train.batch_size", num_devices, f"split over {num_devices} devices"
  )
  if config.search.arch_batch_size:
    v.multiple_of(
      config,
      "search.arch_batch_size",
      num_devices,
      f"split over {num_devices} devices",
    )
    if config.search.arch_batch_size >= config.train.batch_size:
      raise v.ConfigError(
        "search.arch_batch_size",
        config.search.arch_batch_size,
        f"must be < train.batch_size ({config.train.batch_size}): held-out "
        "transitions take that many of each batch's places",
      )
  v.positive_int(config, "train.num_iterations")
  v.positive_int(config, "train.num_updates_per_iteration")
  v.positive_int(config, "eval.num_episodes")
  if not config.dataset.path:
    raise v.ConfigError("dataset.path", "", "name a dataset directory")
  # Each device holds episodes / num_devices of them; a dataset not yet on
  # disk (a pipeline collects it later) is checked when it is loaded.
  try:
    manifest = episode_store.read_manifest(config.dataset.path, missing_ok=True)
  except episode_store.DatasetError as e:
    raise v.ConfigError("dataset.path", config.dataset.path, str(e)) from e
  if manifest is not None and manifest["episodes"] % num_devices:
    raise v.ConfigError(
      "dataset.path",
      config.dataset.path,
      f"holds {manifest['episodes']} episodes, which do not split evenly "
      f"over {num_devices} devices (distributed.num_devices)",
    )


def device_data(
  episodes: offline.Episodes, num_devices: int, holdout_every: int = 0
) -> train.OfflineData:
  """The dataset laid out as `make_train` on `num_devices` devices takes
  it: on the default device for one, else one slice of episodes per
  device (`train.offline_data_shards`, host arrays that
  `data_parallel.place_data` places); every `holdout_every`-th episode
  held out for a search's architecture gradient (`search.holdout_every`;
  runs without architecture parameters sample all of them)."""
  if num_devices == 1:
    return train.offline_data(episodes, holdout_every)
  return train.offline_data_shards(episodes, num_devices, holdout_every)


def load_data(
  config: ml_collections.ConfigDict, env, num_devices: int = 1
) -> tuple[train.OfflineData, str]:
  """(the episodes in `dataset.path` laid out for `num_devices` devices
  (`device_data`), their fingerprint), verified against their manifest."""
  episodes, manifest = episode_store.read(
    config.dataset.path, offline.episodes_structure(env)
  )
  return (
    device_data(episodes, num_devices, config.search.holdout_every),
    episode_store.fingerprint(manifest),
  )


def _optimizer(name: str, learning_rate: float, momentum: float | None = None):
  """SGD with `momentum`, or Adam with `momentum` as its b1 (None: 0.9)."""
  if name == "sgd":
    return optax.sgd(learning_rate, momentum=momentum)
  return optax.adam(learning_rate, b1=0.9 if momentum is None else momentum)


def make_optimizer(
  config: ml_collections.ConfigDict, merge_flops=None
) -> optax.GradientTransformation:
  """The paper's SGD with momentum (spec B1.5), or Adam; for a network with
  architecture logits, `space.make_search_optimizer`: the logits get their
  own optimizer, learning rate and momentum (`search.*`), stay still for
  the first `search.warmup_iterations` and descend `search.entropy_weight`
  x their entropy and `search.cost_weight` x their expected relative
  `merge_flops` (the Q-function's). The weights' Adam keeps its default b1
  (0.9); `agent.momentum` is SGD's."""
  a, s = config.agent, config.search
  weights = _optimizer(
    a.optimizer, a.learning_rate, a.momentum if a.optimizer == "sgd" else None
  )
  if not space.has_arch_params(space.architecture(config.network.architecture)):
    return weights
  return space.make_search_optimizer(
    weights,
    _optimizer(s.arch_optimizer, s.arch_learning_rate, s.arch_momentum),
    warmup_steps=s.warmup_iterations * config.train.num_updates_per_iteration,
    entropy_weight=s.entropy_weight,
    cost_weight=s.cost_weight,
    op_costs=merge_flops,
  )


def make_agent(
  config: ml_collections.ConfigDict, q_function, axis_name: str | None = None
):
  """QT-Opt as configured; with `axis_name` it averages gradients and
  metrics over that mapped axis (data parallel)."""
  a = config.agent
  optimizer = make_optimizer(config, q_function.merge_flops)
  return qtopt.make_qtopt(
    q_function,
    optimizer=optimizer,
    gamma=a.gamma,
    polyak_decay=a.polyak_decay,
    lag_every=a.lag_every,
    l2_scale=a.l2_scale,
    is_arch_param=space.is_arch_param,
    cem_iterations=a.cem_iterations,
    cem_samples=a.cem_samples,
    cem_elites=a.cem_elites,
    target_cem_iterations=a.target_cem_iterations,
    target_cem_samples=a.target_cem_samples,
    target_cem_elites=a.target_cem_elites,
    target=a.target,
    conservative_weight=a.conservative_weight,
    conservative_samples=a.conservative_samples,
    image_shift=a.image_shift,
    arch_batch_size=arch_batch_size(config),
    axis_name=axis_name,
  )


def arch_batch_size(config: ml_collections.ConfigDict) -> int:
  """Held-out examples per update for the architecture's gradient, of
  the update's `train.batch_size`: the configured number for a network
  with architecture parameters, else 0 (every example trains weights)."""
  arch = space.architecture(config.network.architecture)
  return config.search.arch_batch_size if space.has_arch_params(arch) else 0


def make_q_function(config: ml_collections.ConfigDict, env):
  return visionary.make_q_function(
    config.network.trunk,
    space.architecture(config.network.architecture),
    env.spec.obs_shape[0],
    coord_channels=config.network.coord_channels,
  )


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
  *,
  data: tuple[train.OfflineData, str] | None = None,
  episode_programs: train.EpisodePrograms | None = None,
) -> train.Trainer:
  """The trainer of one run; `data` = (dataset, fingerprint) already
  loaded and laid out for `num_devices` (`device_data`; by a pipeline that
  trains several runs on it), else `dataset.path` is read. A pipeline
  also shares its `episode_programs` (`train.make_episode_programs` of
  this task's env and `eval.num_episodes` worlds) between its runs.

  With `axis_name` the trainer is data parallel over `num_devices` devices
  (`train.make_offline_train`): map it with
  `data_parallel.data_parallel_trainer`.
  """
  env = make_env(config)
  agent = make_agent(config, make_q_function(config, env), axis_name)
  if data is None:
    data = load_data(config, env, num_devices)
  dataset, fingerprint = data
  held = arch_batch_size(config)
  return train.make_offline_train(
    env,
    env.init_model(),
    agent,
    dataset,
    # A search's batch: held-out transitions take `held` of its places.
    batch_size=config.train.batch_size - held,
    num_updates_per_iteration=config.train.num_updates_per_iteration,
    num_iterations=config.train.num_iterations,
    num_eval_episodes=config.eval.num_episodes,
    # Monte-Carlo returns in the batches, only for the agent that uses them.
    gamma=None if config.agent.target == "bellman" else config.agent.gamma,
    data_fingerprint=fingerprint,
    axis_name=axis_name,
    num_devices=num_devices,
    episode_programs=episode_programs,
    holdout_batch_size=held,
  )


def make_recipe(
  data: tuple[train.OfflineData, str] | None = None,
  episode_programs: train.EpisodePrograms | None = None,
) -> recipes.Recipe:
  """The recipe; with `data`, every run it makes trains on that dataset
  (already on device) instead of reading `dataset.path`, and with
  `episode_programs` evaluates in those (one device)."""

  def make(config, axis_name=None, num_devices=1):
    return make_train(
      config,
      axis_name,
      num_devices,
      data=data,
      episode_programs=episode_programs,
    )

  return recipes.Recipe(
    validate=validate,
    make_train=make,
    main_metrics=("learner/loss", "eval/success"),
  )
