"""Surreal-PPO on a Robotics-Suite task (spec surreal.md §1.2, §4).

The actor fleet is `env.num_worlds` vmapped MJX worlds (dynamics
randomised per world) acting with the published parameters, each with its
own log-std jitter U(-0.25, 0.25) and LSTM state. One iteration steps every
world `train.stride` times and cuts one segment of `train.segment_length`
steps per world: the last `segment_length - stride` steps of the previous
iteration (kept in `TrainState.buffer`, with the LSTM state before each
step) followed by the new ones, so consecutive segments overlap by the
GAE horizon as the reference's 25-step / stride-20 segments do. The
segments are shuffled into minibatches of `train.batch_size`, each one
learner iteration (`agents.ppo.agent.learn`).

Where a world's episode ends inside a segment, the next episode continues
in the same row: its LSTM state restarts from zeros at the first step
(`starts`), and GAE stops at the end (`losses.truncated_gae`), so nothing
crosses the boundary; the reference instead clears its window and drops
those positions.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import mujoco

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import types
from jaxrl_vision import validation as v
from jaxrl_vision.agents.ppo import agent as ppo
from jaxrl_vision.envs import render
from jaxrl_vision.envs import robots
from jaxrl_vision.envs import wrappers
from jaxrl_vision.envs.manipulation import common as manip
from jaxrl_vision.envs.suite import bimanual_lift
from jaxrl_vision.envs.suite import bimanual_peg_in_hole
from jaxrl_vision.envs.suite import bin_picking
from jaxrl_vision.envs.suite import curriculum as curriculum_lib
from jaxrl_vision.envs.suite import lift
from jaxrl_vision.envs.suite import nut_assembly
from jaxrl_vision.envs.suite import stack
from jaxrl_vision.networks import policies

TASKS = {
  "lift": lift.make_lift_task,
  "stacking": stack.make_stack_task,
  "bimanual_lifting": bimanual_lift.make_bimanual_lift_task,
  "bimanual_peg_in_hole": bimanual_peg_in_hole.make_bimanual_peg_in_hole_task,
  "bin_picking": bin_picking.make_bin_picking_task,
  "nut_assembly": nut_assembly.make_nut_assembly_task,
}
LOG_STD_JITTER = 0.25  # per-world U(-0.25, 0.25) on the log-std (§1.2.4)


class Actors(NamedTuple):
  """The worlds' acting state, [N, ...]: LSTM carry and whether the
  current observation starts an episode; the fixed log-std jitter; each
  world's demonstration resets so far (its curriculum window); the steps
  kept for the next segment ([N, K, ...], carry per step)."""

  carry: policies.Carry
  starts: jax.Array
  log_std_noise: jax.Array
  demo_counts: jax.Array
  window: ppo.Segments


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  v.one_of(config, "env.name", TASKS)
  v.kwargs_for(config, "env.params", TASKS[config.env.name])
  if "robot" in config.env.params:
    v.one_of(config, "env.params.robot", robots.ROBOTS)
  worlds = v.positive_int(config, "env.num_worlds")
  batch = v.positive_int(config, "train.batch_size")
  if batch % num_devices:
    raise v.ConfigError(
      "train.batch_size",
      batch,
      f"must split over the {num_devices} devices (each learns from its "
      "share of every minibatch)",
    )
  if worlds % batch:
    raise v.ConfigError(
      "env.num_worlds",
      worlds,
      f"must split into minibatches of train.batch_size ({batch})",
    )
  length = v.positive_int(config, "train.segment_length")
  stride = v.positive_int(config, "train.stride")
  horizon = config.agent.get("horizon", 5)
  if not 1 <= horizon <= length:
    raise v.ConfigError(
      "agent.horizon", horizon, f"must be in [1, train.segment_length={length}]"
    )
  if not 1 <= stride <= length - horizon + 1:
    raise v.ConfigError(
      "train.stride",
      stride,
      f"must be in [1, segment_length - horizon + 1 = {length - horizon + 1}] "
      "so that every step is a training position",
    )
  v.kwargs_for(config, "agent", ppo.make_ppo)
  v.number_in(config, "curriculum.alpha", 0, 1)
  for key in ("initial_window", "window_growth", "grow_every"):
    v.positive_int(config, f"curriculum.{key}")
  try:
    curriculum_lib.scheme_logits(dict(config.curriculum.ratios))
  except ValueError as e:
    raise v.ConfigError(
      "curriculum.ratios", dict(config.curriculum.ratios), str(e)
    ) from None
  v.positive_int(config, "train.num_iterations")
  v.positive_int(config, "eval.num_episodes")
  if "video" in config:
    v.non_negative_int(config, "video.num_episodes")
    v.positive_int(config, "video.image_size")


def make_task_and_agent(
  config: ml_collections.ConfigDict, axis_name: str | None = None
):
  """The config's suite task and its Surreal-PPO agent (pixels or not, as
  the task observes)."""
  task = TASKS[config.env.name](**config.env.params)
  pixels = len(task.env.spec.obs_shape) == 3
  agent = ppo.make_ppo(
    task.env.spec.action_shape[0],
    pixels=pixels,
    axis_name=axis_name,
    **config.agent,
  )
  return task, agent


def device_models(models, axes, axis_name: str | None, local_worlds: int):
  """This device's worlds' randomised models: its slice of `local_worlds`
  along every batched leaf (`axes`); all of them on one device."""
  if axis_name is None:
    return models
  start = jax.lax.axis_index(axis_name) * local_worlds
  return jax.tree.map(
    lambda a, x: (
      x if a is None else jax.lax.dynamic_slice_in_dim(x, start, local_worlds)
    ),
    axes,
    models,
    is_leaf=lambda a: a is None,
  )


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  """With `axis_name` (under `data_parallel_trainer`) each of the
  `num_devices` devices runs num_worlds / D of the worlds (its slice of the
  randomised models and of the demos) and learns from its share of every
  minibatch (`make_ppo(axis_name=...)` averages the gradients)."""
  task, agent = make_task_and_agent(config, axis_name)
  env = wrappers.auto_reset(task.env)
  num_worlds = config.env.num_worlds
  local_worlds = num_worlds // num_devices  # this device's
  length, stride = config.train.segment_length, config.train.stride
  keep = length - stride
  models, axes = task.randomize_model(
    env.init_model(), jax.random.key(config.seed), num_worlds
  )
  action_size = env.spec.action_shape[0]
  batch_size = config.train.batch_size // num_devices  # this device's share
  step_envs = jax.vmap(env.step, in_axes=(axes, 0, 0))
  options = robots.compiler_options(config.env.params.get("robot", "gripper"))
  cur = config.curriculum
  demos, fingerprint, curriculum = None, "", None
  if cur.alpha > 0:
    curriculum = curriculum_lib.make_curriculum(
      task,
      axes,
      alpha=cur.alpha,
      ratios=dict(cur.ratios),
      initial_window=cur.initial_window,
      window_growth=cur.window_growth,
      grow_every=cur.grow_every,
    )
    # One expert episode per training world, recorded once (read-only
    # `Trainer.data`, shared by the seeds), compiled with the robot's
    # options like every program that steps it.
    demo_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    demos = (
      jax.jit(
        lambda key: curriculum_lib.record_demos(
          task, models, axes, key, num_worlds, env.spec.max_episode_steps
        )
      )
      .lower(demo_key)
      .compile(compiler_options=options)(demo_key)
    )
    fingerprint = f"expert-demos-seed{config.seed}-worlds{num_worlds}"
    if axis_name is not None:  # a leading device axis: one slice each
      demos = jax.tree.map(
        lambda x: x.reshape((num_devices, local_worlds) + x.shape[1:]), demos
      )

  def my_models():
    return device_models(models, axes, axis_name, local_worlds)

  def act_steps(
    models,
    agent_state,
    env_state,
    actors,
    episode_return,
    key,
    num_steps,
    demos=None,
  ):
    """Steps every world `num_steps` times (episodes that end restart from
    a demonstration state with the curriculum's probability when `demos`
    is given); returns the records ([N, num_steps, ...]) and per-step
    episode metrics."""

    def one(carry, k):
      env_state, actors, episode_return = carry
      k, demo_key = jax.random.split(k)
      actions, behaviour, new_carry = agent.act(
        agent_state,
        actors.carry,
        env_state.obs,
        actors.starts,
        k,
        actors.log_std_noise,
      )
      nxt = step_envs(models, env_state, jnp.clip(actions, -1.0, 1.0))
      ends = nxt.terminated | nxt.truncated
      counts, used = actors.demo_counts, jnp.zeros_like(ends)
      if demos is not None:
        nxt, counts, used = curriculum.apply(
          models, demos, nxt, ends, counts, demo_key
        )
      record = ppo.Segments(
        obs=env_state.obs,
        final_obs=nxt.info["final_obs"],
        actions=actions,
        rewards=nxt.reward,
        terminated=nxt.terminated,
        ends=ends,
        starts=actors.starts,
        behaviour=behaviour,
        carry=actors.carry,
      )
      episode_return = episode_return + nxt.reward
      metrics = train.episode_metrics(nxt, ends, episode_return)
      metrics["sum/curriculum/demo_resets"] = jnp.sum(used).astype(jnp.float32)
      metrics["count/curriculum"] = jnp.sum(ends).astype(jnp.float32)
      actors = actors._replace(carry=new_carry, starts=ends, demo_counts=counts)
      episode_return = jnp.where(ends, 0.0, episode_return)
      return (nxt, actors, episode_return), (record, metrics)

    carry, (records, metrics) = jax.lax.scan(
      one,
      (env_state, actors, episode_return),
      jax.random.split(key, num_steps),
    )
    records = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)
    metrics = jax.tree.map(jnp.sum, metrics)
    if axis_name is not None:  # episodes end on every device
      metrics = jax.lax.psum(metrics, axis_name)
    return carry, records, metrics

  def init(key: jax.Array) -> train.TrainState:
    agent_key, env_key, noise_key, prefill_key, key = jax.random.split(key, 5)
    if axis_name is not None:  # the same agent, distinct worlds per device
      device = jax.lax.axis_index(axis_name)
      env_key, noise_key, prefill_key, key = (
        jax.random.fold_in(k, device)
        for k in (env_key, noise_key, prefill_key, key)
      )
    models = my_models()
    num_worlds = local_worlds
    env_state = jax.vmap(env.reset, in_axes=(axes, 0))(
      models, jax.random.split(env_key, num_worlds)
    )
    one_obs = jax.tree.map(lambda x: x[:1], env_state.obs)
    agent_state = agent.init(agent_key, one_obs)
    actors = Actors(
      carry=agent.network.initial_carry(num_worlds),
      starts=jnp.ones((num_worlds,), bool),
      log_std_noise=jax.random.uniform(
        noise_key,
        (num_worlds, action_size),
        minval=-LOG_STD_JITTER,
        maxval=LOG_STD_JITTER,
      ),
      demo_counts=jnp.zeros((num_worlds,), jnp.int32),
      window=None,
    )
    (env_state, actors, episode_return), window, _ = act_steps(
      models,
      agent_state,
      env_state,
      actors,
      jnp.zeros((num_worlds,), jnp.float32),
      prefill_key,
      keep,
    )
    # The z-filter starts from the prefill's observations (the same
    # parameters: the same key), so the first publish does not jump.
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    agent_state = agent.init(
      agent_key, one_obs, warm_obs=jax.tree.map(flat, window.obs)
    )
    return train.TrainState(
      agent=agent_state,
      env=env_state,
      buffer=actors._replace(window=window),
      episode_return=episode_return,
      key=key,
      iteration=jnp.int32(0),
    )

  def step(state: train.TrainState, demos=None):
    key, act_key, perm_key = jax.random.split(state.key, 3)
    actors = state.buffer
    (env_state, actors_next, episode_return), records, metrics = act_steps(
      my_models(),
      state.agent,
      state.env,
      actors._replace(window=None),
      state.episode_return,
      act_key,
      stride,
      demos,
    )
    rows = jax.tree.map(
      lambda a, b: jnp.concatenate([a, b], axis=1), actors.window, records
    )
    segments = rows._replace(carry=jax.tree.map(lambda c: c[:, 0], rows.carry))
    order = jax.random.permutation(perm_key, local_worlds)
    minibatches = jax.tree.map(
      lambda x: x[order].reshape((-1, batch_size) + x.shape[1:]), segments
    )
    agent_state, learner = jax.lax.scan(agent.learn, state.agent, minibatches)
    metrics.update({f"sum/learner/{k}": jnp.sum(x) for k, x in learner.items()})
    metrics["count/learner"] = jnp.float32(local_worlds // batch_size)
    window = jax.tree.map(lambda x: x[:, stride:], rows)
    return (
      state._replace(
        agent=agent_state,
        env=env_state,
        buffer=actors_next._replace(window=window),
        episode_return=episode_return,
        key=key,
        iteration=state.iteration + 1,
      ),
      metrics,
    )

  evaluate = make_evaluate(task, agent, config.eval.num_episodes)
  return train.Trainer(
    init=init,
    step=step,
    evaluate=evaluate,
    num_iterations=config.train.num_iterations,
    env_steps_per_iteration=local_worlds * stride,  # per device
    data=demos,
    data_fingerprint=fingerprint,
    compiler_options=options,
  )


class Rollouts(NamedTuple):
  """Greedy episodes from the task's own initial states: `final` env
  metrics at the last step [N], `returns` [N], and with a camera the
  frames [T + 1, N, H, W, 3] uint8 (None without)."""

  final: types.Metrics
  returns: jax.Array
  frames: jax.Array | None


def make_rollouts(task, agent: ppo.PPO, num_episodes: int, image_size=0):
  """`rollouts(agent_state, key) -> Rollouts`: `num_episodes` episodes in
  freshly randomised worlds (the same key, the same worlds), acting with the
  current parameters' mean action; `image_size` > 0 also renders each
  step with the task's camera (whatever the observation mode)."""
  env = task.env
  length = env.spec.max_episode_steps
  eye = None
  if image_size:
    camera = mujoco.mj_id2name(
      task.mj_model, mujoco.mjtObj.mjOBJ_CAMERA, task.layout.camera_id
    )
    eye = render.make_camera(task.mj_model, camera, image_size, image_size)

  def picture(models, axes, state):
    show = lambda m, p: manip.observe(eye, task.layout, m, p)["image"]  # noqa: E731
    return jax.vmap(show, in_axes=(axes, 0))(models, state.physics)

  def rollouts(agent_state: ppo.PPOState, key: jax.Array) -> Rollouts:
    world_key, reset_key = jax.random.split(key)
    models, axes = task.randomize_model(
      env.init_model(), world_key, num_episodes
    )
    state = jax.vmap(env.reset, in_axes=(axes, 0))(
      models, jax.random.split(reset_key, num_episodes)
    )
    current = agent_state._replace(
      reference=agent_state.params, reference_zfilter=agent_state.zfilter
    )
    step_envs = jax.vmap(env.step, in_axes=(axes, 0, 0))
    noise = jnp.zeros((num_episodes, env.spec.action_shape[0]))

    def one(carry, _):
      env_state, lstm, starts, total = carry
      actions, _, lstm = agent.act(
        current, lstm, env_state.obs, starts, key, noise, deterministic=True
      )
      nxt = step_envs(models, env_state, jnp.clip(actions, -1.0, 1.0))
      frame = picture(models, axes, nxt) if eye else None
      return (nxt, lstm, jnp.zeros_like(starts), total + nxt.reward), frame

    carry0 = (
      state,
      agent.network.initial_carry(num_episodes),
      jnp.ones((num_episodes,), bool),
      jnp.zeros((num_episodes,)),
    )
    (final, _, _, total), frames = jax.lax.scan(one, carry0, None, length)
    if eye:
      frames = jnp.concatenate([picture(models, axes, state)[None], frames])
    return Rollouts(final.metrics, total, frames)

  return rollouts


REFERENCES = ("expert", "descent", "random")


def make_references(task, num_episodes: int):
  """`references(key) -> metrics`: scripted policies in the worlds of
  `evaluate(agent_state, key)` (the same key, the same worlds and starts):
  the expert (privileged state), a straight descent (the expert aiming at
  the fingertips' own x-y: it closes and lifts wherever it starts, with no
  x-y skill; `task.straight_descent` where the task has its own, as the
  two-hand tasks do) and uniformly random actions. `<policy>/success` and
  `<policy>/return` per policy, the means over the episodes."""
  env = task.env
  length = env.spec.max_episode_steps

  def descent(model, state, key):
    data = state.physics.data
    target = task.layout.object_bodies[0]
    offset = task.robot.tip(data)[:2] - data.xpos[target][:2]
    return task.expert_action(model, state, key, aim_offset=offset)

  if task.straight_descent is not None:  # the task's own (two hands)
    descent = task.straight_descent

  policies = {
    "expert": task.expert_action,
    "descent": descent,
    "random": lambda model, state, key: task.random_action(key),
  }

  def references(key: jax.Array) -> types.Metrics:
    world_key, reset_key = jax.random.split(key)
    models, axes = task.randomize_model(
      env.init_model(), world_key, num_episodes
    )
    state0 = jax.vmap(env.reset, in_axes=(axes, 0))(
      models, jax.random.split(reset_key, num_episodes)
    )
    step_envs = jax.vmap(env.step, in_axes=(axes, 0, 0))
    metrics = {}
    for name in REFERENCES:
      act = jax.vmap(policies[name], in_axes=(axes, 0, 0))

      def one(carry, k, act=act):
        state, total = carry
        actions = act(models, state, jax.random.split(k, num_episodes))
        nxt = step_envs(models, state, actions)
        return (nxt, total + nxt.reward), None

      (final, total), _ = jax.lax.scan(
        one,
        (state0, jnp.zeros((num_episodes,))),
        jax.random.split(jax.random.fold_in(key, 7), length),
      )
      metrics[f"{name}/success"] = jnp.mean(final.metrics["success"])
      metrics[f"{name}/return"] = jnp.mean(total)
    return metrics

  return references


def make_reference_fn(config: ml_collections.ConfigDict):
  """The recipe's `references(config)`: `make_references` for the run's
  task and `eval.num_episodes`."""
  task = TASKS[config.env.name](**config.env.params)
  return make_references(task, config.eval.num_episodes)


def make_evaluate(task, agent: ppo.PPO, num_episodes: int):
  """`evaluate(agent_state, key)`: the mean over `make_rollouts`' episodes
  of `eval/return` and every env metric at the episode's last step
  (`eval/success`: the cube is up when the episode ends)."""
  rollouts = make_rollouts(task, agent, num_episodes)

  def evaluate(agent_state: ppo.PPOState, key: jax.Array) -> types.Metrics:
    episodes = rollouts(agent_state, key)
    metrics = {"eval/return": jnp.mean(episodes.returns)}
    for name, value in episodes.final.items():
      metrics[f"eval/{name}"] = jnp.mean(value)
    return metrics

  return evaluate


def make_video(config: ml_collections.ConfigDict):
  """`video(agent_state, key) -> (frames [T + 1, N, H, W, 3], success [N])`
  for the run's rollout video: `config.video.num_episodes` greedy episodes
  of one seed's agent, rendered at `config.video.image_size`."""
  task, agent = make_task_and_agent(config)
  rollouts = make_rollouts(
    task, agent, config.video.num_episodes, config.video.image_size
  )

  def video(agent_state, key):
    episodes = rollouts(agent_state, key)
    return episodes.frames, episodes.final["success"]

  return video


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=("episode/success", "eval/success", "learner/kl"),
    video=make_video,
    references=make_reference_fn,
  )
