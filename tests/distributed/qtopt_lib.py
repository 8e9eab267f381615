"""A tiny `qtopt_offline` run for the distributed tests and their workers.

The `configs/visionary.py:smoke` settings (grasping_tiny trunk, 32 px
images) with a baseline architecture, and a deterministic synthetic
dataset of that task's shapes (no physics runs to build it).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import visionary as visionary_config
from experiments import visionary
from jaxrl_vision.data import offline
from jaxrl_vision.networks import visionary as nets
from jaxrl_vision.recipes import qtopt_offline

NUM_EPISODES = 16
GLOBAL_BATCH = 16


def config(**overrides) -> ml_collections.ConfigDict:
  """A qtopt_offline run config; `overrides` as {"section.key": value}."""
  c = visionary.phase_config(
    visionary_config.get_config("smoke"),
    architecture="baseline",
    seed=0,
    num_seeds=2,
    num_iterations=4,
    dataset_path="/unused",  # the data is passed in
  )
  c.train.batch_size = GLOBAL_BATCH
  c.train.num_updates_per_iteration = 2
  # Fewer evaluation worlds than devices: most devices run a padding copy.
  c.eval.num_episodes = 4
  for key, value in overrides.items():
    section, name = key.split(".")
    c[section][name] = value
  return c


def episodes(seed: int = 0) -> offline.Episodes:
  """Host Episodes of the smoke task's shapes (`offline.episodes_structure`
  would trace the physics: ~12 s), random but valid: lengths 1..T,
  terminal only at an episode's last step."""
  params = config().task.params
  horizon, size = params.episode_length, params.image_size
  rng = np.random.default_rng(seed)
  length = rng.integers(1, horizon + 1, NUM_EPISODES).astype(np.int32)
  success = rng.random(NUM_EPISODES) < 0.5
  last = np.arange(horizon)[None] == (length[:, None] - 1)
  frames = (NUM_EPISODES, horizon + 1)
  obs = {k: rng.random(frames).astype(np.float32) for k in nets.STATE_KEYS}
  obs["image"] = rng.integers(0, 256, frames + (size, size, 3), np.uint8)
  return offline.Episodes(
    obs=obs,
    action=rng.uniform(-1, 1, (NUM_EPISODES, horizon, nets.ACTION_SIZE)).astype(
      np.float32
    ),
    reward=(last & success[:, None]).astype(np.float32),
    terminated=last & success[:, None],
    length=length,
    success=success.astype(np.float32),
    policy=np.zeros(NUM_EPISODES, np.int32),
  )


def agent(c: ml_collections.ConfigDict, axis_name: str | None):
  env = qtopt_offline.make_env(c)
  return qtopt_offline.make_agent(
    c, qtopt_offline.make_q_function(c, env), axis_name
  )


def global_batches(c: ml_collections.ConfigDict, num_batches: int):
  """Transitions sampled on the host device from `episodes()`, leaves
  [num_batches, GLOBAL_BATCH, ...]."""
  sample = offline.make_sampler(GLOBAL_BATCH, c.agent.gamma)
  data = jax.tree.map(jnp.asarray, episodes())
  index = jnp.asarray(offline.transition_index(np.asarray(data.length)))
  keys = jax.random.split(jax.random.key(7), num_batches)
  draw = jax.jit(jax.vmap(lambda k: sample(data, index, k)))
  return jax.device_get(draw(keys))
