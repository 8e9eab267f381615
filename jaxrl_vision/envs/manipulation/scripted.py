"""Behaviour policies for offline manipulation datasets (`data.offline`).

A fixed dataset teaches a Q-function only the contrasts it holds. The
expert alone shows "descend and close" always above an object, so a
learner concludes that descending pays anywhere; uniformly random play
mostly shows early closes. These policies contrast right and wrong x-y at
the moment of the grasp:

  expert          the task's scripted expert (small Gaussian noise).
  offset_expert   the same motion aimed at a point `aim_offset` metres off
                  the object (a random direction and distance per episode):
                  it descends and closes at the wrong place, so it fails
                  more often the farther off it aims.
  descent         `straight_descent` (no x-y skill): a scripted reference.
  random          uniformly random moves that close the gripper at a step
                  with probability `random_close` (an early close: in a
                  task that lifts after a close, the episode's end).

`explore_epsilon` replaces the expert's and offset expert's motion (not
their gripper command) by a random move at that fraction of steps, so the
data holds other moves from the expert's states and what they led to.
Every policy has the signature of `offline.Policy`.
"""

from collections.abc import Callable
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxrl_vision.data import offline
from jaxrl_vision.envs.manipulation import common

POLICY_NAMES = ("expert", "offset_expert", "descent", "random")


def reference_policies(
  task: common.ManipulationTask,
  straight_descent: Callable[..., jax.Array],
) -> Mapping[str, Callable[..., jax.Array]]:
  """What a learner's success is read against, `(model, state, key) ->
  action` each: the noiseless expert (the full skill), `straight_descent`
  (the task's policy without the x-y skill) and the random policy."""
  return {
    "expert": lambda m, s, k: task.expert_action(m, s, k, 0.0),
    "straight_descent": straight_descent,
    "random": lambda m, s, k: task.random_action(k),
  }


def random_move(key: jax.Array, action: jax.Array) -> jax.Array:
  """`action` [7] with its translation and yaw replaced by uniform ones; the
  gripper command (open, close) is kept."""
  return jnp.concatenate([common.random_action(key)[:5], action[5:]])


def aim_offset(key: jax.Array, low: float, high: float) -> jax.Array:
  """[2] metres: a uniform direction, a distance uniform in [low, high]."""
  angle_key, radius_key = jax.random.split(key)
  angle = jax.random.uniform(angle_key, (), minval=-jnp.pi, maxval=jnp.pi)
  radius = jax.random.uniform(radius_key, (), minval=low, maxval=high)
  return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])


def make_behaviour_policies(
  task: common.ManipulationTask,
  straight_descent: Callable[..., jax.Array],
  *,
  expert_noise: float = 0.1,
  explore_epsilon: float = 0.0,
  offset_range: tuple[float, float] = (0.015, 0.05),
  random_close: float = 0.1,
) -> Mapping[str, offline.Policy]:
  """The policies of `POLICY_NAMES`, as `offline.Policy` functions.

  Args:
    task: the task (its `expert_action` takes `aim_offset`).
    straight_descent: the task's no-x-y-skill reference,
      `(model, state, key) -> action`.
    expert_noise: Gaussian noise scale of the expert's motion.
    explore_epsilon: per-step probability that the expert's (and offset
      expert's) motion is replaced by a random move (`random_move`).
    offset_range: (low, high) metres of the offset expert's aiming error.
    random_close: per-step probability that the random policy closes.

  Returns:
    {name: policy(model, state, key, episode_key) -> action [7]}.
  """
  low, high = offset_range
  if not 0 <= low <= high:
    raise ValueError(f"offset_range needs 0 <= low <= high, got {offset_range}")
  if not 0 <= random_close <= 1:
    raise ValueError(f"random_close must be in [0, 1], got {random_close}")
  if not 0 <= explore_epsilon <= 1:
    raise ValueError(
      f"explore_epsilon must be in [0, 1], got {explore_epsilon}"
    )

  def explore(action, key):
    if explore_epsilon == 0:
      return action
    coin_key, move_key = jax.random.split(key)
    return jnp.where(
      jax.random.uniform(coin_key) < explore_epsilon,
      random_move(move_key, action),
      action,
    )

  def expert(model, state, key, episode_key):
    del episode_key
    noise_key, explore_key = jax.random.split(key)
    action = task.expert_action(model, state, noise_key, expert_noise)
    return explore(action, explore_key)

  def offset_expert(model, state, key, episode_key):
    noise_key, explore_key = jax.random.split(key)
    offset = aim_offset(episode_key, low, high)
    action = task.expert_action(
      model, state, noise_key, expert_noise, aim_offset=offset
    )
    return explore(action, explore_key)

  def descent(model, state, key, episode_key):
    del episode_key
    return straight_descent(model, state, key)

  def random(model, state, key, episode_key):
    del model, state, episode_key
    move_key, close_key = jax.random.split(key)
    close = jax.random.bernoulli(close_key, random_close)
    gripper = jnp.where(close, jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0]))
    return common.random_action(move_key).at[5:].set(gripper)

  return {
    "expert": expert,
    "offset_expert": offset_expert,
    "descent": descent,
    "random": random,
  }
