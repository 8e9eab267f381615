r"""How fast can the Visionary Q-network learn where to move, given exact labels?

  python -m experiments.benchmarks.visionary_xy_probe
  python -m experiments.benchmarks.visionary_xy_probe --image_size=32 --steps=4000

A supervised upper bound for the grasp runs of `configs/visionary.py`. The
RL learner must find, from a sparse terminal reward, which x-y move of the
gripper approaches an object in the image. Here the same Q-network (trunk,
merge, head) is instead fitted by log loss to a dense, exact label of that
skill, so that what it cannot learn here it cannot learn from RL either:

  label(s, a) = exp(-d'/3 cm), d' = the distance in x-y from the gripper to
  the nearest object after the move 3 cm * a[:2] (open gripper, no yaw).

States are `num_worlds` noisy-expert episodes of `grasp` (the gripper's
positions the offline dataset visits), actions uniform in x-y. Every
`eval_every` steps, on 64 held-out episodes' states and a 9x9 grid of x-y
moves, it reports the mean correlation of Q with -d' and how much the
Q-argmax move brings the gripper closer to an object (`xy_gain_cm`),
against the best move of the grid (`best_xy_gain_cm`). Their ratio,
`xy_gain_fraction`, is 1 for a network that has learned the skill, 0 for
one that stands still, and negative for one that moves at random (a random
move usually leads away from the objects).

The last line is one JSON object with `xy_gain_fraction`, `corr`,
`xy_gain_cm`, `best_xy_gain_cm`, `step_ms` and the settings.
"""

import json
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.networks import visionary

_ARCHITECTURES = {
  "baseline": visionary.baseline_architecture,
  "search": visionary.search_architecture,
}
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Camera image side.")
_TRUNK = flags.DEFINE_string("trunk", "grasping_small", "visionary.TRUNKS key.")
_ARCH = flags.DEFINE_enum(
  "architecture", "baseline", sorted(_ARCHITECTURES), "Network."
)
_STEPS = flags.DEFINE_integer("steps", 1000, "Gradient steps.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "States per step.")
_ACTIONS = flags.DEFINE_integer("num_actions", 8, "Labelled moves per state.")
_WORLDS = flags.DEFINE_integer("num_worlds", 256, "Training episodes.")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 250, "Steps per report.")
_EXPERT_NOISE = flags.DEFINE_float("expert_noise", 0.3, "Expert noise scale.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")

GRID = 9  # x-y moves per axis in the evaluation grid
LABEL_SCALE = common.MAX_TRANSLATION  # metres


class Positions(NamedTuple):
  gripper: jax.Array  # [..., 2] x-y
  objects: jax.Array  # [..., N, 2] x-y


def label(positions: Positions, action: jax.Array) -> jax.Array:
  """exp(-d'/3 cm): d' = x-y distance to the nearest object after the move.

  Args:
    positions: one state's gripper [2] and objects [N, 2] (metres).
    action: [7] grasp action; only a[:2] (the x-y move, units of 3 cm) is
      read.
  """
  moved = positions.gripper + common.MAX_TRANSLATION * action[:2]
  after = jnp.linalg.norm(positions.objects - moved, axis=-1).min()
  return jnp.exp(-after / LABEL_SCALE)


def grid_actions() -> jax.Array:
  """[GRID^2, 7] open-gripper, no-yaw actions on a grid of x-y moves."""
  xs, ys = jnp.meshgrid(*(jnp.linspace(-1.0, 1.0, GRID),) * 2, indexing="ij")
  n = GRID * GRID
  actions = jnp.zeros((n, 7)).at[:, 0].set(xs.ravel()).at[:, 1].set(ys.ravel())
  return actions.at[:, 4].set(1.0).at[:, 5].set(1.0)  # cos 1; open


def skill(q_values: np.ndarray, positions: Positions) -> dict[str, float]:
  """How well per-state Q over `grid_actions()` ranks the x-y moves.

  Args:
    q_values: [S, GRID^2] Q (any monotone scale) of each grid move.
    positions: gripper [S, 2] and objects [S, N, 2] of the S states.

  Returns:
    corr (mean per-state correlation of Q with -d'), xy_gain_cm (how much
    closer the Q-argmax move gets, cm), best_xy_gain_cm (the best grid
    move's), xy_gain_fraction (their ratio).
  """
  moves = np.asarray(grid_actions())[:, :2] * common.MAX_TRANSLATION
  rel = np.asarray(positions.objects) - np.asarray(positions.gripper)[:, None]
  before = np.linalg.norm(rel, axis=-1).min(-1)  # [S]
  after = np.linalg.norm(rel[:, None] - moves[None, :, None], axis=-1).min(
    -1
  )  # [S, G]
  q_values = np.asarray(q_values)
  corr = np.nanmean(
    [np.corrcoef(q, -d)[0, 1] for q, d in zip(q_values, after, strict=True)]
  )
  chosen = after[np.arange(len(after)), q_values.argmax(-1)]
  gain = float(np.mean(before - chosen)) * 100
  best = float(np.mean(before - after.min(-1))) * 100
  return dict(
    corr=float(corr),
    xy_gain_cm=gain,
    best_xy_gain_cm=best,
    xy_gain_fraction=gain / best,
  )


def rollouts(
  task, key: jax.Array, num_worlds: int, num_steps: int, noise: float
):
  """(obs, Positions) of the first `num_steps` states of `num_worlds`
  noisy-expert episodes, the gripper kept open (the x-y approach is what
  the probe is about), flattened to [num_worlds * num_steps, ...]."""
  env, model = task.env, task.env.init_model()
  worlds = jax.vmap(env.reset, in_axes=(None, 0))(
    model, jax.random.split(key, num_worlds)
  )
  expert = jax.vmap(task.expert_action, in_axes=(None, 0, 0, None))
  step = jax.vmap(env.step, in_axes=(None, 0, 0))
  is_open = jnp.array([1.0, 0.0])

  def body(state, t):
    data = state.physics.data
    here = Positions(
      data.qpos[:, :2], data.xpos[:, task.layout.object_bodies, :2]
    )
    keys = jax.random.split(jax.random.fold_in(key, t), num_worlds)
    action = expert(model, state, keys, noise).at[:, 5:].set(is_open)
    return step(model, state, action), (state.obs, here)

  _, out = jax.lax.scan(body, worlds, jnp.arange(num_steps))
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out)


def make_probe(
  q: visionary.QFunction, optimizer, batch_size: int, num_actions: int
):
  """(update, grid_q): one supervised step, and Q over `grid_actions()`."""

  def loss(params, key, obs, positions):
    index_key, action_key = jax.random.split(key)
    index = jax.random.randint(
      index_key, (batch_size,), 0, len(positions.gripper)
    )
    obs, positions = jax.tree.map(lambda x: x[index], (obs, positions))
    moves = jax.random.uniform(
      action_key, (batch_size, num_actions, 2), minval=-1.0, maxval=1.0
    )
    actions = jnp.broadcast_to(grid_actions()[0], moves.shape[:2] + (7,))
    actions = actions.at[..., :2].set(moves)
    labels = jax.vmap(jax.vmap(label, (None, 0)))(positions, actions)
    tile = lambda x: jnp.repeat(x, num_actions, axis=0)  # noqa: E731
    features = jax.tree.map(tile, q.trunk(params, obs["image"]))  # trunk once
    logits = q.head(
      params,
      features,
      tile(visionary.state_vector(obs)),
      actions.reshape(-1, 7),
    )
    return optax.sigmoid_binary_cross_entropy(logits, labels.ravel()).mean()

  def update(params, opt_state, key, obs, positions):
    value, grads = jax.value_and_grad(loss)(params, key, obs, positions)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  def grid_q(params, obs):
    actions = grid_actions()
    n = actions.shape[0]

    def one(features, state):
      features = jax.tree.map(
        lambda x: jnp.broadcast_to(x, (n,) + x.shape), features
      )
      return q.head(
        params, features, jnp.broadcast_to(state, (n,) + state.shape), actions
      )

    return jax.vmap(one)(
      q.trunk(params, obs["image"]), visionary.state_vector(obs)
    )

  return jax.jit(update), jax.jit(grid_q)


def main(argv):
  del argv
  if _STEPS.value < 1 or _EVAL_EVERY.value < 1 or _BATCH.value < 1:
    raise app.UsageError("steps, eval_every and batch_size must be >= 1")
  task = grasp.make_grasp_task(image_size=_IMAGE_SIZE.value)
  key = jax.random.key(_SEED.value)
  data_key, test_key, init_key, key = jax.random.split(key, 4)
  start = time.perf_counter()
  steps = task.env.spec.max_episode_steps - 1  # the last step is the lift
  collect = jax.jit(
    lambda key, n: rollouts(task, key, n, steps, _EXPERT_NOISE.value),
    static_argnums=1,
  )
  obs, positions = collect(data_key, _WORLDS.value)
  test_obs, test_positions = collect(test_key, 64)
  logging.info("rollouts: %.1f s", time.perf_counter() - start)

  q = visionary.make_q_function(
    _TRUNK.value, _ARCHITECTURES[_ARCH.value](), _IMAGE_SIZE.value
  )
  params = q.init(
    init_key, jax.tree.map(lambda x: x[:1], obs), jnp.zeros((1, 7))
  )
  optimizer = optax.adam(_LR.value)
  opt_state = optimizer.init(params)
  update, grid_q = make_probe(q, optimizer, _BATCH.value, _ACTIONS.value)

  curve, train_s = [], 0.0
  for it in range(_STEPS.value + 1):
    if it % _EVAL_EVERY.value == 0 or it == _STEPS.value:
      figures = skill(grid_q(params, test_obs), test_positions)
      curve.append(
        dict(step=it, **{k: round(v, 4) for k, v in figures.items()})
      )
      logging.info("step %d: %s", it, curve[-1])
    if it == _STEPS.value:
      break
    key, step_key = jax.random.split(key)
    start = time.perf_counter()
    params, opt_state, loss = update(
      params, opt_state, step_key, obs, positions
    )
    loss.block_until_ready()
    if it:  # the first step compiles
      train_s += time.perf_counter() - start
  result = dict(
    curve[-1],
    step_ms=round(1000 * train_s / max(_STEPS.value - 1, 1), 2),
    image_size=_IMAGE_SIZE.value,
    trunk=_TRUNK.value,
    architecture=_ARCH.value,
    batch_size=_BATCH.value,
    num_actions=_ACTIONS.value,
    num_worlds=_WORLDS.value,
    learning_rate=_LR.value,
    curve=curve,
    device=jax.devices()[0].platform,
  )
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
