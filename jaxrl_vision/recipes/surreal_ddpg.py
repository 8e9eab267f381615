"""Surreal-DDPG on a Robotics-Suite task (spec surreal.md §1.3, §4, §1.6).

The actors are `env.num_worlds` vmapped MJX worlds (dynamics randomised per
world), world i exploring with its own Ornstein-Uhlenbeck process of scale
sigma_i = max_sigma * i / N (reset at each episode's start). One iteration
steps every world `train.stride` times, turns the steps into n-step
transitions (each world keeps its last n - 1 steps for the next
iteration, so every step starts exactly one transition; an episode's end
inside the window shortens the return, `losses.n_step_targets`), adds them
to the replay and then runs `train.updates_per_iteration` learner
iterations of `replay.batch_size` transitions each, once the replay holds
`replay.min_size`.

Under data parallelism each device steps its share of the worlds into its
own replay shard, and `data.replay.sharded` samples the batch exactly as
one unsharded buffer would; each device learns from its slice of it and
the agent averages the gradients.
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import types
from jaxrl_vision import validation as v
from jaxrl_vision.agents.ddpg import agent as ddpg
from jaxrl_vision.agents.ddpg import losses
from jaxrl_vision.data.replay import sharded
from jaxrl_vision.envs import robots
from jaxrl_vision.envs import wrappers
from jaxrl_vision.recipes import surreal_ppo

TASKS = surreal_ppo.TASKS


class Steps(NamedTuple):
  """Per-step records of every world, [N, T, ...]: the observation before
  the step, the action, the reward, whether the step ended its episode
  (terminated: at a terminal state) and the observation after it (the
  finished episode's last one where it ended)."""

  obs: Any
  actions: jax.Array
  rewards: jax.Array
  terminated: jax.Array
  ends: jax.Array
  final_obs: Any


class Actors(NamedTuple):
  """The worlds' exploration: OU state [N, A], scales [N]; the replay
  shard; the last n - 1 steps ([N, n - 1, ...])."""

  noise: jax.Array
  sigma: jax.Array
  replay: object
  window: Steps


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  v.one_of(config, "env.name", TASKS)
  v.kwargs_for(config, "env.params", TASKS[config.env.name])
  if "robot" in config.env.params:
    v.one_of(config, "env.params.robot", robots.ROBOTS)
  v.multiple_of(
    config, "env.num_worlds", num_devices, f"split over {num_devices} devices"
  )
  v.kwargs_for(config, "agent", ddpg.make_ddpg)
  v.positive_int(config, "agent.target_update_period")
  v.positive_int(config, "train.n_step")
  stride = v.positive_int(config, "train.stride")
  v.positive_int(config, "train.updates_per_iteration")
  v.positive_int(config, "train.num_iterations")
  v.number_in(config, "train.gamma", 0, 1)
  v.number_in(config, "train.max_sigma", 0, float("inf"), high_open=True)
  v.multiple_of(
    config,
    "replay.batch_size",
    num_devices,
    f"split over {num_devices} devices",
  )
  add = config.env.num_worlds * stride  # per iteration, all devices
  capacity = v.multiple_of(
    config,
    "replay.capacity",
    add,
    "whole iterations of env.num_worlds x train.stride transitions",
  )
  min_size = v.positive_int(config, "replay.min_size")
  if min_size > capacity:
    raise v.ConfigError(
      "replay.min_size", min_size, f"must be <= replay.capacity ({capacity})"
    )
  v.positive_int(config, "eval.num_episodes")


def make_task_and_agent(config, axis_name=None):
  task = TASKS[config.env.name](**config.env.params)
  pixels = len(task.env.spec.obs_shape) == 3
  agent = ddpg.make_ddpg(
    task.env.spec.action_shape[0],
    pixels=pixels,
    axis_name=axis_name,
    **config.agent,
  )
  return task, agent


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  """With `axis_name` each of the `num_devices` devices runs num_worlds / D
  of the worlds and its replay shard."""
  task, agent = make_task_and_agent(config, axis_name)
  env = wrappers.auto_reset(task.env)
  num_worlds = config.env.num_worlds
  local_worlds = num_worlds // num_devices
  n, stride = config.train.n_step, config.train.stride
  gamma = config.train.gamma
  action_size = env.spec.action_shape[0]
  models, axes = task.randomize_model(
    env.init_model(), jax.random.key(config.seed), num_worlds
  )
  step_envs = jax.vmap(env.step, in_axes=(axes, 0, 0))
  replay = sharded.make_sharded_replay(
    config.replay.capacity,
    config.replay.batch_size,
    config.replay.min_size,
    add_size=local_worlds * stride,
    num_shards=num_devices,
    axis_name=axis_name,
    exact=config.replay.get("exact", True),
  )
  sigmas = losses.actor_sigmas(num_worlds, config.train.max_sigma)

  def device():
    return 0 if axis_name is None else jax.lax.axis_index(axis_name)

  def mine(x):
    """This device's slice of a per-world array (all of it on one)."""
    if axis_name is None:
      return x
    return jax.lax.dynamic_slice_in_dim(
      x, device() * local_worlds, local_worlds
    )

  def my_models():
    return surreal_ppo.device_models(models, axes, axis_name, local_worlds)

  def act_steps(
    models, agent_state, env_state, actors, episode_return, key, num_steps
  ):
    def one(carry, k):
      env_state, noise, episode_return = carry
      noise = losses.ou_step(noise, k, actors.sigma[:, None])
      actions = agent.act(agent_state, env_state.obs, noise)
      nxt = step_envs(models, env_state, actions)
      ends = nxt.terminated | nxt.truncated
      record = Steps(
        obs=env_state.obs,
        actions=actions,
        rewards=nxt.reward,
        terminated=nxt.terminated,
        ends=ends,
        final_obs=nxt.info["final_obs"],
      )
      episode_return = episode_return + nxt.reward
      metrics = train.episode_metrics(nxt, ends, episode_return)
      noise = jnp.where(ends[:, None], 0.0, noise)  # a fresh episode
      episode_return = jnp.where(ends, 0.0, episode_return)
      return (nxt, noise, episode_return), (record, metrics)

    keys = jax.random.split(jax.random.fold_in(key, device()), num_steps)
    (env_state, noise, episode_return), (records, metrics) = jax.lax.scan(
      one, (env_state, actors.noise, episode_return), keys
    )
    records = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)
    metrics = jax.tree.map(jnp.sum, metrics)
    if axis_name is not None:
      metrics = jax.lax.psum(metrics, axis_name)
    return (
      (env_state, actors._replace(noise=noise), episode_return),
      records,
      metrics,
    )

  def init(key: jax.Array) -> train.TrainState:
    agent_key, env_key, prefill_key, key = jax.random.split(key, 4)
    env_key = jax.random.fold_in(env_key, device())
    env_state = jax.vmap(env.reset, in_axes=(axes, 0))(
      my_models(), jax.random.split(env_key, local_worlds)
    )
    one_obs = jax.tree.map(lambda x: x[:1], env_state.obs)
    agent_state = agent.init(agent_key, one_obs)
    example = types.Transition(
      obs_tm1=jax.tree.map(lambda x: x[0], env_state.obs),
      action_tm1=jnp.zeros((action_size,), jnp.float32),
      reward_t=jnp.float32(0),
      discount_t=jnp.float32(0),
      obs_t=jax.tree.map(lambda x: x[0], env_state.obs),
    )
    actors = Actors(
      noise=jnp.zeros((local_worlds, action_size), jnp.float32),
      sigma=mine(sigmas),
      replay=replay.init(example),
      window=None,
    )
    (env_state, actors, episode_return), window, _ = act_steps(
      my_models(),
      agent_state,
      env_state,
      actors,
      jnp.zeros((local_worlds,), jnp.float32),
      prefill_key,
      n - 1,
    )
    # `key` is the same on every device: the replay samples with it.
    return train.TrainState(
      agent=agent_state,
      env=env_state,
      buffer=actors._replace(window=window),
      episode_return=episode_return,
      key=key,
      iteration=jnp.int32(0),
    )

  learner_step = train.make_learner_step(agent.update, replay)

  def step(state: train.TrainState):
    key, act_key, learn_key = jax.random.split(state.key, 3)
    actors = state.buffer
    (env_state, actors, episode_return), records, metrics = act_steps(
      my_models(),
      state.agent,
      state.env,
      actors._replace(window=None),
      state.episode_return,
      act_key,
      stride,
    )
    rows = jax.tree.map(
      lambda a, b: jnp.concatenate([a, b], axis=1), state.buffer.window, records
    )
    replay_state = replay.add(
      actors.replay, n_step_transitions(rows, gamma, n, stride)
    )
    (agent_state, _), learned = jax.lax.scan(
      learner_step,
      (state.agent, replay_state),
      jax.random.split(learn_key, config.train.updates_per_iteration),
    )
    metrics.update(jax.tree.map(jnp.sum, learned))
    window = jax.tree.map(lambda x: x[:, stride:], rows)
    return (
      state._replace(
        agent=agent_state,
        env=env_state,
        buffer=actors._replace(replay=replay_state, window=window),
        episode_return=episode_return,
        key=key,
        iteration=state.iteration + 1,
      ),
      metrics,
    )

  return train.Trainer(
    init=init,
    step=step,
    evaluate=make_evaluate(task, agent, config.eval.num_episodes),
    num_iterations=config.train.num_iterations,
    env_steps_per_iteration=local_worlds * stride,
    compiler_options=robots.compiler_options(
      config.env.params.get("robot", "gripper")
    ),
  )


def n_step_transitions(
  rows: Steps, gamma: float, n: int, stride: int
) -> types.Transition:
  """[N, n - 1 + stride] steps -> the n-step transitions that start at
  each world's first `stride` steps, flattened world-major to
  [N * stride]: `reward_t` the n-step return, `discount_t` its bootstrap
  discount, `obs_t` the observation after the last step it sums."""
  ret, disc, last = jax.vmap(
    lambda r, t, e: losses.n_step_targets(r, t, e, gamma, n)
  )(rows.rewards, rows.terminated, rows.ends)
  head = lambda x: x[:, :stride]  # noqa: E731

  def at_last(x):
    index = last.reshape(last.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)

  t = types.Transition(
    obs_tm1=jax.tree.map(head, rows.obs),
    action_tm1=head(rows.actions),
    reward_t=ret,
    discount_t=disc,
    obs_t=jax.tree.map(at_last, rows.final_obs),
  )
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), t)


def make_evaluate(task, agent: ddpg.DDPG, num_episodes: int):
  """`evaluate(agent_state, key)`: greedy episodes (no noise) from the
  task's own initial states in freshly randomised worlds: `eval/return`
  and every env metric at the episode's last step (`eval/success`)."""
  env = task.env
  action_size = env.spec.action_shape[0]

  def evaluate(agent_state, key):
    world_key, reset_key = jax.random.split(key)
    models, axes = task.randomize_model(
      env.init_model(), world_key, num_episodes
    )
    state = jax.vmap(env.reset, in_axes=(axes, 0))(
      models, jax.random.split(reset_key, num_episodes)
    )
    step_envs = jax.vmap(env.step, in_axes=(axes, 0, 0))
    zero = jnp.zeros((num_episodes, action_size))

    def one(carry, _):
      state, total = carry
      nxt = step_envs(models, state, agent.act(agent_state, state.obs, zero))
      return (nxt, total + nxt.reward), None

    (final, total), _ = jax.lax.scan(
      one, (state, jnp.zeros((num_episodes,))), None, env.spec.max_episode_steps
    )
    metrics = {"eval/return": jnp.mean(total)}
    for name, value in final.metrics.items():
      metrics[f"eval/{name}"] = jnp.mean(value)
    return metrics

  return evaluate


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=("episode/success", "eval/success", "learner/critic_loss"),
    references=surreal_ppo.make_reference_fn,
  )
