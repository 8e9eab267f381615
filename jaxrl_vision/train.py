"""Off-policy training as pure functions: collect with vmapped envs, learn.

`make_off_policy_train(...)` returns a `Trainer`. `trainer.step` is one
iteration (an unroll of every world, then a few learner updates), so the whole
run is `lax.scan(trainer.step, ...)` (see `train`), and the host loop in
`experiments/` scans a chunk at a time between checkpoints.

Metrics from `step` come as sums with counts, `sum/<group>/<name>` and
`count/<group>`, so that any number of steps (and devices) reduce exactly with
`reduce_metrics`: a mean over the episodes or updates that really happened.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_vision import types
from jaxrl_vision.data import offline
from jaxrl_vision.envs import wrappers


class TrainState(NamedTuple):
  agent: Any  # the agent's state; identical on every device
  env: types.EnvState  # [N, ...] this device's worlds, mid-episode
  buffer: Any  # this device's replay contents
  episode_return: jax.Array  # [N] float32, return so far of each episode
  key: jax.Array  # this device's collection randomness
  iteration: jax.Array  # () int32, completed iterations


# Which TrainState fields differ across devices under data parallelism.
PER_DEVICE = TrainState(
  agent=False,
  env=True,
  buffer=True,
  episode_return=True,
  key=True,
  iteration=False,
)


class Trainer(NamedTuple):
  init: Callable[[jax.Array], TrainState]
  step: Callable[[TrainState], tuple[TrainState, types.Metrics]]
  evaluate: Callable[[Any, jax.Array], types.Metrics]  # (agent state, key)
  num_iterations: int
  env_steps_per_iteration: int  # per device
  # Run a chunk's steps from the host (one compiled step, called `length`
  # times) instead of as one `lax.scan`. XLA:CPU (jax 0.10.2) runs the
  # QT-Opt conv nets ~10x slower inside a while loop than outside one
  # (measured: 1.6 s vs 0.16 s per update), so the offline trainer opts in.
  host_loop: bool = False


def make_off_policy_train(
  env: types.Env,
  model: types.Model,
  agent: types.Agent,
  buffer: types.Buffer,
  *,
  num_envs: int,
  unroll_length: int,
  num_updates_per_iteration: int,
  num_iterations: int,
  num_eval_episodes: int,
  axis_name: str | None = None,
) -> Trainer:
  """Builds the trainer. `model` is shared by all worlds (no randomisation)."""
  collect_env = wrappers.auto_reset(env)
  reset = jax.vmap(collect_env.reset, in_axes=(None, 0))
  env_step = jax.vmap(collect_env.step, in_axes=(None, 0, 0))

  def init(key: jax.Array) -> TrainState:
    agent_key, key = jax.random.split(key)  # identical agent on every device
    if axis_name is not None:  # distinct worlds and samples per device
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    reset_key, key = jax.random.split(key)
    env_state = reset(model, jax.random.split(reset_key, num_envs))
    first = jax.tree.map(lambda x: x[0], env_state.obs)  # obs may be a pytree
    agent_state = agent.init(agent_key, jax.tree.map(lambda x: x[None], first))
    example = types.Transition(
      obs_tm1=first,
      action_tm1=jnp.zeros(env.spec.action_shape, _action_dtype(env)),
      reward_t=jnp.float32(0),
      discount_t=jnp.float32(0),
      obs_t=first,
    )
    return TrainState(
      agent=agent_state,
      env=env_state,
      buffer=buffer.init(example),
      episode_return=jnp.zeros((num_envs,), jnp.float32),
      key=key,
      iteration=jnp.int32(0),
    )

  def collect_step(carry, key):
    agent_state, env_state, episode_return = carry
    action, _ = agent.act(agent_state, env_state.obs, key)
    next_state = env_step(model, env_state, action)
    transition = types.Transition(
      obs_tm1=env_state.obs,
      action_tm1=action,
      reward_t=next_state.reward,
      discount_t=1.0 - next_state.terminated.astype(jnp.float32),
      obs_t=next_state.info["final_obs"],
    )
    done = next_state.terminated | next_state.truncated  # [N]
    episode_return = episode_return + next_state.reward
    metrics = {
      "sum/episode/return": jnp.sum(jnp.where(done, episode_return, 0.0)),
      "count/episode": jnp.sum(done).astype(jnp.float32),
    }
    for name, value in next_state.metrics.items():
      metrics[f"sum/episode/{name}"] = jnp.sum(jnp.where(done, value, 0.0))
    episode_return = jnp.where(done, 0.0, episode_return)
    return (agent_state, next_state, episode_return), (transition, metrics)

  def learner_step(carry, key):
    agent_state, buffer_state = carry

    def learn(agent_state):
      batch = buffer.sample(buffer_state, key)
      agent_state, metrics = agent.update(agent_state, batch)
      metrics = {f"sum/learner/{k}": v for k, v in metrics.items()}
      return agent_state, dict(metrics, **{"count/learner": jnp.float32(1)})

    def skip(agent_state):
      shapes = jax.eval_shape(learn, agent_state)[1]
      return agent_state, jax.tree.map(jnp.zeros_like, shapes)

    # Every device holds the same number of items, so all take the same branch
    # and the agent's collectives stay in step.
    agent_state, metrics = jax.lax.cond(
      buffer.can_sample(buffer_state), learn, skip, agent_state
    )
    return (agent_state, buffer_state), metrics

  def step(state: TrainState) -> tuple[TrainState, types.Metrics]:
    key, collect_key, learn_key = jax.random.split(state.key, 3)
    (agent_state, env_state, episode_return), (traj, collect_metrics) = (
      jax.lax.scan(
        collect_step,
        (state.agent, state.env, state.episode_return),
        jax.random.split(collect_key, unroll_length),
      )
    )  # traj: [T, N, ...]
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), traj)
    buffer_state = buffer.add(state.buffer, flat)
    (agent_state, _), learn_metrics = jax.lax.scan(
      learner_step,
      (agent_state, buffer_state),
      jax.random.split(learn_key, num_updates_per_iteration),
    )
    collect_metrics = jax.tree.map(jnp.sum, collect_metrics)
    if axis_name is not None:  # episodes happen on every device
      collect_metrics = jax.lax.psum(collect_metrics, axis_name)
    metrics = dict(collect_metrics, **jax.tree.map(jnp.sum, learn_metrics))
    new_state = TrainState(
      agent=agent_state,
      env=env_state,
      buffer=buffer_state,
      episode_return=episode_return,
      key=key,
      iteration=state.iteration + 1,
    )
    return new_state, metrics

  evaluate = make_evaluate(env, model, agent, num_eval_episodes)

  return Trainer(
    init=init,
    step=step,
    evaluate=evaluate,
    num_iterations=num_iterations,
    env_steps_per_iteration=num_envs * unroll_length,
  )


class OfflineData(NamedTuple):
  """A fixed dataset on device: episodes and their transition index."""

  episodes: Any  # data.offline.Episodes
  index: jax.Array  # [num_transitions, 2] int32 (episode, step)


def make_offline_train(
  env: types.Env,
  model: types.Model,
  agent: types.Agent,
  episodes: Any,
  *,
  batch_size: int,
  num_updates_per_iteration: int,
  num_iterations: int,
  num_eval_episodes: int,
  gamma: float | None = None,
) -> Trainer:
  """Off-policy RL on a fixed dataset (the Visionary protocol, spec B1.1).

  Every architecture trained on the same `episodes` sees the same data.
  The dataset lives in `TrainState.buffer` (so it is an argument of the
  compiled step, not a constant, and a checkpoint is a complete run); the
  data stream's position is `TrainState.key`, so a resumed run draws the
  same batches. `env` and `model` serve evaluation only: `agent.act` acts
  greedily in fresh worlds.

  The agent's `init(key, obs, action)` takes an example batch of both.
  With `gamma`, batches carry each transition's discounted Monte-Carlo
  return (`Transition.mc_return`) for agents that use it.
  """
  sample = offline.make_sampler(batch_size, gamma)
  index = offline.transition_index(np.asarray(episodes.length))
  if index.shape[0] == 0:
    raise ValueError("the dataset holds no transitions")

  def init(key: jax.Array) -> TrainState:
    agent_key, data_key, example_key = jax.random.split(key, 3)
    data = OfflineData(
      episodes=jax.tree.map(jnp.asarray, episodes), index=jnp.asarray(index)
    )
    example = sample(data.episodes, data.index, example_key)
    return TrainState(
      agent=agent.init(agent_key, example.obs_tm1, example.action_tm1),
      env=jnp.zeros((), jnp.float32),  # no worlds are kept between steps
      buffer=data,
      episode_return=jnp.zeros((), jnp.float32),  # no episodes run here
      key=data_key,
      iteration=jnp.zeros((), jnp.int32),
    )

  def step(state: TrainState) -> tuple[TrainState, types.Metrics]:
    def update(agent_state, key):
      batch = sample(state.buffer.episodes, state.buffer.index, key)
      # Materialise the batch: without the barrier XLA:CPU fuses the image
      # gather into the network's first consumers and redoes it per use
      # (20x slower steps, measured).
      batch = jax.lax.optimization_barrier(batch)
      agent_state, metrics = agent.update(agent_state, batch)
      metrics = {f"sum/learner/{k}": v for k, v in metrics.items()}
      return agent_state, dict(metrics, **{"count/learner": jnp.float32(1)})

    key, data_key = jax.random.split(state.key)
    agent_state, totals = state.agent, []
    # A Python loop, not a scan: see `Trainer.host_loop`.
    for update_key in jax.random.split(data_key, num_updates_per_iteration):
      agent_state, metrics = update(agent_state, update_key)
      totals.append(metrics)
    metrics = jax.tree.map(lambda *xs: sum(xs), *totals)
    return state._replace(
      agent=agent_state, key=key, iteration=state.iteration + 1
    ), metrics

  return Trainer(
    init=init,
    step=step,
    evaluate=make_evaluate(env, model, agent, num_eval_episodes),
    num_iterations=num_iterations,
    env_steps_per_iteration=0,
    host_loop=True,
  )


def make_evaluate(
  env: types.Env,
  model: types.Model,
  agent: types.Agent,
  num_eval_episodes: int,
  model_axes: Any = None,
) -> Callable[[Any, jax.Array], types.Metrics]:
  """`evaluate(agent_state, key)`: greedy episodes in fresh worlds.

  Runs `num_eval_episodes` episodes side by side (vmapped, no auto-reset)
  for `env.spec.max_episode_steps` steps and returns `eval/return` and
  `eval/<metric>` for every env metric, read at each episode's end. With
  `model_axes`, `model` is a batch of per-world models (one per episode).
  """

  def evaluate(agent_state: Any, key: jax.Array) -> types.Metrics:
    """Greedy returns over `num_eval_episodes` fresh episodes (no auto-reset)."""
    reset_key, key = jax.random.split(key)
    env_state = jax.vmap(env.reset, in_axes=(model_axes, 0))(
      model, jax.random.split(reset_key, num_eval_episodes)
    )
    raw_step = jax.vmap(env.step, in_axes=(model_axes, 0, 0))

    def body(carry, key):
      env_state, done, ret, final = carry
      action, _ = agent.act(agent_state, env_state.obs, key, deterministic=True)
      next_state = raw_step(model, env_state, action)
      ret = ret + jnp.where(done, 0.0, next_state.reward)
      ends = ~done & (next_state.terminated | next_state.truncated)
      final = jax.tree.map(
        lambda f, m: jnp.where(ends, m, f), final, next_state.metrics
      )
      done = done | ends
      return (next_state, done, ret, final), None

    zeros = jnp.zeros((num_eval_episodes,), jnp.float32)
    carry = (
      env_state,
      jnp.zeros((num_eval_episodes,), bool),
      zeros,
      jax.tree.map(jnp.zeros_like, env_state.metrics),
    )
    (_, _, ret, final), _ = jax.lax.scan(
      body, carry, jax.random.split(key, env.spec.max_episode_steps)
    )
    metrics = {"eval/return": jnp.mean(ret)}
    metrics.update({f"eval/{k}": jnp.mean(v) for k, v in final.items()})
    return metrics

  return evaluate


def _action_dtype(env: types.Env):
  return jnp.int32 if env.spec.num_actions else jnp.float32


def reduce_metrics(metrics: types.Metrics) -> types.Metrics:
  """Turns summed metrics into means: `sum/g/x` / `count/g` -> `g/x`.

  Works on one step's metrics or on sums over many steps. A group with no
  events (count 0) reduces to NaN; hosts drop such groups before logging.
  Keys without a `sum/` or `count/` prefix pass through.
  """
  out = {}
  for name, value in metrics.items():
    if name.startswith("sum/"):
      group = name.split("/")[1]
      count = metrics[f"count/{group}"]
      out[name[4:]] = jnp.where(
        count > 0, value / jnp.maximum(count, 1), jnp.nan
      )
    elif name.startswith("count/"):
      out[name[6:] + "/count"] = value
    else:
      out[name] = value
  return out


def make_chunk(
  step: Callable[[TrainState], tuple[TrainState, types.Metrics]],
  length: int,
) -> Callable[[TrainState], tuple[TrainState, types.Metrics]]:
  """`length` steps as one scan; metrics reduced over the chunk.

  Adds `first_nonfinite`: the index within the chunk of the first step whose
  summed metrics hold a NaN or inf, or -1. The host names that step.
  """

  def chunk(state: TrainState):
    state, metrics = jax.lax.scan(lambda s, _: step(s), state, length=length)
    finite = jnp.all(
      jnp.stack([jnp.isfinite(v) for v in metrics.values()]), axis=0
    )  # [length]
    first_bad = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
    totals = reduce_metrics(jax.tree.map(jnp.sum, metrics))
    return state, dict(totals, first_nonfinite=first_bad.astype(jnp.int32))

  return chunk


def make_host_chunk(
  step: Callable[[TrainState], tuple[TrainState, types.Metrics]],
  length: int,
) -> Callable[[TrainState], tuple[TrainState, types.Metrics]]:
  """`make_chunk`'s contract with the steps called from the host.

  `step` is a compiled step (e.g. `jax.jit(trainer.step).lower(s).compile()`).
  Metrics stay on device until the end of the chunk, then reduce exactly as
  in `make_chunk`, `first_nonfinite` included.
  """

  def chunk(state: TrainState):
    history = []
    for _ in range(length):
      state, metrics = step(state)
      history.append(metrics)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *history)
    finite = jnp.all(
      jnp.stack([jnp.isfinite(v) for v in stacked.values()]), axis=0
    )
    first_bad = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
    totals = reduce_metrics(jax.tree.map(lambda x: jnp.sum(x, 0), stacked))
    return state, dict(totals, first_nonfinite=first_bad.astype(jnp.int32))

  return chunk


def train(trainer: Trainer, key: jax.Array):
  """The whole run as one pure function: `jax.jit(jax.vmap(...))` for seeds."""
  state = trainer.init(key)
  state, metrics = jax.lax.scan(
    lambda s, _: trainer.step(s), state, length=trainer.num_iterations
  )
  return state, metrics
