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

States are `num_worlds` noisy-expert episodes of the default run's `grasp`
task (`configs/visionary.py`'s `task.params`, with `image_size` from the
flag): the gripper's positions the offline dataset visits. Actions are
uniform in x-y. Every
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

from configs import visionary as visionary_config
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.networks import visionary
from jaxrl_vision.search import visionary as space

_ARCHITECTURES = {
  "baseline": space.baseline_architecture,
  "search": space.search_architecture,
}
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Camera image side.")
_CAMERA = flags.DEFINE_string(
  "camera", None, "grasp camera (default: the config's task.params)."
)
_TRUNK = flags.DEFINE_string("trunk", "grasping_small", "visionary.TRUNKS key.")
_ARCH = flags.DEFINE_enum(
  "architecture", "baseline", sorted(_ARCHITECTURES), "Network."
)
_COORDS = flags.DEFINE_bool(
  "coord_channels", False, "Pixel coordinates as image channels."
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


def distance_after(positions: Positions, moves: jax.Array) -> jax.Array:
  """x-y distance from the gripper to the nearest object after each move.

  Args:
    positions: one state's gripper [2] and objects [N, 2] (metres).
    moves: [..., 2] x-y moves in units of `common.MAX_TRANSLATION`.

  Returns:
    [...] distances in metres.
  """
  moved = positions.gripper + common.MAX_TRANSLATION * moves[..., None, :]
  return jnp.linalg.norm(positions.objects - moved, axis=-1).min(-1)


def label(positions: Positions, moves: jax.Array) -> jax.Array:
  """exp(-d'/3 cm), d' = `distance_after(positions, moves)`."""
  return jnp.exp(-distance_after(positions, moves) / LABEL_SCALE)


def xy_actions(moves: jax.Array) -> jax.Array:
  """[..., 7] open-gripper, no-yaw grasp actions of x-y moves [..., 2]."""
  rest = jnp.array([0.0, 0.0, 1.0, 1.0, 0.0])  # dz, sin, cos, open, close
  rest = jnp.broadcast_to(rest, moves.shape[:-1] + rest.shape)
  return jnp.concatenate([moves, rest], axis=-1)


def grid_moves() -> jax.Array:
  """[GRID^2, 2] x-y moves on a regular grid of [-1, 1]^2 (0 included)."""
  xs, ys = jnp.meshgrid(*(jnp.linspace(-1.0, 1.0, GRID),) * 2, indexing="ij")
  return jnp.stack([xs.ravel(), ys.ravel()], axis=-1)


def skill(q_values: np.ndarray, positions: Positions) -> dict[str, float]:
  """How well per-state Q over `grid_moves()` ranks the x-y moves.

  Args:
    q_values: [S, GRID^2] Q (any monotone scale) of each grid move.
    positions: gripper [S, 2] and objects [S, N, 2] of the S states.

  Returns:
    corr (mean per-state correlation of Q with -d'), xy_gain_cm (how much
    closer the Q-argmax move gets, cm), best_xy_gain_cm (the best grid
    move's), xy_gain_fraction (their ratio).
  """
  distance = jax.vmap(distance_after, (0, None))
  before = np.asarray(distance(positions, jnp.zeros(2)))  # [S]
  after = np.asarray(distance(positions, grid_moves()))  # [S, G]
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
  """(update, grid_q): `update(params, opt_state, key, obs, positions)` is
  one supervised step, `grid_q(params, obs)` is Q [S, GRID^2] over
  `grid_moves()`; the trunk runs once per image in both.

  (A `lax.scan` of updates measured ~25x slower per step on XLA:CPU than
  this step dispatched asynchronously from the host.)"""

  def loss(params, key, obs, positions):
    index_key, move_key = jax.random.split(key)
    index = jax.random.randint(
      index_key, (batch_size,), 0, len(positions.gripper)
    )
    obs, positions = jax.tree.map(lambda x: x[index], (obs, positions))
    moves = jax.random.uniform(
      move_key, (batch_size, num_actions, 2), minval=-1.0, maxval=1.0
    )
    labels = jax.vmap(label)(positions, moves)  # [B, A]
    tile = lambda x: jnp.repeat(x, num_actions, axis=0)  # noqa: E731
    logits = q.head(
      params,
      jax.tree.map(tile, q.trunk(params, obs["image"])),
      tile(visionary.state_vector(obs)),
      xy_actions(moves).reshape(-1, 7),
    )
    return optax.sigmoid_binary_cross_entropy(logits, labels.ravel()).mean()

  def update(params, opt_state, key, obs, positions):
    value, grads = jax.value_and_grad(loss)(params, key, obs, positions)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  def grid_q(params, obs):
    actions = xy_actions(grid_moves())
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
  task_params = dict(visionary_config.get_config().task.params)
  task_params["image_size"] = _IMAGE_SIZE.value
  if _CAMERA.value is not None:
    task_params["camera"] = _CAMERA.value
  task = grasp.make_grasp_task(**task_params)
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
    _TRUNK.value,
    _ARCHITECTURES[_ARCH.value](),
    _IMAGE_SIZE.value,
    coord_channels=_COORDS.value,
  )
  params = q.init(
    init_key, jax.tree.map(lambda x: x[:1], obs), jnp.zeros((1, 7))
  )
  optimizer = optax.adam(_LR.value)
  opt_state = optimizer.init(params)
  update, grid_q = make_probe(q, optimizer, _BATCH.value, _ACTIONS.value)
  update = update.lower(params, opt_state, key, obs, positions).compile()
  curve, train_s = [], 0.0

  def report(step, params):
    figures = skill(grid_q(params, test_obs), test_positions)
    curve.append(
      dict(step=step, **{k: round(v, 4) for k, v in figures.items()})
    )
    logging.info("step %d: %s", step, curve[-1])

  report(0, params)
  start = time.perf_counter()  # compiled above: the clock times training
  for it in range(1, _STEPS.value + 1):
    key, step_key = jax.random.split(key)
    params, opt_state, _ = update(params, opt_state, step_key, obs, positions)
    if it % _EVAL_EVERY.value == 0 or it == _STEPS.value:
      jax.block_until_ready(params)  # the only sync: steps dispatch async
      train_s += time.perf_counter() - start
      report(it, params)
      start = time.perf_counter()
  result = dict(
    curve[-1],
    step_ms=round(1000 * train_s / _STEPS.value, 2),
    task_params=task_params,
    trunk=_TRUNK.value,
    architecture=_ARCH.value,
    coord_channels=_COORDS.value,
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
