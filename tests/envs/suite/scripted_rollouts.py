"""One compiled program of scripted episodes for a suite task's tests.

`rollouts(task, ...)` runs, in freshly randomised worlds (mass, friction),
`num_expert` episodes of the task's expert, `num_other` of random actions
and `num_other` of its straight descent, then one world per hand-set
`held_qpos`, held still with the jaws open. Rows come in that order
(`groups` slices them).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EXPERT, RANDOM, DESCENT, HOLD = 0, 1, 2, 3
HOLD_ACTION = (0.0, 0.0, 0.0, 0.0, -1.0)  # still, jaws open


class Groups(NamedTuple):
  """Row slices of each policy's worlds."""

  expert: slice
  random: slice
  descent: slice
  held: slice


def groups(num_expert: int, num_other: int) -> Groups:
  a, b = num_expert, num_expert + num_other
  c = b + num_other
  return Groups(slice(0, a), slice(a, b), slice(b, c), slice(c, None))


def rollouts(
  task,
  length: int,
  num_expert: int,
  num_other: int,
  held_qpos,
  record,
  extra=None,
):
  """`(first_obs, steps, extra)`: per step ([worlds, length, ...] numpy
  arrays) the reward, metrics, `object` observation, the objects' quats and
  the fingertips, plus `record(task, data) -> dict` (what the tests read,
  not the whole state, whose constraint arrays are most of a step's size);
  `extra(models)`, if given, reads the randomised models in the program."""
  held_qpos = np.asarray(held_qpos, np.float32)
  policies = np.repeat(
    [EXPERT, RANDOM, DESCENT, HOLD],
    [num_expert, num_other, num_other, len(held_qpos)],
  )
  num = len(policies)
  keys = jax.random.split(jax.random.key(1), num)
  built = np.zeros((num, held_qpos.shape[1]), np.float32)
  built[num - len(held_qpos) :] = held_qpos
  hold = jnp.array(HOLD_ACTION)

  def episode(model, key, policy, qpos):
    reset_key, key = jax.random.split(key)
    first = task.env.reset(model, reset_key)
    data = first.physics.data
    data = data.replace(qpos=jnp.where(policy == HOLD, qpos, data.qpos))
    first = first._replace(physics=first.physics._replace(data=data))

    def body(state, k):
      action = jnp.select(
        [policy == EXPERT, policy == RANDOM, policy == DESCENT],
        [
          task.expert_action(model, state, k),
          task.random_action(k),
          task.straight_descent(model, state, k),
        ],
        hold,
      )
      state = task.env.step(model, state, action)
      data = state.physics.data
      return state, {
        "reward": state.reward,
        "metrics": state.metrics,
        "object": state.obs["object"],
        "quat": data.xquat[task.layout.object_bodies],
        "tip": task.robot.tip(data),
        **record(task, data),
      }

    _, steps = jax.lax.scan(body, first, jax.random.split(key, length))
    return first.obs, steps

  def run(key):
    # The worlds are drawn inside the program (eagerly, their many small
    # ops cost ~3 s more).
    models, axes = task.randomize_model(task.env.init_model(), key, num)
    episodes = jax.vmap(episode, in_axes=(axes, 0, 0, 0))
    out = episodes(models, keys, policies, built)
    return out, (extra(models) if extra else None)

  # XLA:CPU's backend at -O1 lowers and compiles Bin Picking's program in
  # ~34 s instead of ~49 s (-O2) on the 2-core CPU and runs it about as
  # fast (-O0: ~33 s, but 4x slower to run).
  cpu = jax.default_backend() == "cpu"
  options = {"xla_backend_optimization_level": 1} if cpu else None
  (first, steps), more = jax.jit(run, compiler_options=options)(
    jax.random.key(0)
  )
  return first, jax.tree.map(np.asarray, steps), jax.device_get(more)
