"""Off-policy training as pure functions: collect with vmapped envs, learn.

`make_off_policy_train(...)` returns a `Trainer`. `trainer.step` is one
iteration (an unroll of every world, then a few learner updates), so the whole
run is `lax.scan(trainer.step, ...)` (see `train`), and the host loop in
`experiments/` scans a chunk at a time between checkpoints.

Metrics from `step` come as sums with counts, `sum/<group>/<name>` and
`count/<group>`, so that any number of steps (and devices) reduce exactly with
`reduce_metrics`: a mean over the episodes or updates that really happened.
"""

import functools
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
  # step(state) -> (state, metrics), or step(state, data) when `data` is set.
  step: Callable[..., tuple[TrainState, types.Metrics]]
  evaluate: Callable[[Any, jax.Array], types.Metrics]  # (agent state, key)
  num_iterations: int
  env_steps_per_iteration: int  # per device
  # Run a chunk's steps from the host (one compiled step, called `length`
  # times) instead of as one `lax.scan`. XLA:CPU (jax 0.10.2) runs the
  # QT-Opt conv nets ~10x slower inside a while loop than outside one
  # (measured: 1.6 s vs 0.16 s per update), so the offline trainer opts in.
  host_loop: bool = False
  # Read-only inputs of `step` (a fixed dataset on device), passed as its
  # second argument: an argument of the compiled program, never part of the
  # state, so checkpoints hold only what training changes.
  data: Any = None
  # Names `data` (e.g. its manifest's hash); a checkpoint records it and a
  # resume on other data is refused.
  data_fingerprint: str = ""
  # 0: one run. S > 0: `vmap_seeds` made every state leaf [S, ...] and
  # every metric [S], one independent run per seed in one program.
  num_seeds: int = 0
  # `evaluate` run from the host over shared `EpisodePrograms`
  # (`make_host_evaluate`, one device): the same metrics, and an env
  # program compiled once for every run that shares them. None: the host
  # compiles `evaluate` whole.
  host_evaluate: Callable[[Any, jax.Array], types.Metrics] | None = None
  # XLA options for compiling this trainer's programs (init, step chunks,
  # evaluate); None: the defaults. E.g. `envs.robots.arm7.compiler_options`
  # (XLA:CPU's fusion makes MJX kinematics of its 13-body chain
  # exponentially slow).
  compiler_options: dict[str, Any] | None = None


def step_args(trainer: Trainer, state: TrainState) -> tuple[Any, ...]:
  """The arguments of `trainer.step` for `state`: (state,) or (state, data)."""
  return (state,) if trainer.data is None else (state, trainer.data)


SEED_BATCHING = ("vmap", "unroll")


@jax.jit
def seed_slice(tree: Any, k: jax.Array | int) -> Any:
  """Run `k` of a pytree with a leading seed axis: one compiled slice of
  the whole tree (slicing leaf by leaf from the host compiles and
  dispatches a program per leaf shape)."""
  return jax.tree.map(lambda x: x[k], tree)


def vmap_seeds(
  trainer: Trainer, num_seeds: int, batching: str = "vmap"
) -> Trainer:
  """`num_seeds` independent runs as one program (the PureJaxRL pattern).

  Run k is `trainer.init(jax.random.split(key, num_seeds)[k])` and its
  steps: states and metrics gain a leading seed axis, `data` is shared
  (not copied per seed). `evaluate(agent_states, key)` evaluates every
  run in the same fresh worlds (the same key), so runs, and groups of
  runs evaluated with the same key, are compared on equal episodes.

  `batching` is how `step` runs the seeds: "vmap" (one batched program)
  or "unroll" (the seeds' steps side by side in one program, a copy of
  the step per seed). The state layout and the results are the same.
  XLA:CPU (jax 0.10.2) lowers a conv whose kernels are vmapped to a
  grouped convolution and runs it slowly: a QT-Opt update for 5 seeds took
  265 ms vmapped and 107 ms unrolled (32 px, batch 32; 694 / 183 ms with
  bootstrapped targets), at the price of a longer compile (19 s vs 7 s).
  """
  if num_seeds < 1:
    raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
  if trainer.num_seeds:
    raise ValueError("the trainer's seeds are vmapped already")
  if batching not in SEED_BATCHING:
    raise ValueError(f"batching must be one of {SEED_BATCHING}: {batching!r}")

  def init(key):
    return jax.vmap(trainer.init)(jax.random.split(key, num_seeds))

  if batching == "vmap":
    in_axes = 0 if trainer.data is None else (0, None)
    step = jax.vmap(trainer.step, in_axes=in_axes)
  else:

    def step(state, *data):
      outs = [
        trainer.step(jax.tree.map(lambda x, k=k: x[k], state), *data)
        for k in range(num_seeds)
      ]
      return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

  host_evaluate = None
  if trainer.host_evaluate is not None:

    def host_evaluate(agent_states, key):
      runs = [
        trainer.host_evaluate(seed_slice(agent_states, k), key)
        for k in range(num_seeds)
      ]
      return jax.tree.map(lambda *xs: jnp.stack(xs), *runs)

  return trainer._replace(
    init=init,
    step=step,
    evaluate=jax.vmap(trainer.evaluate, in_axes=(0, None)),
    num_seeds=num_seeds,
    host_evaluate=host_evaluate,
  )


def episode_metrics(
  state: types.EnvState, done: jax.Array, episode_return: jax.Array
) -> types.Metrics:
  """Sums over the worlds whose episode ended this step ([N] `done`): the
  return (`episode_return` includes this step's reward) and every env
  metric, with their count, in `reduce_metrics`' sum/count form."""
  metrics = {
    "sum/episode/return": jnp.sum(jnp.where(done, episode_return, 0.0)),
    "count/episode": jnp.sum(done).astype(jnp.float32),
  }
  for name, value in state.metrics.items():
    metrics[f"sum/episode/{name}"] = jnp.sum(jnp.where(done, value, 0.0))
  return metrics


def make_learner_step(update, buffer: types.Buffer):
  """`learner_step((agent_state, buffer_state), key)` for a `lax.scan` of
  learner iterations: one `update(agent_state, batch)` on a sampled batch
  once the buffer can sample, else nothing; metrics as `sum/learner/*`
  with `count/learner`."""

  def learner_step(carry, key):
    agent_state, buffer_state = carry

    def learn(agent_state):
      batch = buffer.sample(buffer_state, key)
      agent_state, metrics = update(agent_state, batch)
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

  return learner_step


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
    metrics = episode_metrics(next_state, done, episode_return)
    episode_return = jnp.where(done, 0.0, episode_return)
    return (agent_state, next_state, episode_return), (transition, metrics)

  learner_step = make_learner_step(agent.update, buffer)

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

  # With axis_name each device runs its share of the worlds (not all).
  evaluate = make_evaluate(
    env, model, agent, num_eval_episodes, axis_name=axis_name
  )

  return Trainer(
    init=init,
    step=step,
    evaluate=evaluate,
    num_iterations=num_iterations,
    env_steps_per_iteration=num_envs * unroll_length,
  )


class OfflineData(NamedTuple):
  """A fixed dataset: episodes and their transition index.

  On one device (`offline_data`) the leaves are as commented. Split over D
  devices (`offline_data_shards`) every leaf gains a leading [D] axis:
  slice d holds episodes [d E/D, (d + 1) E/D), its own index of them
  (episode numbers local to the slice) padded to the longest slice's rows,
  and how many of those rows are real.

  With `holdout_every` = k > 0, every k-th episode (local numbers k - 1,
  2k - 1, ...) is held out: its transitions are the first `num_holdout`
  rows of `index`. A run that trains all its parameters on one loss
  samples every row; a search can fit its weights to the other rows and
  its architecture to these (`make_offline_train(holdout_batch_size=)`).
  """

  episodes: Any  # data.offline.Episodes, leaves [E, ...]
  index: jax.Array  # [R, 2] int32 (episode, step), R >= num_transitions
  num_transitions: jax.Array  # () int32, rows of `index` in use; the rest pad
  num_holdout: jax.Array  # () int32, the first rows: held-out episodes'


def _index(length: np.ndarray, holdout_every: int) -> tuple[np.ndarray, int]:
  """`offline.transition_index` with the held-out episodes' rows first."""
  index = offline.transition_index(length)
  if not holdout_every:
    return index, 0
  held = index[:, 0] % holdout_every == holdout_every - 1
  return np.concatenate([index[held], index[~held]]), int(held.sum())


def offline_data(episodes: Any, holdout_every: int = 0) -> OfflineData:
  """Host `Episodes` -> `OfflineData` on the default device; ValueError if
  the dataset holds no transitions, or none held out with `holdout_every`."""
  index, num_holdout = _index(np.asarray(episodes.length), holdout_every)
  if index.shape[0] == 0:
    raise ValueError("the dataset holds no transitions")
  if holdout_every and not 0 < num_holdout < index.shape[0]:
    raise ValueError(
      f"holding out every {holdout_every}th of {len(episodes.length)} "
      f"episodes leaves {num_holdout} of {index.shape[0]} transitions held "
      "out; both parts need some"
    )
  return OfflineData(
    episodes=jax.tree.map(jnp.asarray, episodes),
    index=jnp.asarray(index),
    num_transitions=jnp.int32(index.shape[0]),
    num_holdout=jnp.int32(num_holdout),
  )


def offline_data_shards(
  episodes: Any, num_shards: int, holdout_every: int = 0
) -> OfflineData:
  """Host `Episodes` -> `OfflineData` split into `num_shards` slices of
  consecutive episodes, as host (numpy) arrays with a leading [num_shards]
  axis (views of `episodes` where they are numpy): nothing is copied to a
  device here; `data_parallel.place_data` gives each device its slice.

  Raises:
    ValueError: (one line) when the episodes do not split evenly or a
      slice holds no transitions (or, with `holdout_every`, none held out
      or none left).
  """
  length = np.asarray(episodes.length)
  num_episodes = len(length)
  if num_shards < 1 or num_episodes % num_shards:
    raise ValueError(
      f"the dataset's {num_episodes} episodes do not split evenly over "
      f"{num_shards} devices; use a number of devices that divides it"
    )
  per_shard = num_episodes // num_shards
  parts = [
    _index(length[d * per_shard : (d + 1) * per_shard], holdout_every)
    for d in range(num_shards)
  ]
  indexes = [index for index, _ in parts]
  empty = [d for d, index in enumerate(indexes) if not len(index)]
  if empty:
    raise ValueError(
      f"the dataset's slices for devices {empty} hold no transitions"
    )
  if holdout_every:
    bad = [d for d, (i, h) in enumerate(parts) if not 0 < h < len(i)]
    if bad:
      raise ValueError(
        f"holding out every {holdout_every}th episode leaves the slices for "
        f"devices {bad} with no held-out or no other transitions"
      )
  index = np.zeros((num_shards, max(map(len, indexes)), 2), np.int32)
  for d, rows in enumerate(indexes):
    index[d, : len(rows)] = rows
  return OfflineData(
    episodes=jax.tree.map(
      lambda x: np.asarray(x).reshape((num_shards, per_shard) + x.shape[1:]),
      episodes,
    ),
    index=index,
    num_transitions=np.array([len(i) for i in indexes], np.int32),
    num_holdout=np.array([h for _, h in parts], np.int32),
  )


def make_offline_train(
  env: types.Env,
  model: types.Model,
  agent: types.Agent,
  data: OfflineData,
  *,
  batch_size: int,
  num_updates_per_iteration: int,
  num_iterations: int,
  num_eval_episodes: int,
  gamma: float | None = None,
  data_fingerprint: str = "",
  axis_name: str | None = None,
  num_devices: int = 1,
  episode_programs: "EpisodePrograms | None" = None,
  holdout_batch_size: int = 0,
) -> Trainer:
  """Off-policy RL on a fixed dataset (the Visionary protocol, spec B1.1).

  Every architecture trained on the same `data` sees the same data. The
  dataset is `Trainer.data`, an argument of `step(state, data)`, not part
  of the state: a checkpoint holds the agent, the data stream's key and
  the iteration (`TrainState.env`, `buffer` and `episode_return` are empty
  placeholders). The key is the data stream's position, so a resumed run
  draws the same batches. `env` and `model` serve evaluation only:
  `agent.act` acts greedily in fresh worlds.

  The agent's `init(key, obs, action)` takes an example batch of both
  (zeros of the dataset's shapes). With `gamma`, batches carry each
  transition's discounted Monte-Carlo return (`Transition.mc_return`) for
  agents that use it.

  Data parallel (`axis_name`, for `data_parallel.data_parallel_trainer`
  over `num_devices` devices; the agent built with the same `axis_name`):
  `data` is `offline_data_shards(episodes, num_devices)`, sharded along
  its episodes, so each device holds E / D episodes, not a copy of all
  (the paper's 50K episodes of 128 px images are ~52 GB). Each device
  draws `batch_size / num_devices` transitions from its own slice with its
  own key (the device index folded in) and the agent averages gradients,
  so one update learns from `batch_size` transitions. The batch is then
  stratified: a transition of slice d is drawn with probability
  1 / (D n_d) instead of 1 / N (n_d transitions in the slice, N in all);
  equal when slices hold equal numbers of transitions, and close for a
  large dataset of i.i.d. episodes (the collectors'), whose consecutive
  slices are random subsets. Evaluation splits its episodes over the
  devices (`make_evaluate`): the same worlds as on one device, the same
  means.

  On one device evaluation runs from the host (`Trainer.host_evaluate`)
  over `episode_programs` (`make_episode_programs(env, model,
  num_eval_episodes)`, made here unless given): runs that share them, e.g.
  a pipeline's phases, compile the env once.

  With `holdout_batch_size` > 0 (`data` laid out with held-out episodes,
  `offline_data(holdout_every=)`), each batch is `batch_size` transitions
  of the other episodes followed by `holdout_batch_size` held-out ones,
  for an agent that fits its weights to the first and its architecture
  to the second (`agents.qtopt.make_qtopt(arch_batch_size=)`).

  Raises:
    ValueError: a batch that does not split over the devices, or `data`
      laid out for another number of devices or without held-out episodes.
  """
  lead = 2 if axis_name is None else 3  # [D,] E, T(+1) before a frame
  if axis_name is None and num_devices != 1:
    raise ValueError("num_devices > 1 needs an axis_name")
  if batch_size % num_devices:
    raise ValueError(
      f"batch_size {batch_size} does not split evenly over {num_devices} "
      "devices"
    )
  want = () if axis_name is None else (num_devices,)
  if np.shape(data.num_transitions) != want:
    raise ValueError(
      f"data laid out for {np.shape(data.num_transitions) or 'one device'}, "
      f"expected {want or 'one device'}: use "
      + (
        "offline_data(episodes)"
        if axis_name is None
        else f"offline_data_shards(episodes, {num_devices})"
      )
    )
  if holdout_batch_size % num_devices:
    raise ValueError(
      f"holdout_batch_size {holdout_batch_size} does not split evenly over "
      f"{num_devices} devices"
    )
  if holdout_batch_size and not np.all(np.asarray(data.num_holdout) > 0):
    raise ValueError(
      "holdout_batch_size needs data with held-out episodes "
      "(offline_data(episodes, holdout_every=k))"
    )
  local_batch = batch_size // num_devices
  sample = offline.make_sampler(local_batch, gamma)
  if holdout_batch_size:
    sample_holdout = offline.make_sampler(
      holdout_batch_size // num_devices, gamma
    )
  # Shapes only: init must not close over the dataset (it would become a
  # constant of the compiled init).
  example_obs = jax.tree.map(
    lambda x: jnp.zeros((local_batch,) + x.shape[lead:], x.dtype),
    data.episodes.obs,
  )
  example_action = jnp.zeros(
    (local_batch,) + data.episodes.action.shape[lead:],
    data.episodes.action.dtype,
  )

  def init(key: jax.Array) -> TrainState:
    agent_key, data_key = jax.random.split(key)
    if axis_name is not None:  # the same agent, each device its own batches
      data_key = jax.random.fold_in(data_key, jax.lax.axis_index(axis_name))
    return TrainState(
      agent=agent.init(agent_key, example_obs, example_action),
      env=jnp.zeros((), jnp.float32),  # no worlds are kept between steps
      buffer=jnp.zeros((), jnp.float32),  # the data is an argument
      episode_return=jnp.zeros((), jnp.float32),  # no episodes run here
      key=data_key,
      iteration=jnp.zeros((), jnp.int32),
    )

  def step(
    state: TrainState, data: OfflineData
  ) -> tuple[TrainState, types.Metrics]:
    # With axis_name, `data` is this device's slice (leading axis dropped).
    def update(agent_state, key):
      if holdout_batch_size:
        key, held_key = jax.random.split(key)
        batch = sample(
          data.episodes,
          data.index,
          key,
          data.num_transitions,
          first_row=data.num_holdout,
        )
        held = sample_holdout(
          data.episodes, data.index, held_key, data.num_holdout
        )
        batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, held)
      else:
        batch = sample(data.episodes, data.index, key, data.num_transitions)
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

  host_evaluate = None
  if axis_name is None:
    if episode_programs is None:
      episode_programs = make_episode_programs(env, model, num_eval_episodes)
    if episode_programs.num_episodes != num_eval_episodes:
      raise ValueError(
        f"episode_programs run {episode_programs.num_episodes} worlds, "
        f"evaluation needs {num_eval_episodes}"
      )
    host_evaluate = make_host_evaluate(episode_programs, agent)
  return Trainer(
    init=init,
    step=step,
    evaluate=make_evaluate(
      env, model, agent, num_eval_episodes, axis_name=axis_name
    ),
    num_iterations=num_iterations,
    env_steps_per_iteration=0,
    host_loop=True,
    data=data,
    data_fingerprint=data_fingerprint,
    host_evaluate=host_evaluate,
  )


class Episodes(NamedTuple):
  """What `make_run_episodes` reports, per episode."""

  returns: jax.Array  # [N] float32
  final: types.Metrics  # {name: [N]} env metrics at each episode's end
  images: jax.Array | None  # [T + 1, N, H, W, 3] uint8 with `record`
  valid: jax.Array  # [N] bool; False: a device's padding copy of a world


class EpisodeCarry(NamedTuple):
  """Side-by-side episodes between two steps (`make_run_episodes`)."""

  env_state: types.EnvState
  done: jax.Array  # [N] bool: ended (no auto-reset; the world keeps going)
  returns: jax.Array  # [N] float32, summed until the episode ended
  final: types.Metrics  # env metrics [N], read at each episode's end
  valid: jax.Array  # [N] bool: a world this device really runs


def _episode_start(env, num_episodes, model_axes=None, axis_name=None):
  """`start(model, key) -> (EpisodeCarry, step_keys [T])`: fresh worlds
  drawn from `key` and the keys of their T steps' actions."""

  def start(model, key):
    reset_key, key = jax.random.split(key)
    reset_keys = jax.random.split(reset_key, num_episodes)
    valid = jnp.ones((num_episodes,), bool)
    if axis_name is not None:
      num_local = -(-num_episodes // jax.lax.axis_size(axis_name))
      device = jax.lax.axis_index(axis_name)
      rows = device * num_local + jnp.arange(num_local)
      reset_keys = reset_keys[rows % num_episodes]
      valid = rows < num_episodes
      key = jax.random.fold_in(key, device)
    env_state = jax.vmap(env.reset, in_axes=(model_axes, 0))(model, reset_keys)
    num = reset_keys.shape[0]
    carry = EpisodeCarry(
      env_state=env_state,
      done=jnp.zeros((num,), bool),
      returns=jnp.zeros((num,), jnp.float32),
      final=jax.tree.map(jnp.zeros_like, env_state.metrics),
      valid=valid,
    )
    return carry, jax.random.split(key, env.spec.max_episode_steps)

  return start


def _episode_advance(env, model_axes=None):
  """`advance(model, carry, actions) -> carry`: every world steps once."""
  raw_step = jax.vmap(env.step, in_axes=(model_axes, 0, 0))

  def advance(model, carry, actions):
    next_state = raw_step(model, carry.env_state, actions)
    ends = ~carry.done & (next_state.terminated | next_state.truncated)
    return carry._replace(
      env_state=next_state,
      done=carry.done | ends,
      returns=carry.returns + jnp.where(carry.done, 0.0, next_state.reward),
      final=jax.tree.map(
        lambda f, m: jnp.where(ends, m, f), carry.final, next_state.metrics
      ),
    )

  return advance


def make_run_episodes(
  env: types.Env,
  model: types.Model,
  num_episodes: int,
  model_axes: Any = None,
  record: bool = False,
  axis_name: str | None = None,
) -> Callable[[Callable[..., jax.Array], jax.Array], Episodes]:
  """`run(act, key) -> Episodes`: `num_episodes` fresh episodes side by side
  (vmapped, no auto-reset) for `env.spec.max_episode_steps` steps.

  `act(env_states, key) -> actions [N, ...]` chooses every world's action
  (from observations or, for scripted references, privileged state). With
  `model_axes`, `model` is a batch of per-world models (one per episode).
  With `record`, the observations' images are returned (for videos).

  With `axis_name` (inside `shard_map` over D devices) the `num_episodes`
  worlds that one device would draw from `key` are dealt out: device d runs
  worlds [d n, (d + 1) n) of them, n = ceil(num_episodes / D), and reports
  n episodes; rows past `num_episodes` repeat earlier worlds and are
  marked `valid=False`. `act` gets a key with the device index folded in.

  `make_episode_programs` runs the same episodes step by step from the
  host, as programs shared by every caller.
  """
  if axis_name is not None and model_axes is not None:
    raise ValueError("per-world models are not split over devices")
  start = _episode_start(env, num_episodes, model_axes, axis_name)
  advance = _episode_advance(env, model_axes)

  def run(act, key: jax.Array) -> Episodes:
    def body(carry, key):
      carry = advance(model, carry, act(carry.env_state, key))
      return carry, carry.env_state.obs["image"] if record else None

    first, keys = start(model, key)
    last, images = jax.lax.scan(body, first, keys)
    if record:
      images = jnp.concatenate([first.env_state.obs["image"][None], images])
    return Episodes(last.returns, last.final, images, last.valid)

  return run


class EpisodePrograms(NamedTuple):
  """`make_run_episodes`'s episodes as two compiled programs, run step by
  step from the host (`run_episodes`).

  The MJX step with the camera is most of an evaluation's compile time
  (~20 s on a 2-core CPU; an agent's act is a few seconds): built once and
  shared, every evaluation, reference and video of the same env and world
  count compiles it once, whatever acts.
  """

  start: Callable[..., tuple[EpisodeCarry, jax.Array]]  # (model, key)
  advance: Callable[..., EpisodeCarry]  # (model, carry, actions)
  model: types.Model
  num_episodes: int


def make_episode_programs(
  env: types.Env, model: types.Model, num_episodes: int
) -> EpisodePrograms:
  """`num_episodes` worlds of `env` (one model), jitted once."""
  return EpisodePrograms(
    start=jax.jit(_episode_start(env, num_episodes)),
    advance=jax.jit(_episode_advance(env)),
    model=model,
    num_episodes=num_episodes,
  )


def run_episodes(
  programs: EpisodePrograms,
  act: Callable[[types.EnvState, jax.Array], jax.Array],
  key: jax.Array,
  record: bool = False,
) -> Episodes:
  """`make_run_episodes(...)(act, key)` from the host: the same worlds,
  keys and episodes, one `advance` per step. `act` should be jitted."""
  carry, keys = programs.start(programs.model, key)
  images = [carry.env_state.obs["image"]] if record else None
  for step_key in keys:
    actions = act(carry.env_state, step_key)
    carry = programs.advance(programs.model, carry, actions)
    if record:
      images.append(carry.env_state.obs["image"])
  images = jnp.stack(images) if record else None
  return Episodes(carry.returns, carry.final, images, carry.valid)


def _eval_metrics(
  episodes: Episodes, axis_name: str | None = None
) -> types.Metrics:
  """Means over the valid episodes of all devices."""

  def mean(x):
    if axis_name is None:
      return jnp.mean(x)
    total = jnp.sum(jnp.where(episodes.valid, x, 0.0))
    count = jnp.sum(episodes.valid.astype(jnp.float32))
    total, count = jax.lax.psum((total, count), axis_name)
    return total / count

  metrics = {"eval/return": mean(episodes.returns)}
  metrics.update({f"eval/{k}": mean(v) for k, v in episodes.final.items()})
  return metrics


def make_evaluate(
  env: types.Env,
  model: types.Model,
  agent: types.Agent,
  num_eval_episodes: int,
  model_axes: Any = None,
  axis_name: str | None = None,
) -> Callable[[Any, jax.Array], types.Metrics]:
  """`evaluate(agent_state, key)`: greedy episodes in fresh worlds.

  Returns `eval/return` and `eval/<metric>` for every env metric, read at
  each episode's end, averaged over `num_eval_episodes` episodes
  (`make_run_episodes`). The same key gives the same worlds, whatever acts.
  With `axis_name` (inside `shard_map`), the episodes are split over the
  devices, each device running its share of the same worlds, and the means
  are over all of them: the numbers one device would report, up to the
  randomness of `agent.act`.
  """
  run = make_run_episodes(
    env, model, num_eval_episodes, model_axes, axis_name=axis_name
  )

  def evaluate(agent_state: Any, key: jax.Array) -> types.Metrics:
    def act(env_state, key):
      action, _ = agent.act(agent_state, env_state.obs, key, deterministic=True)
      return action

    return _eval_metrics(run(act, key), axis_name)

  return evaluate


def make_greedy_act(agent: types.Agent) -> Callable[..., jax.Array]:
  """`act(agent_state, env_states, key) -> actions`, jitted: the agent's
  deterministic act on every world's observation (`run_episodes`)."""

  @jax.jit
  def act(agent_state, env_state, key):
    return agent.act(agent_state, env_state.obs, key, deterministic=True)[0]

  return act


def make_host_evaluate(
  programs: EpisodePrograms, agent: types.Agent
) -> Callable[[Any, jax.Array], types.Metrics]:
  """`make_evaluate`'s evaluation (one device) run from the host over
  shared `programs`: the same worlds and metrics; only the agent's greedy
  act is compiled here."""

  act = make_greedy_act(agent)

  def evaluate(agent_state: Any, key: jax.Array) -> types.Metrics:
    act_now = functools.partial(act, agent_state)
    return _eval_metrics(run_episodes(programs, act_now, key))

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


def _first_nonfinite(metrics: types.Metrics, length: int) -> jax.Array:
  """Index of the first of `length` steps whose metrics (leaves
  [length, ...], any trailing seed axes) hold a NaN or inf, else -1."""
  finite = jnp.stack(
    [jnp.isfinite(v).reshape(length, -1).all(-1) for v in metrics.values()]
  ).all(0)  # [length]
  return jnp.where(jnp.all(finite), -1, jnp.argmin(finite)).astype(jnp.int32)


def make_chunk(
  step: Callable[..., tuple[TrainState, types.Metrics]],
  length: int,
) -> Callable[..., tuple[TrainState, types.Metrics]]:
  """`length` steps as one scan; metrics reduced over the chunk.

  `chunk(state, *data)` passes `data` (e.g. `Trainer.data`) to every step.
  Adds `first_nonfinite`: the index within the chunk of the first step whose
  summed metrics hold a NaN or inf, or -1. The host names that step.
  """

  def chunk(state: TrainState, *data):
    state, metrics = jax.lax.scan(
      lambda s, _: step(s, *data), state, length=length
    )
    totals = reduce_metrics(jax.tree.map(lambda x: jnp.sum(x, 0), metrics))
    return state, dict(
      totals, first_nonfinite=_first_nonfinite(metrics, length)
    )

  return chunk


def make_host_chunk(
  step: Callable[..., tuple[TrainState, types.Metrics]],
  length: int,
) -> Callable[..., tuple[TrainState, types.Metrics]]:
  """`make_chunk`'s contract with the steps called from the host.

  `step` is a compiled step (e.g. `jax.jit(trainer.step).lower(s).compile()`).
  Metrics stay on device until the end of the chunk, then reduce exactly as
  in `make_chunk`, `first_nonfinite` included.
  """

  def chunk(state: TrainState, *data):
    history = []
    for _ in range(length):
      state, metrics = step(state, *data)
      history.append(metrics)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *history)
    totals = reduce_metrics(jax.tree.map(lambda x: jnp.sum(x, 0), stacked))
    return state, dict(
      totals, first_nonfinite=_first_nonfinite(stacked, length)
    )

  return chunk


def train(trainer: Trainer, key: jax.Array):
  """The whole run as one pure function: `jax.jit(jax.vmap(...))` for seeds."""
  state = trainer.init(key)
  data = () if trainer.data is None else (trainer.data,)
  state, metrics = jax.lax.scan(
    lambda s, _: trainer.step(s, *data), state, length=trainer.num_iterations
  )
  return state, metrics
