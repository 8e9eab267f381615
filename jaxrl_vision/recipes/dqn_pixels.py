"""Double DQN from pixels on a discrete-action env (the foundation's recipe)."""

import ml_collections

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import validation as v
from jaxrl_vision.agents.dqn import agent as dqn
from jaxrl_vision.data.replay import uniform
from jaxrl_vision.envs import registry as env_registry
from jaxrl_vision.networks import encoders
from jaxrl_vision.networks import q_networks


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  v.one_of(config, "env.name", env_registry.env_names())
  env = env_registry.make_env(
    config.env.name,
    **v.kwargs_for(
      config, "env.params", env_registry.get_env_factory(config.env.name)
    ),
  )
  if not env.spec.num_actions:
    raise v.ConfigError(
      "env.name", config.env.name, "dqn_pixels needs discrete actions"
    )
  v.multiple_of(
    config, "env.num_envs", num_devices, f"split over {num_devices} devices"
  )

  net = config.network
  for key in ("channels", "kernel_sizes", "strides", "hidden_sizes"):
    values = net[key]
    if not all(isinstance(x, int) and x > 0 for x in values):
      raise v.ConfigError(f"network.{key}", values, "must be positive integers")
  if not len(net.channels) == len(net.kernel_sizes) == len(net.strides):
    raise v.ConfigError(
      "network.channels",
      net.channels,
      "channels, kernel_sizes and strides must have the same length",
    )
  image_hw = env.spec.obs_shape[:2]
  sizes = encoders.conv_output_hw(image_hw, net.kernel_sizes, net.strides)
  for i, (h, w) in enumerate(sizes):
    if h < 1 or w < 1:
      raise v.ConfigError(
        "network.kernel_sizes",
        net.kernel_sizes,
        f"a {image_hw[0]}x{image_hw[1]} image shrinks to {h}x{w} at conv "
        f"layer {i}; use smaller kernels or strides, or a larger image "
        "(env.params)",
      )

  v.number_in(config, "agent.learning_rate", 0, 1, low_open=True)
  v.number_in(config, "agent.discount", 0, 1)
  v.number_in(
    config,
    "agent.max_grad_norm",
    0,
    float("inf"),
    low_open=True,
    high_open=True,
  )
  v.number_in(
    config, "agent.huber_delta", 0, float("inf"), low_open=True, high_open=True
  )
  v.number_in(config, "agent.target_update_tau", 0, 1)
  v.number_in(config, "agent.epsilon_start", 0, 1)
  v.number_in(config, "agent.epsilon_end", 0, 1)
  v.number_in(config, "agent.eval_epsilon", 0, 1)
  v.non_negative_int(config, "agent.epsilon_decay_steps")

  v.multiple_of(
    config,
    "replay.batch_size",
    num_devices,
    f"split over {num_devices} devices",
  )
  capacity = v.multiple_of(
    config, "replay.capacity", num_devices, f"split over {num_devices} devices"
  )
  min_size = v.positive_int(config, "replay.min_size")
  if min_size > capacity:
    raise v.ConfigError(
      "replay.min_size", min_size, f"must be <= replay.capacity ({capacity})"
    )
  per_iteration = config.env.num_envs * v.positive_int(
    config, "train.unroll_length"
  )
  if per_iteration > capacity:
    raise v.ConfigError(
      "replay.capacity",
      capacity,
      f"must hold one iteration of data, env.num_envs * train.unroll_length = {per_iteration}",
    )

  v.positive_int(config, "train.num_iterations")
  v.positive_int(config, "train.num_updates_per_iteration")
  v.positive_int(config, "eval.num_episodes")


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  """Builds the trainer; sizes in the config are global, split over devices."""
  env = env_registry.make_env(config.env.name, **config.env.params)
  network = q_networks.make_discrete_q_network(
    env.spec.num_actions, **config.network
  )
  agent = dqn.make_dqn(
    network, env.spec.num_actions, axis_name=axis_name, **config.agent
  )
  buffer = uniform.make_uniform_replay(
    capacity=config.replay.capacity // num_devices,
    batch_size=config.replay.batch_size // num_devices,
    min_size=-(-config.replay.min_size // num_devices),
  )
  return train.make_off_policy_train(
    env,
    env.init_model(),
    agent,
    buffer,
    num_envs=config.env.num_envs // num_devices,
    unroll_length=config.train.unroll_length,
    num_updates_per_iteration=config.train.num_updates_per_iteration,
    num_iterations=config.train.num_iterations,
    num_eval_episodes=config.eval.num_episodes,
    axis_name=axis_name,
  )


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=("episode/return", "eval/return", "learner/loss"),
  )
