"""Surreal-ES on any registered env with low-dim observations (spec
surreal.md §1.4, §1.6; Fig. 3.2b's synchronous form).

One iteration: `agents.es` perturbs theta into `agent.population_size`
antithetic members from the iteration's key (the same key on every
device), each device runs one episode for each of its population_size / D
members (vmapped; a member's episode starts from its own reset key and
stops at its end, no auto-reset), the returns alone are gathered across
devices (`all_gather`, 2P floats; the observation sums are `psum`med), and
every device applies the same update, so theta stays identical everywhere
without a parameter broadcast.
"""

import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import validation as v
from jaxrl_vision.agents.es import agent as es
from jaxrl_vision.envs import registry
from jaxrl_vision.networks import policies


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  v.one_of(config, "env.name", registry.env_names())
  env = registry.make_env(
    config.env.name,
    **v.kwargs_for(
      config, "env.params", registry.get_env_factory(config.env.name)
    ),
  )
  if env.spec.num_actions or len(env.spec.obs_shape) != 1:
    raise v.ConfigError(
      "env.name",
      config.env.name,
      "ES needs continuous actions and low-dim observations",
    )
  v.kwargs_for(config, "agent", es.make_es)
  pop = v.positive_int(config, "agent.population_size")
  if pop % 2 or pop % num_devices:
    raise v.ConfigError(
      "agent.population_size",
      pop,
      f"must be even (antithetic pairs) and split over {num_devices} devices",
    )
  v.number_in(
    config, "agent.sigma", 0, float("inf"), low_open=True, high_open=True
  )
  v.positive_int(config, "train.num_iterations")
  v.positive_int(config, "eval.num_episodes")


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  env = registry.make_env(config.env.name, **config.env.params)
  action_size = env.spec.action_shape[0]
  agent = es.make_es(action_size, **config.agent)
  population = config.agent.population_size
  local = population // num_devices
  length = env.spec.max_episode_steps
  model = env.init_model()

  def device():
    return 0 if axis_name is None else jax.lax.axis_index(axis_name)

  def episode(params, stats, key, noisy):
    """One episode of `params` from reset(key): (return, ObsStats of its
    steps, its length)."""
    reset_key, act_key = jax.random.split(key)
    state = env.reset(model, reset_key)

    def one(carry, k):
      state, alive, total = carry
      obs = policies.low_dim(jax.tree.map(lambda x: x[None], state.obs), 1)
      action = agent.act(params, stats, obs, k if noisy else None)[0]
      nxt = env.step(model, state, action)
      total = total + jnp.where(alive, nxt.reward, 0.0)
      seen = (obs[0], alive)
      alive = alive & ~(nxt.terminated | nxt.truncated)
      return (nxt, alive, total), seen

    (_, _, total), (obs, alive) = jax.lax.scan(
      one,
      (state, jnp.bool_(True), jnp.float32(0)),
      jax.random.split(act_key, length),
    )
    return total, es.obs_stats(obs, alive), jnp.sum(alive)

  def init(key: jax.Array) -> train.TrainState:
    agent_key, key = jax.random.split(key)
    obs_size = env.spec.obs_shape[0]
    return train.TrainState(
      agent=agent.init(agent_key, obs_size),
      env=jnp.zeros((1,), jnp.float32),  # episodes live inside a step
      buffer=jnp.zeros((1,), jnp.float32),
      episode_return=jnp.zeros((1,), jnp.float32),
      key=key,  # the same on every device: the population's key
      iteration=jnp.int32(0),
    )

  def step(state: train.TrainState):
    key, ask_key, episode_key = jax.random.split(state.key, 3)
    members = agent.ask(state.agent, ask_key)
    start = device() * local
    mine = jax.tree.map(
      lambda x: jax.lax.dynamic_slice_in_dim(x, start, local), members
    )
    keys = jax.vmap(lambda i: jax.random.fold_in(episode_key, i))(
      start + jnp.arange(local)
    )
    returns, seen, steps = jax.vmap(
      lambda p, k: episode(p, state.agent.obs_stats, k, True)
    )(mine, keys)
    seen = jax.tree.map(lambda x: jnp.sum(x, 0), seen)
    steps = jnp.sum(steps)
    if axis_name is not None:  # only returns (and obs sums) travel
      returns = jax.lax.all_gather(returns, axis_name, tiled=True)
      seen, steps = jax.lax.psum((seen, steps), axis_name)
    agent_state, learned = agent.tell(state.agent, ask_key, returns, seen)
    metrics = {f"sum/es/{k}": x for k, x in learned.items()}
    metrics["count/es"] = jnp.float32(1)
    metrics["sum/episode/return"] = jnp.sum(returns)
    metrics["count/episode"] = jnp.float32(population)
    metrics["sum/es/env_steps"] = steps.astype(jnp.float32)
    return state._replace(
      agent=agent_state, key=key, iteration=state.iteration + 1
    ), metrics

  def evaluate(agent_state, key):
    """Greedy episodes of theta (no action noise) from fresh resets."""
    keys = jax.random.split(key, config.eval.num_episodes)
    returns, _, _ = jax.vmap(
      lambda k: episode(agent_state.params, agent_state.obs_stats, k, False)
    )(keys)
    return {"eval/return": jnp.mean(returns)}

  return train.Trainer(
    init=init,
    step=step,
    evaluate=evaluate,
    num_iterations=config.train.num_iterations,
    env_steps_per_iteration=local * length,  # at most (episodes may end early)
  )


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=("episode/return", "eval/return", "es/grad_norm"),
  )
