"""The offline trainer on Catch with a small DQN, for the distributed tests.

The same data-parallel machinery as qtopt_offline (a dataset sharded along
its episodes, split evaluation) in a program that compiles in seconds: for
the 2-process job, and for an exact check of the split evaluation (a greedy
DQN acts without randomness).
"""

import jax
import numpy as np

from jaxrl_vision import train
from jaxrl_vision.data import offline
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.envs import registry
from tests.distributed import worker_lib

CATCH_EPISODES = 16
CATCH_BATCH = 8
CATCH_EVAL_EPISODES = 5  # fewer than 8 devices, not a multiple of 2


def catch_episodes(seed: int = 0) -> offline.Episodes:
  """Host Catch Episodes, random but valid (lengths 1..T)."""
  env = registry.make_env("catch")
  horizon = env.spec.max_episode_steps
  rng = np.random.default_rng(seed)
  length = rng.integers(1, horizon + 1, CATCH_EPISODES).astype(np.int32)
  last = np.arange(horizon)[None] == (length[:, None] - 1)
  reward = np.where(last, rng.choice([-1.0, 1.0], (CATCH_EPISODES, 1)), 0.0)
  return offline.Episodes(
    obs=rng.integers(
      0,
      256,
      (CATCH_EPISODES, horizon + 1) + env.spec.obs_shape,
      np.uint8,
    ),
    action=rng.integers(
      0, env.spec.num_actions, (CATCH_EPISODES, horizon), np.int32
    ),
    reward=reward.astype(np.float32),
    terminated=last,
    length=length,
    success=(reward.sum(1) > 0).astype(np.float32),
    policy=np.zeros(CATCH_EPISODES, np.int32),
  )


def catch_trainer(
  axis_name: str | None,
  num_devices: int = 1,
  agent_axis: str | None = "same",
) -> train.Trainer:
  """`make_offline_train` on Catch; `agent_axis` "same" = `axis_name`
  (None builds the broken control: no gradient pmean)."""
  env = registry.make_env("catch")
  dqn = worker_lib.make_agent(axis_name if agent_axis == "same" else agent_axis)
  agent = dqn._replace(init=lambda key, obs, action: dqn.init(key, obs))
  episodes = catch_episodes()
  data = (
    train.offline_data(episodes)
    if axis_name is None
    else train.offline_data_shards(episodes, num_devices)
  )
  return train.make_offline_train(
    env,
    env.init_model(),
    agent,
    data,
    batch_size=CATCH_BATCH,
    num_updates_per_iteration=2,
    num_iterations=4,
    num_eval_episodes=CATCH_EVAL_EPISODES,
    axis_name=axis_name,
    num_devices=num_devices,
  )


def run_catch(
  mesh, axis_name: str, agent_axis="same", num_chunks=2, evaluate=True
):
  """`num_chunks` host chunks of 2 steps and an evaluation of the
  data-parallel Catch trainer on `mesh`, as `experiments.loop` runs it.

  Returns (state, [chunk metrics], eval metrics or None); state fields of
  `train.PER_DEVICE` hold this process's devices only.
  """
  trainer = data_parallel.data_parallel_trainer(
    catch_trainer(axis_name, mesh.shape[axis_name], agent_axis),
    mesh,
    axis_name,
  )
  state = jax.jit(trainer.init)(jax.random.key(0))
  step = jax.jit(trainer.step).lower(state, trainer.data).compile()
  chunk = train.make_host_chunk(step, 2)
  history = []
  for _ in range(num_chunks):
    state, metrics = chunk(state, trainer.data)
    history.append(metrics)
  evaluation = None
  if evaluate:
    evaluation = jax.jit(trainer.evaluate)(state.agent, jax.random.key(1))
  return state, history, evaluation


def local(tree):
  """Shard 0 of every (replicated) leaf: what this process's host sees."""
  return jax.tree.map(lambda x: x.addressable_shards[0].data, tree)
