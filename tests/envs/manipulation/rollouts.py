"""Shared set-up for the MJX task tests: one compiled rollout per task.

Compiling an MJX step costs 15-30 s on a 2-core CPU, so each task's tests
share a single jitted function: `vmap` over worlds (with per-world randomised
models) of reset followed by a `lax.scan` of steps, where half of the worlds
follow the scripted expert and half the random policy. Every test reads the
same batch of episodes (or reruns the same compiled function).
"""

import chex
import jax
import jax.numpy as jnp

from jaxrl_vision.envs.manipulation import common


def make_batch_rollout(task: common.ManipulationTask, model_axes):
  """jit(vmap(episode)) over (models, keys, use_expert), traced once."""
  env = task.env
  num_steps = env.spec.max_episode_steps

  def episode(model, key, use_expert):
    def policy(model, state, step_key):
      expert = task.expert_action(model, state, step_key, 0.0)
      return jnp.where(use_expert, expert, task.random_action(step_key))

    return common.rollout(env, policy, model, key, num_steps)

  # chex counts traces per code object, and every task's `episode` shares
  # this one: start each task's count from zero.
  chex.clear_trace_counter()
  traced_once = chex.assert_max_traces(episode, n=1)
  return jax.jit(jax.vmap(traced_once, in_axes=(model_axes, 0, 0)))


def world(tree, axes, index: int):
  """World `index` of a model batched along the leaves where axes is 0."""
  return jax.tree.map(
    lambda axis, x: x if axis is None else x[index],
    axes,
    tree,
    is_leaf=lambda axis: axis is None,
  )


def first_world(tree):
  return jax.tree.map(lambda x: x[0], tree)
