"""A small DQN and deterministic batches shared by the distributed tests.

Imported by the test modules and by the worker processes they start, so every
process builds exactly the same agent and global batch.
"""

import json

import jax
import numpy as np

from jaxrl_vision import types
from jaxrl_vision.agents.dqn import agent as dqn_agent
from jaxrl_vision.networks import q_networks

NUM_ACTIONS = 3
OBS_SHAPE = (10, 5, 3)  # catch's default [rows, cols, RGB]
RESULT_PREFIX = "RESULT "  # marks the worker's one JSON line on stdout


def make_agent(axis_name: str | None) -> types.Agent:
  network = q_networks.make_discrete_q_network(
      NUM_ACTIONS,
      channels=(8,),
      kernel_sizes=(3,),
      strides=(1,),
      hidden_sizes=(32,),
  )
  return dqn_agent.make_dqn(
      network,
      NUM_ACTIONS,
      learning_rate=1e-3,
      discount=0.99,
      max_grad_norm=10.0,
      huber_delta=1.0,
      target_update_tau=0.1,
      epsilon_start=1.0,
      epsilon_end=0.05,
      epsilon_decay_steps=100,
      axis_name=axis_name,
  )


def make_batches(seed: int, num_batches: int, batch_size: int):
  """Host (numpy) transitions, every leaf [num_batches, batch_size, ...]."""
  rng = np.random.default_rng(seed)
  lead = (num_batches, batch_size)
  return types.Transition(
      obs_tm1=rng.integers(0, 256, lead + OBS_SHAPE, dtype=np.uint8),
      action_tm1=rng.integers(0, NUM_ACTIONS, lead, dtype=np.int32),
      reward_t=rng.choice([-1.0, 0.0, 1.0], lead).astype(np.float32),
      discount_t=(rng.random(lead) > 0.2).astype(np.float32),
      obs_t=rng.integers(0, 256, lead + OBS_SHAPE, dtype=np.uint8),
  )


def to_numpy(x) -> np.ndarray:
  """A host copy of one (local) array; typed PRNG keys become their data."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(x)


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
  """{prefix + keystr(path): host array} over the tree's leaves."""
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {
      prefix + jax.tree_util.keystr(path): to_numpy(leaf)
      for path, leaf in leaves
  }


def shards_identical(x: jax.Array) -> bool:
  """Whether every addressable shard of `x` is bitwise equal to shard 0."""
  shards = [to_numpy(s.data) for s in x.addressable_shards]
  return all(s.tobytes() == shards[0].tobytes() for s in shards[1:])


def emit(result: dict) -> None:
  print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict:
  lines = [l for l in stdout.splitlines() if l.startswith(RESULT_PREFIX)]
  if len(lines) != 1:
    raise ValueError(f"expected one result line, got {len(lines)}:\n{stdout}")
  return json.loads(lines[0][len(RESULT_PREFIX) :])
