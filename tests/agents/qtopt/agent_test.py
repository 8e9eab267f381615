"""Tests for the QT-Opt agent, on tiny stand-in Q-functions."""

import functools
from typing import Any
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from jaxrl_vision import types
from jaxrl_vision.agents.qtopt import agent as qtopt
from jaxrl_vision.envs.manipulation.common import MAX_YAW

IMAGE_SHAPE = (8, 8, 3)
GAMMA = 0.9


class QFunction(NamedTuple):
  """The fields of `networks.visionary.QFunction` that the agent uses."""

  init: Any
  trunk: Any
  head: Any
  apply: Any


class _Trunk(nn.Module):
  @nn.compact
  def __call__(self, image):
    x = image.astype(jnp.float32) / 255.0
    x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))  # [B, 4, 4, 4]
    # Two leaves of different ranks, so tiling must handle both.
    return {"map": x, "pooled": jnp.mean(x, axis=(1, 2))}


class _Head(nn.Module):
  @nn.compact
  def __call__(self, features, state, action):
    spatial = nn.Dense(4)(features["map"]).mean(axis=(1, 2))  # [B, 4]
    x = jnp.concatenate([spatial, features["pooled"], state, action], -1)
    x = nn.relu(nn.Dense(16)(x))
    return nn.Dense(1)(x)[..., 0]


class _QModule(nn.Module):
  def setup(self):
    self.trunk = _Trunk()
    self.head = _Head()

  def __call__(self, image, state, action):
    return self.head(self.trunk(image), state, action)


def make_mlp_q_function() -> QFunction:
  module = _QModule()

  def init(key, obs, action):
    # Flax's shapes, numpy's values: compiling flax's random initialisers
    # took seconds, and these tests are compile-bound. Call this eagerly.
    shapes = jax.eval_shape(
      module.init, key, obs["image"], qtopt.proprio_state(obs), action
    )
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))

    def value(leaf):
      fan_in = np.prod(leaf.shape[:-1]) if len(leaf.shape) > 1 else 100
      scale = 1.0 / np.sqrt(fan_in)
      return rng.normal(0.0, scale, leaf.shape).astype(leaf.dtype)

    return jax.tree.map(value, shapes)

  def trunk(params, image):
    return module.apply(params, image, method=lambda m, x: m.trunk(x))

  def head(params, features, state, action):
    return module.apply(
      params, features, state, action, method=lambda m, f, s, a: m.head(f, s, a)
    )

  def apply(params, obs, action):
    return module.apply(params, obs["image"], qtopt.proprio_state(obs), action)

  return QFunction(init=init, trunk=trunk, head=head, apply=apply)


def make_linear_q_function() -> QFunction:
  """logit = w . min(action, cap) + b; the image enters only as a zero term.

  A cap makes Q flat beyond it, so the maximum value is reached on a whole
  interval that CEM hits reliably, and is computable by hand.
  """

  def init(key, obs, action):
    del obs, action
    return linear_params(jax.random.normal(key, (7,)), 0.0)

  def trunk(params, image):
    del params
    return {"pooled": jnp.mean(image.astype(jnp.float32), axis=(1, 2, 3))}

  def head(params, features, state, action):
    del state
    p = params["params"]
    logit = jnp.minimum(action, p["cap"]) @ p["w"] + p["b"]
    return logit + 0.0 * features["pooled"]

  def apply(params, obs, action):
    return head(params, trunk(params, obs["image"]), None, action)

  return QFunction(init=init, trunk=trunk, head=head, apply=apply)


def linear_params(w, b, cap=None):
  cap = jnp.full((7,), 10.0) if cap is None else cap
  return {
    "params": {
      "w": jnp.asarray(w, jnp.float32),
      "b": jnp.asarray(b, jnp.float32),
      "cap": jnp.asarray(cap, jnp.float32),
      "kernel": jnp.ones((2,)),  # an L2 target that the logit ignores
    }
  }


def random_obs(seed, num):
  # numpy, not jax.random: eager jax ops compile, which dominates test time.
  rng = np.random.default_rng(seed)
  return {
    "image": rng.integers(0, 256, (num,) + IMAGE_SHAPE, dtype=np.uint8),
    "gripper_closed": rng.integers(0, 2, (num,)).astype(np.float32),
    "height": rng.uniform(size=(num,)).astype(np.float32),
    "aperture": rng.uniform(size=(num,)).astype(np.float32),
  }


def random_actions(seed, num):
  """Uniform actions of the CEM's space: T, a yaw in +-MAX_YAW, one-hot."""
  rng = np.random.default_rng(seed)
  yaw = rng.uniform(-MAX_YAW, MAX_YAW, (num, 1))
  close = rng.integers(0, 2, (num, 1))
  return np.concatenate(
    [
      rng.uniform(-1, 1, (num, 3)),
      np.sin(yaw),
      np.cos(yaw),
      1 - close,
      close,
    ],
    axis=-1,
  ).astype(np.float32)


def random_batch(seed, num, discount=None):
  rng = np.random.default_rng(seed)
  discount_t = (
    (rng.uniform(size=(num,)) < 0.8).astype(np.float32)
    if discount is None
    else np.full((num,), discount, np.float32)
  )
  return types.Transition(
    obs_tm1=random_obs(seed + 1000, num),
    action_tm1=random_actions(seed + 2000, num),
    reward_t=rng.uniform(size=(num,)).astype(np.float32),
    discount_t=discount_t,
    obs_t=random_obs(seed + 3000, num),
  )


def make_agent(q_function, **overrides):
  config = dict(
    optimizer=optax.adam(1e-2),
    gamma=GAMMA,
    polyak_decay=0.5,
    lag_every=2,
    l2_scale=1e-3,
    cem_iterations=2,
    cem_samples=8,
    cem_elites=2,
  )
  config.update(overrides)
  return qtopt.make_qtopt(q_function, **config)


def make_target_agent(**overrides):
  """lr 0, no L2, a target CEM that reliably finds the linear Q's plateau:
  updates whose targets and losses are computable by hand."""
  return make_agent(
    make_linear_q_function(),
    optimizer=optax.sgd(0.0),
    l2_scale=0.0,
    target_cem_iterations=3,
    target_cem_samples=32,
    target_cem_elites=4,
    **overrides,
  )


class Shared(NamedTuple):
  q_function: QFunction
  agent: types.Agent
  state: qtopt.QtOptState
  act: Any
  update: Any
  q_values: Any


NUM_OBS = 64  # every act call below: a retrace fails
NUM_BATCH = 16  # every update call below: a retrace fails


@functools.cache
def shared() -> Shared:
  """The MLP agent, compiled once for all tests, since compiling dominates."""
  q_function = make_mlp_q_function()
  # epsilon = 0.5: non-deterministic acting mixes random and greedy actions.
  agent = make_agent(q_function, epsilon=0.5)
  example = (random_obs(0, 1), np.zeros((1, 7), np.float32))
  return Shared(
    q_function=q_function,
    agent=agent,
    state=agent.init(jax.random.key(0), *example),
    # Two traces: deterministic=True and False.
    act=jax.jit(
      chex.assert_max_traces(agent.act, n=2), static_argnames="deterministic"
    ),
    update=jax.jit(chex.assert_max_traces(agent.update, n=1)),
    q_values=jax.jit(q_function.apply),
  )


def params_close(a, b):
  pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  return all(np.allclose(x, y) for x, y in pairs)


def sigmoid(x):
  return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def assert_valid_actions(test, action):
  action = np.asarray(action)
  test.assertEqual(action.dtype, np.float32)
  test.assertTrue(np.all(np.abs(action[:, :3]) <= 1.0))
  np.testing.assert_allclose(np.hypot(action[:, 3], action[:, 4]), 1, rtol=1e-5)
  yaw = np.arctan2(action[:, 3], action[:, 4])
  test.assertTrue(np.all(np.abs(yaw) <= MAX_YAW + 1e-6))
  test.assertTrue(np.all(np.isin(action[:, 5:], [0.0, 1.0])))
  np.testing.assert_array_equal(action[:, 5] + action[:, 6], 1.0)


class QtOptActTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.shared = shared()
    self.state = self.shared.state
    self.obs = random_obs(1, NUM_OBS)

  def act(self, obs, key, deterministic):
    return self.shared.act(self.state, obs, key, deterministic=deterministic)

  def q(self, action):
    return sigmoid(self.shared.q_values(self.state.params, self.obs, action))

  def assert_beats_random(self, q):
    # CEM is a sampler, so a lucky random action may beat it on an example;
    # on most examples and on average it must not. (Its best of 2 x 8
    # samples beats one random action with probability about 16 / 17.)
    for i in range(3):
      random_q = self.q(random_actions(30 + i, NUM_OBS))
      self.assertGreater(np.mean(q >= random_q), 0.8)
      self.assertGreater(np.mean(q - random_q), 0.0)

  def test_init(self):
    state = self.state
    self.assertEqual(int(state.step), 0)
    chex.assert_trees_all_equal(state.params, state.polyak_params)
    chex.assert_trees_all_equal(state.params, state.lagged_params)
    chex.assert_tree_all_finite(state.params)

  def test_act_shapes_and_single_trace(self):
    for i in range(3):  # a retrace fails here
      obs = random_obs(10 + i, NUM_OBS)
      for deterministic in (False, True):
        action, info = self.act(obs, jax.random.key(i), deterministic)
        chex.assert_shape(action, (NUM_OBS, 7))
        assert_valid_actions(self, action)
        chex.assert_shape([info["q"], info["explored"]], (NUM_OBS,))
        self.assertEqual(info["explored"].dtype, jnp.bool_)
        self.assertTrue(np.all((info["q"] >= 0) & (info["q"] <= 1)))
        if deterministic:
          self.assertFalse(np.any(info["explored"]))

  def test_q_is_q_of_returned_action(self):
    # Greedy: the CEM score from tiled trunk features and the head must equal
    # apply at the chosen action, per example; a mix-up of examples' features
    # in the tiling would break this. Explored rows: the head on the features.
    for deterministic in (True, False):
      action, info = self.act(self.obs, jax.random.key(1), deterministic)
      np.testing.assert_allclose(info["q"], self.q(action), rtol=1e-5)

  def test_deterministic_is_greedy(self):
    action, info = self.act(self.obs, jax.random.key(4), deterministic=True)
    self.assert_beats_random(info["q"])
    other, _ = self.act(self.obs, jax.random.key(5), deterministic=True)
    self.assertFalse(np.allclose(other, action))  # CEM is random

  def test_epsilon_mixes_random_and_greedy(self):
    key = jax.random.key(6)
    action, info = self.act(self.obs, key, deterministic=False)
    # deterministic=True ignores epsilon, and acts greedily with the same key.
    greedy, _ = self.act(self.obs, key, deterministic=True)
    explored = np.asarray(info["explored"])
    self.assertTrue(8 < explored.sum() < 56)  # epsilon 0.5: about 32 of 64
    # Unexplored rows are the greedy CEM actions for the same key.
    np.testing.assert_allclose(action[~explored], greedy[~explored])
    # Explored ones are random: uniform T matches greedy with probability 0.
    same = np.isclose(action[explored], greedy[explored]).all(-1)
    self.assertFalse(np.any(same))

  def test_cem_policy(self):
    policy = jax.jit(
      qtopt.make_cem_policy(
        self.shared.q_function, iterations=3, num_samples=32, num_elites=4
      )
    )
    action, logit = policy(self.state.params, self.obs, jax.random.key(2))
    chex.assert_shape(action, (NUM_OBS, 7))
    chex.assert_shape(logit, (NUM_OBS,))
    assert_valid_actions(self, action)
    np.testing.assert_allclose(sigmoid(logit), self.q(action), rtol=1e-5)
    self.assert_beats_random(sigmoid(logit))

  def test_epsilon_one_and_trunk_runs_once(self):
    calls = []
    base = self.shared.q_function

    def trunk(params, image):
      calls.append(("trunk", image.shape))
      return base.trunk(params, image)

    def head(params, features, state, action):
      leading = {x.shape[0] for x in jax.tree.leaves(features)}
      calls.append(("head", leading, state.shape[0], action.shape[0]))
      return base.head(params, features, state, action)

    def apply(params, obs, action):
      calls.append(("apply",))
      return base.apply(params, obs, action)

    counting = QFunction(init=base.init, trunk=trunk, head=head, apply=apply)
    agent = make_agent(counting, cem_samples=8, epsilon=1.0)
    key = jax.random.key(7)
    action, info = jax.jit(agent.act)(self.state, self.obs, key)
    # One trunk call, on the whole image batch [64, 8, 8, 3]; apply never runs.
    others = [c for c in calls if c[0] != "head"]
    self.assertEqual(others, [("trunk", (NUM_OBS,) + IMAGE_SHAPE)])
    heads = [c for c in calls if c[0] == "head"]
    self.assertNotEmpty(heads)
    # Every head call sees features, state and actions with one leading size:
    # the 8 samples of one example under vmap (or all 64 * 8 flattened), or
    # the 64 returned actions.
    for _, leading, num_state, num_action in heads:
      self.assertEqual(leading, {num_action})
      self.assertEqual(num_state, num_action)
      self.assertIn(num_action, (8, NUM_OBS * 8, NUM_OBS))
    # epsilon = 1: every action is random, none the greedy one.
    assert_valid_actions(self, action)
    self.assertTrue(np.all(info["explored"]))
    greedy, _ = self.act(self.obs, key, deterministic=True)
    self.assertFalse(np.any(np.all(np.isclose(action, greedy), axis=-1)))
    np.testing.assert_allclose(info["q"], self.q(action), rtol=1e-5)


class QtOptTargetTest(chex.TestCase):
  """The clipped double-Q target inside `update`, on a capped linear Q."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    agent = make_target_agent()
    cls.update = staticmethod(jax.jit(agent.update))
    obs = random_obs(0, 4)
    cls.state = agent.init(jax.random.key(0), obs, np.zeros((4, 7), np.float32))
    cls.batch = types.Transition(
      obs_tm1=obs,
      action_tm1=np.zeros((4, 7), np.float32),
      reward_t=np.array([0.0, 1.0, -0.01, 0.5], np.float32),
      discount_t=np.array([1.0, 1.0, 1.0, 0.0], np.float32),
      obs_t=random_obs(1, 4),
    )

  def run_update(self, polyak, lagged):
    state = self.state._replace(
      polyak_params=linear_params(*polyak), lagged_params=linear_params(*lagged)
    )
    _, metrics = self.update(state, self.batch)
    return metrics

  def assert_target(self, metrics, v):
    np.testing.assert_allclose(metrics["v_next_mean"], v, rtol=1e-5)
    # clip(r + 0.9 * d * v, 0, 1) per example, then the batch mean.
    r = np.array([0.0, 1.0, -0.01, 0.5])
    d = np.array([1.0, 1.0, 1.0, 0.0])
    expected = np.mean(np.clip(r + GAMMA * d * v, 0.0, 1.0))
    np.testing.assert_allclose(metrics["target_mean"], expected, rtol=1e-5)

  def test_lagged_is_lower(self):
    # Q_polyak logit = 2 min(T0, 0.2) + 2 close - 1: maximal, 0.4 + 2 - 1 =
    # 1.4, at any T0 >= 0.2 with close (the CEM argmax a').
    # Q_lagged logit = -4 min(T0, 0.2) + 2 open: at a', -0.8 (its own argmax,
    # T0 = -1 and open, would give 6, so a' from the wrong net is caught).
    # V = min(sigmoid(1.4), sigmoid(-0.8)) = sigmoid(-0.8) = 0.3100255;
    # targets (0.279023, 1, 0.269023, 0.5).
    cap = [0.2] + [10.0] * 6
    metrics = self.run_update(
      polyak=([2, 0, 0, 0, 0, 0, 2], -1, cap),
      lagged=([-4, 0, 0, 0, 0, 2, 0], 0, cap),
    )
    self.assert_target(metrics, sigmoid(-0.8))

  def test_polyak_is_lower(self):
    # Q_polyak logit as above with b = -3: at a', 0.4 + 2 - 3 = -0.6.
    # Q_lagged logit = 1.5 (constant). V = sigmoid(-0.6) = 0.3543437;
    # targets (0.318909, 1, 0.308909, 0.5).
    cap = [0.2] + [10.0] * 6
    metrics = self.run_update(
      polyak=([2, 0, 0, 0, 0, 0, 2], -3, cap), lagged=([0] * 7, 1.5)
    )
    self.assert_target(metrics, sigmoid(-0.6))

  def test_yaw_enters_through_max_yaw(self):
    # Q_polyak logit = 10 min(sin(yaw), 0.2) - 3: maximal, -1, where
    # sin(yaw) >= 0.2, i.e. CEM's yaw dim >= asin(0.2) / 0.25 = 0.805.
    # Q_lagged = 5 (constant), so V = sigmoid(-1) = 0.2689414.
    cap = [10.0] * 3 + [0.2] + [10.0] * 3
    metrics = self.run_update(
      polyak=([0, 0, 0, 10, 0, 0, 0], -3, cap), lagged=([0] * 7, 5)
    )
    self.assert_target(metrics, sigmoid(-1.0))
    # Uncapped: sin(yaw) <= sin(MAX_YAW), so V <= sigmoid(10 sin(0.25) - 3)
    # = 0.3715; a yaw in radians (no MAX_YAW scale) would give up to 0.92.
    # CEM gets near the bound; a yaw scaled by 0.1 could reach only 0.12.
    metrics = self.run_update(
      polyak=([0, 0, 0, 10, 0, 0, 0], -3), lagged=([0] * 7, 5)
    )
    v_max = sigmoid(10 * np.sin(0.25) - 3)
    self.assertLessEqual(float(metrics["v_next_mean"]), v_max + 1e-6)
    self.assertGreater(float(metrics["v_next_mean"]), v_max - 0.1)

  def test_axis_name_averages_gradients(self):
    # Two halves under a named axis == one update on the whole batch, since
    # the mean of the halves' mean-loss gradients is the whole batch's. The
    # targets are exact (the CEM argmax is on a plateau), so the halves'
    # different CEM keys do not matter. lr = 0 here: compare the gradients
    # through grad_norm, which is taken after the pmean.
    sharded = make_target_agent(axis_name="i")
    cap = [0.2] + [10.0] * 6
    state = self.state._replace(
      polyak_params=linear_params([2, 0, 0, 0, 0, 0, 2], -3, cap),
      lagged_params=linear_params([0] * 7, 1.5),
    )
    _, whole = self.update(state, self.batch)
    halves = jax.tree.map(lambda x: x.reshape((2, 2) + x.shape[1:]), self.batch)
    _, split = jax.jit(
      jax.vmap(sharded.update, in_axes=(None, 0), axis_name="i")
    )(state, halves)
    self.assertGreater(float(whole["grad_norm"]), 0.0)
    for name in ("loss", "grad_norm", "target_mean", "q_mean"):
      np.testing.assert_allclose(split[name], [whole[name]] * 2, rtol=1e-5)

  def test_return_lower_bound(self):
    agent = make_target_agent(target="bellman_or_return")
    update = jax.jit(agent.update)
    with self.assertRaisesRegex(ValueError, "mc_return"):
      update(self.state, self.batch)
    # V = sigmoid(-0.8) as in test_lagged_is_lower: Bellman targets
    # (0.279023, 1, 0.269023, 0.5), raised to clip(G) where G is higher.
    cap = [0.2] + [10.0] * 6
    state = self.state._replace(
      polyak_params=linear_params([2, 0, 0, 0, 0, 0, 2], -1, cap),
      lagged_params=linear_params([-4, 0, 0, 0, 0, 2, 0], 0, cap),
    )
    batch = self.batch._replace(
      mc_return=np.array([0.9, 0.2, -0.5, 0.7], np.float32)
    )
    _, metrics = update(state, batch)
    r = np.array([0.0, 1.0, -0.01, 0.5])
    d = np.array([1.0, 1.0, 1.0, 0.0])
    bellman = np.clip(r + GAMMA * d * sigmoid(-0.8), 0.0, 1.0)
    expected = np.maximum(bellman, np.clip(batch.mc_return, 0.0, 1.0))
    np.testing.assert_allclose(expected, [0.9, 1.0, 0.269023, 0.7], atol=1e-5)
    np.testing.assert_allclose(
      metrics["target_mean"], expected.mean(), rtol=1e-5
    )

  def test_return_target(self):
    agent = make_agent(
      make_linear_q_function(), optimizer=optax.sgd(0.0), target="return"
    )
    batch = self.batch._replace(
      mc_return=np.array([0.9, 0.2, -0.5, 1.7], np.float32)
    )
    _, metrics = jax.jit(agent.update)(self.state, batch)
    # clip(G, 0, 1); no bootstrapping (v = 0, the target nets never run).
    np.testing.assert_allclose(metrics["target_mean"], 2.1 / 4, rtol=1e-6)
    np.testing.assert_allclose(metrics["v_next_mean"], 0.0)
    with self.assertRaisesRegex(ValueError, "target must be one of"):
      make_agent(make_linear_q_function(), target="td")

  def test_conservative_penalty_in_the_loss(self):
    def run(w, b, weight):
      agent = make_agent(
        make_linear_q_function(),
        optimizer=optax.sgd(0.0),
        l2_scale=0.0,
        conservative_weight=weight,
        conservative_samples=256,
      )
      state = self.state._replace(params=linear_params(w, b))
      return jax.jit(agent.update)(state, self.batch)[1]

    # Q ignores the action: the penalty is 0 and the loss the log loss.
    metrics = run([0.0] * 7, 0.3, 2.0)
    np.testing.assert_allclose(metrics["conservative"], 0.0, atol=1e-5)
    # logit = 2 close - 1: the data (all-zero actions) has Q = s(-1) =
    # 0.26894; uniform actions close half the time (Q = s(1) = 0.73106), so
    # the penalty is near log((e^0.26894 + e^0.73106) / 2) - 0.26894 =
    # 0.25752.
    metrics = run([0, 0, 0, 0, 0, 0, 2.0], -1.0, 2.0)
    np.testing.assert_allclose(metrics["conservative"], 0.25752, atol=0.03)
    np.testing.assert_allclose(
      metrics["loss"],
      metrics["log_loss"] + 2.0 * metrics["conservative"],
      rtol=1e-5,
    )
    self.assertNotIn("conservative", run([0.0] * 7, 0.3, 0.0))

  def test_image_shift_augments_only_the_learner_images(self):
    q_function = make_mlp_q_function()

    def updated_params(batch, shift):
      agent = make_agent(
        q_function, optimizer=optax.sgd(0.1), target="return", image_shift=shift
      )
      state = agent.init(jax.random.key(0), batch.obs_tm1, batch.action_tm1)
      return agent.update(state, batch)[0].params

    batch = random_batch(5, 8)._replace(
      mc_return=np.full((8,), 0.5, np.float32)
    )
    # A shift of a constant image is the same image (edge replication): the
    # update, which with target="return" uses no randomness, is unchanged.
    flat = np.broadcast_to(
      batch.obs_tm1["image"][:, :1, :1], batch.obs_tm1["image"].shape
    )
    flat_batch = batch._replace(
      obs_tm1={**batch.obs_tm1, "image": flat},
      obs_t={**batch.obs_t, "image": flat},
    )
    chex.assert_trees_all_close(
      updated_params(flat_batch, 2), updated_params(flat_batch, 0), rtol=1e-6
    )
    # Textured images move: the gradient, and so the update, changes.
    shifted, plain = updated_params(batch, 2), updated_params(batch, 0)
    diffs = jax.tree.leaves(
      jax.tree.map(lambda a, b: jnp.abs(a - b).max(), shifted, plain)
    )
    self.assertGreater(max(float(d) for d in diffs), 1e-6)
    with self.assertRaisesRegex(ValueError, "image_shift"):
      make_agent(q_function, image_shift=-1)

  def test_loss_metrics_hand_computed(self):
    # Online logit at action 0 is b = 0: Q = 0.5, and the log loss is log 2
    # for any target. L2 = 0 (l2_scale = 0), so loss = log 2 = 0.6931472.
    state = self.state._replace(params=linear_params([0.0] * 7, 0.0))
    _, metrics = self.update(state, self.batch)
    np.testing.assert_allclose(metrics["q_mean"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(metrics["log_loss"], np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(metrics["l2"], 0.0)
    np.testing.assert_allclose(metrics["loss"], np.log(2.0), rtol=1e-6)


class QtOptUpdateTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.shared = shared()
    self.state = self.shared.state
    self.batch = random_batch(1, NUM_BATCH)

  def update(self, state, batch):
    return self.shared.update(state, batch)

  def test_update_metrics(self):
    state = self.state
    for i in range(3):
      state, metrics = self.update(state, random_batch(i, NUM_BATCH))
    self.assertEqual(int(state.step), 3)
    self.assertFalse(params_close(state.params, self.state.params))
    self.assertSetEqual(
      set(metrics),
      {
        "loss",
        "log_loss",
        "l2",
        "q_mean",
        "target_mean",
        "v_next_mean",
        "grad_norm",
      },
    )
    chex.assert_shape(list(metrics.values()), ())
    chex.assert_tree_all_finite(metrics)
    chex.assert_tree_all_finite(state._replace(key=None))
    self.assertGreater(float(metrics["grad_norm"]), 0.0)
    self.assertGreater(float(metrics["l2"]), 0.0)
    np.testing.assert_allclose(
      metrics["loss"], metrics["log_loss"] + metrics["l2"], rtol=1e-6
    )
    # The learner key moves on, so the target CEM differs between updates.
    self.assertFalse(
      np.array_equal(
        jax.random.key_data(state.key), jax.random.key_data(self.state.key)
      )
    )

  def test_devices_draw_their_own_conservative_actions(self):
    # Two "devices" (vmap with an axis name) on the same batch: with keys
    # folded by device, the pmean'd CQL term averages two draws and differs
    # from one device's draw; with the replicated key it would equal it.
    q_function = make_mlp_q_function()
    kwargs = dict(conservative_weight=1.0, conservative_samples=2)
    one = make_agent(q_function, **kwargs)
    two = make_agent(q_function, axis_name="d", **kwargs)
    example = (random_obs(0, 1), np.zeros((1, 7), np.float32))
    state = one.init(jax.random.key(0), *example)
    batch = random_batch(1, 4)
    _, single = jax.jit(one.update)(state, batch)
    stack = lambda x: jnp.stack([x, x])  # noqa: E731
    _, mapped = jax.jit(jax.vmap(two.update, in_axes=(None, 0), axis_name="d"))(
      state, jax.tree.map(stack, batch)
    )
    np.testing.assert_array_equal(mapped["q_mean"][0], mapped["q_mean"][1])
    self.assertGreater(
      abs(float(mapped["conservative"][0]) - float(single["conservative"])),
      1e-4,
    )

  def test_polyak_and_lagged_copies(self):
    # polyak' = 0.5 polyak + 0.5 params'; lagged' = params' when the new
    # step is a multiple of lag_every = 2, else lagged.
    state = self.state
    polyak, lagged = state.params, state.params
    for step in range(1, 5):
      state, _ = self.update(state, self.batch)
      self.assertEqual(int(state.step), step)
      polyak = jax.tree.map(
        lambda a, p: 0.5 * a + 0.5 * p, polyak, state.params
      )
      lagged = state.params if step % 2 == 0 else lagged
      chex.assert_trees_all_close(state.polyak_params, polyak, rtol=1e-5)
      chex.assert_trees_all_equal(state.lagged_params, lagged)
      # The copies really differ from the online params in between.
      self.assertFalse(params_close(state.polyak_params, state.params))
      if step % 2 == 1:
        self.assertFalse(params_close(state.lagged_params, state.params))

  def test_learns_to_close_when_closing_pays(self):
    # Reward 1 iff the logged action closed the fingers, discount 0: the
    # target is the reward, so Q must learn P(success | close) = 1.
    action = self.batch.action_tm1
    reward = (action[:, 6] > action[:, 5]).astype(np.float32)
    self.assertTrue(0 < reward.sum() < NUM_BATCH)  # both commands logged
    batch = self.batch._replace(
      reward_t=reward, discount_t=np.zeros((NUM_BATCH,), np.float32)
    )
    obs = random_obs(2, NUM_OBS)
    key = jax.random.key(3)
    act = self.shared.act
    # Before training the greedy choice is not uniformly "close".
    action, _ = act(self.state, obs, key, deterministic=True)
    self.assertFalse(np.all(action[:, 6] > action[:, 5]))
    state = self.state
    for _ in range(150):
      state, metrics = self.update(state, batch)
    self.assertLess(float(metrics["log_loss"]), 0.1)
    action, info = act(state, obs, key, deterministic=True)
    np.testing.assert_array_equal(action[:, 6] > action[:, 5], True)
    self.assertTrue(np.all(info["q"] > 0.9))


class ArchSplitTest(absltest.TestCase):
  """arch_batch_size: the batch's last examples train only the
  architecture parameters (by their log loss), the others only the
  weights (by the whole loss)."""

  def test_each_part_of_the_batch_trains_its_own_params(self):
    q_function = make_mlp_q_function()

    def is_arch(path):  # the head's last layer stands in for the logits
      return any(getattr(k, "key", k) == "Dense_2" for k in path)

    common = dict(
      optimizer=optax.sgd(1.0),
      target="return",
      is_arch_param=is_arch,
      conservative_weight=1.0,
      conservative_samples=2,
    )
    split = make_agent(q_function, arch_batch_size=4, **common)
    joint = make_agent(q_function, **common)
    # The held-out part's loss is its log loss alone (no CQL term).
    plain = make_agent(q_function, **dict(common, conservative_weight=0.0))
    batch = random_batch(5, 12)._replace(
      mc_return=np.random.default_rng(6).uniform(size=12).astype(np.float32)
    )
    part = lambda s: jax.tree.map(lambda x: x[s], batch)  # noqa: E731
    state = split.init(
      jax.random.key(0), random_obs(0, 1), np.zeros((1, 7), np.float32)
    )
    after, metrics = jax.jit(split.update)(state, batch)
    first, first_metrics = jax.jit(joint.update)(state, part(slice(8)))
    last, last_metrics = jax.jit(plain.update)(state, part(slice(8, None)))
    whole, _ = jax.jit(joint.update)(state, batch)
    np.testing.assert_allclose(metrics["loss"], first_metrics["loss"])
    np.testing.assert_allclose(
      metrics["arch_log_loss"], last_metrics["log_loss"]
    )
    flat = jax.tree_util.tree_flatten_with_path
    leaves = zip(
      flat(after.params)[0],
      jax.tree.leaves(first.params),
      jax.tree.leaves(last.params),
      jax.tree.leaves(whole.params),
      strict=True,
    )
    arch_leaves = 0
    for (path, got), from_first, from_last, from_whole in leaves:
      want = from_last if is_arch(path) else from_first
      arch_leaves += is_arch(path)
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
      self.assertFalse(np.allclose(got, from_whole))
    self.assertEqual(arch_leaves, 2)  # Dense_2's kernel and bias

  def test_negative_size_raises(self):
    with self.assertRaisesRegex(ValueError, "arch_batch_size"):
      make_agent(make_mlp_q_function(), arch_batch_size=-1)


if __name__ == "__main__":
  absltest.main()
