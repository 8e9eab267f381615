"""QT-Opt on a fixed offline dataset, for any Visionary architecture.

One training run of the Visionary protocol (spec B1.1, B1.5): the
grasping Q-function of `networks.visionary` with the architecture named in
`network.architecture` (a preset name or an `architecture.json` dump),
trained by `agents.qtopt` on the episodes in `dataset.path`, evaluated
greedily (CEM) in fresh MJX worlds. `experiments/visionary.py` chains such
runs into search -> derive -> retrain, and the baseline.
"""

import json

import jax
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

PRESETS = {
  "search": visionary.search_architecture,
  "baseline": visionary.baseline_architecture,
  "supernet_only": visionary.supernet_only_architecture,
  "attention_only": visionary.attention_only_architecture,
}


def architecture(name_or_json: str) -> visionary.Architecture:
  """A preset (`search`, `baseline`, ...) or an architecture JSON string."""
  if name_or_json in PRESETS:
    return PRESETS[name_or_json]()
  try:
    data = json.loads(name_or_json)
  except json.JSONDecodeError as e:
    raise ValueError(
      f"not a preset ({', '.join(sorted(PRESETS))}) nor architecture JSON: "
      f"{name_or_json[:80]!r}"
    ) from e
  return visionary.architecture_from_json(data)


def make_env(config: ml_collections.ConfigDict):
  return env_registry.make_env(config.task.name, **config.task.params)


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  if num_devices != 1:
    raise v.ConfigError(
      "distributed.num_devices",
      num_devices,
      "qtopt_offline trains on one device for now; set it to 1",
    )
  v.one_of(config, "task.name", ("grasp", "stack"))
  env = env_registry.make_env(
    config.task.name,
    **v.kwargs_for(
      config, "task.params", env_registry.get_env_factory(config.task.name)
    ),
  )
  v.one_of(config, "network.trunk", visionary.TRUNKS)
  try:
    arch = architecture(config.network.architecture)
    visionary.make_q_function(config.network.trunk, arch, env.spec.obs_shape[0])
  except ValueError as e:
    raise v.ConfigError(
      "network.architecture", config.network.architecture[:80], str(e)
    ) from e
  v.one_of(config, "agent.optimizer", ("sgd", "adam"))
  v.number_in(config, "agent.learning_rate", 0, 1, low_open=True)
  v.number_in(
    config,
    "agent.arch_lr_scale",
    0,
    float("inf"),
    low_open=True,
    high_open=True,
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
  v.positive_int(config, "train.batch_size")
  v.positive_int(config, "train.num_iterations")
  v.positive_int(config, "train.num_updates_per_iteration")
  v.positive_int(config, "eval.num_episodes")
  if not config.dataset.path:
    raise v.ConfigError("dataset.path", "", "name a dataset directory")


def load_dataset(config: ml_collections.ConfigDict, env) -> offline.Episodes:
  """The episodes in `dataset.path`, verified against their manifest."""
  episodes, _ = episode_store.read(
    config.dataset.path, offline.episodes_structure(env)
  )
  return episodes


def make_optimizer(
  config: ml_collections.ConfigDict,
) -> optax.GradientTransformation:
  """The paper's SGD with momentum (spec B1.5), or Adam.

  Architecture logits (merge w, attention h) take the same gradient step
  with their learning rate scaled by `agent.arch_lr_scale` (1 = the
  paper's single optimiser). Short CPU searches need a larger scale: at 1
  the logits barely leave their initial values in 1,000 steps.
  """
  a = config.agent

  def one(learning_rate):
    if a.optimizer == "sgd":
      return optax.sgd(learning_rate, momentum=a.momentum)
    return optax.adam(learning_rate)

  if a.arch_lr_scale == 1:
    return one(a.learning_rate)

  def labels(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: "arch" if visionary.is_arch_param(path) else "weights",
      params,
    )

  return optax.multi_transform(
    {
      "weights": one(a.learning_rate),
      "arch": one(a.learning_rate * a.arch_lr_scale),
    },
    labels,
  )


def make_agent(config: ml_collections.ConfigDict, q_function):
  a = config.agent
  optimizer = make_optimizer(config)
  return qtopt.make_qtopt(
    q_function,
    optimizer=optimizer,
    gamma=a.gamma,
    polyak_decay=a.polyak_decay,
    lag_every=a.lag_every,
    l2_scale=a.l2_scale,
    is_arch_param=visionary.is_arch_param,
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
  )


def make_q_function(config: ml_collections.ConfigDict, env):
  return visionary.make_q_function(
    config.network.trunk,
    architecture(config.network.architecture),
    env.spec.obs_shape[0],
  )


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  del axis_name, num_devices  # one device (see validate)
  env = make_env(config)
  agent = make_agent(config, make_q_function(config, env))
  return train.make_offline_train(
    env,
    env.init_model(),
    agent,
    load_dataset(config, env),
    batch_size=config.train.batch_size,
    num_updates_per_iteration=config.train.num_updates_per_iteration,
    num_iterations=config.train.num_iterations,
    num_eval_episodes=config.eval.num_episodes,
    # Monte-Carlo returns in the batches, only for the agent that uses them.
    gamma=None if config.agent.target == "bellman" else config.agent.gamma,
  )


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=("learner/loss", "eval/success"),
  )
