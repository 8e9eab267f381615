"""Tests for the behaviour policies of offline manipulation datasets.

Most tests need no physics: `aim_offset`, `random_move` and the random
policy are arithmetic, and the experts read only poses, so they act on
hand-built grasp states (a zero state with the gripper and objects placed
by hand) whose actions are computed by hand. One collection with the
dataset config's mix compiles the MJX physics (about 1-2 min on a busy
2-core CPU, nearly all of it compilation).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import grasp_dataset
from experiments import datasets
from jaxrl_vision import types
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import scripted

NUM_KEYS = 4000
OPEN, CLOSE = [1.0, 0.0], [0.0, 1.0]  # the one-hot gripper commands


def keys(seed: int, num: int = NUM_KEYS) -> jax.Array:
  return jax.random.split(jax.random.key(seed), num)


def assert_valid_actions(test: absltest.TestCase, action: np.ndarray):
  """[N, 7]: translation in [-1, 1], a unit (sin, cos) yaw within
  MAX_YAW, and a one-hot (open, close) gripper command."""
  action = np.asarray(action)
  test.assertTrue(np.all(np.abs(action[:, :3]) <= 1.0))
  np.testing.assert_allclose(np.hypot(action[:, 3], action[:, 4]), 1.0, 1e-6)
  yaw = np.arctan2(action[:, 3], action[:, 4])
  test.assertTrue(np.all(np.abs(yaw) <= common.MAX_YAW + 1e-6))
  gripper = action[:, 5:]
  test.assertTrue(np.all((gripper == 0.0) | (gripper == 1.0)))
  np.testing.assert_array_equal(gripper.sum(-1), 1.0)


@functools.partial(jax.jit, static_argnums=0)
def batch_act(policy, model, state, step_keys, episode_keys) -> jax.Array:
  """[N, 7]: `policy` in one `state` for N (step, episode) keys."""
  return jax.vmap(policy, in_axes=(None, None, 0, 0))(
    model, state, step_keys, episode_keys
  )


class AimOffsetTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.aim = staticmethod(
      jax.jit(
        jax.vmap(scripted.aim_offset, in_axes=(0, None, None)),
        static_argnums=(1, 2),
      )
    )

  def test_fixed_distance_and_zero(self):
    # low == high: every offset is exactly that far (a missing radius
    # scale gives length 1; a squared one 0.0004).
    offset = np.asarray(self.aim(keys(0), 0.02, 0.02))
    np.testing.assert_allclose(np.linalg.norm(offset, axis=-1), 0.02, 1e-5)
    np.testing.assert_array_equal(self.aim(keys(0, 8), 0.0, 0.0), 0.0)

  def test_distance_uniform_in_range(self):
    radius = np.linalg.norm(self.aim(keys(1), 0.01, 0.05), axis=-1)
    self.assertTrue(np.all((radius >= 0.01 - 1e-7) & (radius <= 0.05 + 1e-7)))
    # Uniform in [0.01, 0.05]: mean 0.03, standard error 0.0115 / sqrt(4000)
    # = 2e-4; the ends are reached. Fails for a radius drawn in [0, high] or
    # pinned to one end.
    self.assertAlmostEqual(float(radius.mean()), 0.03, delta=1e-3)
    self.assertLess(float(radius.min()), 0.012)
    self.assertGreater(float(radius.max()), 0.048)

  def test_direction_uniform(self):
    offset = np.asarray(self.aim(keys(2), 0.03, 0.03))
    unit = offset / np.linalg.norm(offset, axis=-1, keepdims=True)
    # A uniform angle: the mean unit vector is 0 (standard error
    # sqrt(0.5 / 4000) = 0.011 per axis) and each quadrant holds a quarter
    # (standard error 0.007). An angle drawn in [0, pi] (only +y) or in
    # [-pi/2, pi/2] (only +x) fails both.
    np.testing.assert_allclose(unit.mean(0), 0.0, atol=0.045)
    quadrant = 2 * (unit[:, 0] > 0) + (unit[:, 1] > 0)
    np.testing.assert_allclose(
      np.bincount(quadrant, minlength=4) / len(quadrant), 0.25, atol=0.03
    )


class RandomMoveTest(absltest.TestCase):
  def test_keeps_the_gripper_command_and_replaces_the_motion(self):
    move = jax.jit(jax.vmap(scripted.random_move, in_axes=(0, None)))
    yaw = 0.1
    for gripper in (OPEN, CLOSE):
      action = jnp.array([0.5, -0.5, 0.25, np.sin(yaw), np.cos(yaw), *gripper])
      out = np.asarray(move(keys(3, 512), action))
      assert_valid_actions(self, out)
      # The gripper command is the input's (fails if a random one is kept,
      # as `common.random_action`'s coin flip would give).
      np.testing.assert_array_equal(
        out[:, 5:], np.broadcast_to(gripper, (512, 2))
      )
      # Translation and yaw are new and spread over their ranges (fails if
      # the input's motion is kept).
      for i in range(3):
        self.assertFalse(np.any(out[:, i] == action[i]))
        self.assertLess(out[:, i].min(), -0.9)
        self.assertGreater(out[:, i].max(), 0.9)
      out_yaw = np.arctan2(out[:, 3], out[:, 4])
      self.assertLess(out_yaw.min(), -0.9 * common.MAX_YAW)
      self.assertGreater(out_yaw.max(), 0.9 * common.MAX_YAW)


class RandomPolicyTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.task = grasp.make_grasp_task(image_size=16)

  def actions(self, random_close: float, seed: int) -> np.ndarray:
    policy = scripted.make_behaviour_policies(
      self.task, grasp.straight_descent_action, random_close=random_close
    )["random"]
    # The random policy reads neither model nor state.
    act = jax.vmap(lambda k, e: policy(None, None, k, e))
    return np.asarray(jax.jit(act)(keys(seed), keys(seed + 100)))

  def test_close_rate(self):
    # 0: never closes; 1: always (a plain coin flip fails both).
    np.testing.assert_array_equal(
      self.actions(0.0, 4)[:, 5:], np.broadcast_to(OPEN, (NUM_KEYS, 2))
    )
    np.testing.assert_array_equal(
      self.actions(1.0, 5)[:, 5:], np.broadcast_to(CLOSE, (NUM_KEYS, 2))
    )
    # 0.3: standard error sqrt(0.21 / 4000) = 0.007; 1 - 0.3 fails.
    action = self.actions(0.3, 6)
    self.assertAlmostEqual(float(action[:, 6].mean()), 0.3, delta=0.03)
    assert_valid_actions(self, action)
    # The motion is uniformly random (fails if it were held still).
    self.assertGreater(float(action[:, :3].std()), 0.5)

  def test_bad_arguments_raise(self):
    make = scripted.make_behaviour_policies
    descent = grasp.straight_descent_action
    for kwargs in (
      dict(offset_range=(0.05, 0.01)),
      dict(offset_range=(-0.01, 0.01)),
      dict(random_close=1.5),
      dict(explore_epsilon=-0.1),
    ):
      with self.assertRaises(ValueError, msg=str(kwargs)):
        make(self.task, descent, **kwargs)


class ExpertPoliciesTest(absltest.TestCase):
  """The experts on hand-built grasp states, no physics.

  The gripper is at (0, 0, 0.10) m, open, yaw 0; the box (object 0, upright:
  identity orientation, so its jaw-alignment yaw is 0) at (-0.02, 0, 0.03)
  and the sphere and capsule far off at (+-0.1, 0.1). MAX_TRANSLATION is
  0.03 m, so an action's translation is metres / 0.03, clipped to [-1, 1].
  """

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.task = grasp.make_grasp_task(image_size=16)
    cls.model = cls.task.env.init_model()
    # Abstract evaluation only: the structure of a state, nothing compiled.
    structure = jax.eval_shape(cls.task.env.reset, cls.model, jax.random.key(0))
    cls.zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), structure)
    cls.hover = cls.state(grip=(0.0, 0.0, 0.10))
    # Fingertips at the box's grasp height (centre - 1 cm), above it: the
    # expert closes.
    cls.ready = cls.state(grip=(-0.02, 0.0, 0.02))
    # Built once, so `batch_act` compiles each policy once.
    cls.explore = {
      eps: cls.policies(explore_epsilon=eps, offset_range=(0.0, 0.0))
      for eps in (0.0, 0.5, 1.0)
    }

  @classmethod
  def state(cls, grip) -> types.EnvState:
    objects = jnp.array(
      [[-0.02, 0.0, 0.03], [0.1, 0.1, 0.02], [-0.1, 0.1, 0.02]]
    )
    data = cls.zero.physics.data
    data = data.replace(
      qpos=data.qpos.at[:3].set(jnp.array(grip)),
      xpos=data.xpos.at[cls.task.layout.object_bodies].set(objects),
      xmat=jnp.broadcast_to(jnp.eye(3), data.xmat.shape),
    )
    return cls.zero._replace(physics=cls.zero.physics._replace(data=data))

  @classmethod
  def policies(cls, **kwargs):
    return scripted.make_behaviour_policies(
      cls.task, grasp.straight_descent_action, expert_noise=0.0, **kwargs
    )

  def act(self, policy, state, seed) -> np.ndarray:
    """[NUM_KEYS, 7] actions of `policy` in `state`, a step key and an
    episode key each."""
    return np.asarray(
      batch_act(policy, self.model, state, keys(seed), keys(seed + 100))
    )

  def test_hand_computed_expert_and_offset(self):
    expert = self.task.expert_action
    plain = expert(self.model, self.hover, jax.random.key(0), 0.0)
    # x: -0.02 / 0.03; the box is 2 cm off (> 1.5 cm): travel to the
    # 7 cm hover height, z = (0.07 - 0.10) / 0.03 = -1; yaw 0; open.
    np.testing.assert_allclose(plain, [-2 / 3, 0, -1, 0, 1, *OPEN], atol=1e-6)
    # Aimed 3 cm toward +x: x = (-0.02 + 0.03) / 0.03 = 1/3, one full step
    # (1.0) toward +x; 1 cm off (< 1.5 cm): descend to the box's grasp
    # height, z = (0.02 - 0.10) / 0.03 -> -1. Fails if the offset is
    # ignored, subtracted or applied in y.
    aimed = expert(
      self.model,
      self.hover,
      jax.random.key(0),
      0.0,
      aim_offset=jnp.array([0.03, 0.0]),
    )
    np.testing.assert_allclose(aimed, [1 / 3, 0, -1, 0, 1, *OPEN], atol=1e-6)

  def test_offset_expert_aims_per_episode(self):
    low, high = 0.015, 0.05
    policy = self.policies(offset_range=(low, high))["offset_expert"]
    action = self.act(policy, self.hover, 7)

    # It is the expert aimed at `aim_offset(episode_key)` (fails if it
    # drew the offset from the step key, or ignored it).
    def aimed(key, episode_key):
      offset = scripted.aim_offset(episode_key, low, high)
      return self.task.expert_action(
        self.model, self.hover, key, 0.0, aim_offset=offset
      )

    np.testing.assert_array_equal(
      action, jax.jit(jax.vmap(aimed))(keys(7), keys(107))
    )
    # Hand-checked: the box's aim point is the nearest for every offset
    # (at most 2 + 5 = 7 cm off; the others at least 14 - 5 = 9 cm), so the
    # x-y error is (-0.02, 0) m + offset and, for offsets toward +x,
    # x = clip(-2/3 + offset_x / 0.03): a step toward +x of the plain -2/3.
    offset = jax.vmap(scripted.aim_offset, in_axes=(0, None, None))(
      keys(107), low, high
    )
    toward_x = np.asarray(offset[:, 0]) > 0
    np.testing.assert_allclose(
      action[toward_x, 0],
      np.clip(-2 / 3 + offset[toward_x, 0] / 0.03, -1, 1),
      atol=1e-5,
    )
    # Episodes aim differently; one episode aims the same at every step.
    self.assertGreater(len(np.unique(action[:, 0])), NUM_KEYS // 2)
    one_episode = batch_act(
      policy,
      self.model,
      self.hover,
      keys(8),
      jnp.broadcast_to(jax.random.key(9), (NUM_KEYS,)),
    )
    np.testing.assert_array_equal(
      one_episode, np.broadcast_to(one_episode[0], (NUM_KEYS, 7))
    )

  def test_zero_offset_is_the_expert_exactly(self):
    # offset_range (0, 0): aim_offset is exactly zero, so the offset expert
    # is the expert bit for bit (fails for any offset left in).
    policies = self.explore[0.0]
    np.testing.assert_array_equal(
      self.act(policies["offset_expert"], self.hover, 10),
      self.act(policies["expert"], self.hover, 10),
    )

  def test_explore_epsilon(self):
    for state, gripper in ((self.hover, OPEN), (self.ready, CLOSE)):
      expert = np.asarray(
        self.task.expert_action(self.model, state, jax.random.key(0), 0.0)
      )
      np.testing.assert_array_equal(expert[5:], gripper)
      # 0: the expert's action exactly, at every step key (fails if a
      # random move ever replaces it).
      for name in ("expert", "offset_expert"):
        action = self.act(self.explore[0.0][name], state, 12)
        np.testing.assert_array_equal(
          action, np.broadcast_to(expert, (NUM_KEYS, 7))
        )
      # 1: a random move at every step, with the expert's gripper command
      # (fails if the motion is kept, or the random coin-flip gripper).
      action = self.act(self.explore[1.0]["expert"], state, 14)
      np.testing.assert_array_equal(
        action[:, 5:], np.broadcast_to(gripper, (NUM_KEYS, 2))
      )
      self.assertFalse(np.any(action[:, :3] == expert[:3]))
      assert_valid_actions(self, action)
      # 0.5: about half the steps (standard error 0.008).
      action = self.act(self.explore[0.5]["expert"], state, 16)
      moved = np.any(action[:, :3] != expert[:3], axis=-1)
      self.assertAlmostEqual(float(moved.mean()), 0.5, delta=0.04)


class DefaultMixCollectionTest(absltest.TestCase):
  """The dataset config's mix (configs/grasp_dataset.py) at 16 px."""

  NUM_EPISODES = 128

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # The pipeline's own collection: the mix stepped over env programs.
    config = grasp_dataset.get_config()
    config.task.params.image_size = 16
    config.num_episodes = config.episodes_per_call = cls.NUM_EPISODES
    cls.episodes = datasets.collect(config, log=lambda _: None)

  def test_expert_succeeds_more_than_offset_expert(self):
    ep = self.episodes
    rate = {}
    for i, name in enumerate(scripted.POLICY_NAMES):
      mask = ep.policy == i
      self.assertTrue(mask.any(), name)  # every policy of the mix acted
      rate[name] = float(ep.success[mask].mean())
    # Aiming 1.5-5 cm off must cost success: fails if the offset expert
    # aims at the object (both near the expert's ~0.8) or if the aim were
    # lost by the collector.
    self.assertGreater(rate["expert"], rate["offset_expert"] + 0.2, rate)
    # Every gripper command is one-hot. (Not the yaw: the expert's noise
    # may take it past MAX_YAW, which the env clips.)
    gripper = ep.action[..., 5:].reshape(-1, 2)
    self.assertTrue(np.all((gripper == 0.0) | (gripper == 1.0)))
    np.testing.assert_array_equal(gripper.sum(-1), 1.0)


if __name__ == "__main__":
  absltest.main()
