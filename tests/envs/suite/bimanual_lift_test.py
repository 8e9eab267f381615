"""Bimanual Lifting: the expert lifts the pot with both hands, random
actions do not, success needs the pot level, the reward is the spec's row,
the contract holds, and demonstrations record."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.suite import bimanual_lift as bl
from jaxrl_vision.envs.suite import curriculum

NUM_WORLDS = 16  # per policy
LENGTH = 32
TILTS = np.deg2rad([0.0, 20.0, 45.0])  # hand-built worlds: pot 20 cm up
EXPERT, RANDOM, HOLD = 0, 1, 2


@functools.cache
def _rollouts():
  """One compiled, vmapped rollout in randomised worlds (masses,
  friction): the expert in worlds [0, 16), random actions in [16, 32),
  and in the last 3 worlds the pot put 20 cm up (its centre) at each tilt
  of `TILTS` about x, the hands holding still."""
  task = bl.make_bimanual_lift_task(episode_length=LENGTH)
  num = 2 * NUM_WORLDS + len(TILTS)
  models, axes = task.randomize_model(
    task.env.init_model(), jax.random.key(0), num
  )
  keys = jax.random.split(jax.random.key(1), num)
  policies = np.repeat([EXPERT, RANDOM, HOLD], [NUM_WORLDS] * 2 + [3])
  tilts = np.zeros(num, np.float32)
  tilts[-len(TILTS) :] = TILTS
  hold = jnp.zeros(10).at[jnp.array([4, 9])].set(-1.0)  # jaws open
  qadr = task.layout.object_qpos[0]

  def episode(model, key, policy, tilt):
    reset_key, key = jax.random.split(key)
    first = task.env.reset(model, reset_key)
    quat = jnp.stack([jnp.cos(tilt / 2), jnp.sin(tilt / 2), 0.0, 0.0])
    pose = jnp.concatenate([jnp.array([0.0, 0.0, 0.2]), quat])
    data = first.physics.data
    qpos = jnp.where(
      policy == HOLD, data.qpos.at[qadr : qadr + 7].set(pose), data.qpos
    )
    first = first._replace(
      physics=first.physics._replace(data=data.replace(qpos=qpos))
    )

    def act(model, state, key):
      return jnp.select(
        [policy == EXPERT, policy == RANDOM],
        [task.expert_action(model, state, key), task.random_action(key)],
        hold,
      )

    def body(state, k):
      state = task.env.step(model, state, act(model, state, k))
      return state, state

    _, states = jax.lax.scan(body, first, jax.random.split(key, LENGTH))
    return first, states

  run = jax.jit(jax.vmap(episode, in_axes=(axes, 0, 0, 0)))
  first, states = run(models, keys, policies, tilts)
  return task, models, first, states


def _numpy_reward(task, models, states):
  """The spec's reward row recomputed from the states' poses and contacts."""
  data = states.physics.data
  pot = task.layout.object_bodies[0]
  pot_geom = task.layout.object_geoms[0]
  handle_ids = [task.mj_model.geom(f"handle_{s}").id for s in bl.HANDS]
  fingers = np.asarray(task.layout.finger_geoms).reshape(2, 2)
  half_height = np.asarray(models.geom_size)[:, pot_geom, 2][:, None]
  elev = np.asarray(data.xpos)[:, :, pot, 2] - half_height
  cos_tilt = np.asarray(data.xmat)[:, :, pot, 2, 2]
  level = cos_tilt >= np.cos(np.deg2rad(30.0))
  reward = 10.0 * level * np.clip(elev - 0.05, 0.0, 0.2)
  contact = data._impl.contact  # pylint: disable=protected-access
  g1, g2 = np.asarray(contact.geom1), np.asarray(contact.geom2)
  close = np.asarray(contact.dist) < common.CONTACT_TOLERANCE
  qpos = np.asarray(data.qpos)
  touches = []
  for hand in range(2):
    handle = handle_ids[hand]
    touch = np.zeros(close.shape[:2], bool)
    for finger in fingers[hand]:
      pair = ((g1 == handle) & (g2 == finger)) | (
        (g1 == finger) & (g2 == handle)
      )
      touch |= np.any(pair & close, axis=-1)
    tip = qpos[..., 6 * hand : 6 * hand + 3]
    d = np.linalg.norm(np.asarray(data.geom_xpos)[:, :, handle] - tip, axis=-1)
    reward = reward + np.where(touch, 0.5, 0.5 * (1.0 - np.tanh(d)))
    touches.append(touch)
  return reward, elev, cos_tilt, np.stack(touches, -1)


class BimanualLiftTest(absltest.TestCase):
  def test_expert_lifts_random_does_not(self):
    _, _, _, states = _rollouts()
    success = np.asarray(states.metrics["success"])
    expert, random = success[:NUM_WORLDS], success[NUM_WORLDS : 2 * NUM_WORLDS]
    self.assertGreaterEqual(expert[:, -1].mean(), 0.9, expert[:, -1])
    self.assertLessEqual(random.max(), 0.0)

  def test_reward_is_the_spec_row(self):
    task, models, _, states = _rollouts()
    reward, elev, cos_tilt, touch = _numpy_reward(task, models, states)
    np.testing.assert_allclose(states.reward, reward, rtol=1e-5, atol=1e-5)
    m = {k: np.asarray(v) for k, v in states.metrics.items()}
    np.testing.assert_allclose(
      states.reward, m["lift"] + m["reach_left"] + m["reach_right"], rtol=1e-5
    )
    np.testing.assert_array_equal(
      np.stack([m["grasp_left"], m["grasp_right"]], -1), touch
    )
    success = (elev > bl.SUCCESS_HEIGHT) & (cos_tilt >= np.cos(np.pi / 6))
    np.testing.assert_array_equal(m["success"], success)
    # Every branch is exercised: both grasps, a lift, and the reward's cap.
    self.assertTrue(touch[:NUM_WORLDS, -1].all())
    self.assertGreater(m["lift"].max(), 1.0)
    self.assertTrue(np.all(states.reward <= 3.0 + 1e-6))

  def test_success_needs_the_pot_level(self):
    # After one step the hand-built pots (20 cm up, level, 20 and 45
    # degrees) are still > 15 cm up: only the 45 degree one fails.
    task, _, _, states = _rollouts()
    after = jax.tree.map(lambda x: x[-len(TILTS) :, 0], states)
    pot = task.layout.object_bodies[0]
    self.assertTrue(
      np.all(np.asarray(after.physics.data.xpos[:, pot, 2]) > 0.15)
    )
    np.testing.assert_allclose(
      after.physics.data.xmat[:, pot, 2, 2], np.cos(TILTS), atol=0.02
    )
    np.testing.assert_array_equal(after.metrics["success"], [1.0, 1.0, 0.0])
    # Tilted over 30 degrees the lift term is 0 too.
    lift = np.asarray(after.metrics["lift"])
    self.assertGreater(lift[0], 1.0)
    self.assertEqual(lift[2], 0.0)

  def test_observation_shapes_and_registry(self):
    task, _, first, states = _rollouts()
    num = 2 * NUM_WORLDS + len(TILTS)
    self.assertEqual(first.obs["proprio"].shape, (num, 28))
    self.assertEqual(states.obs["object"].shape, (num, LENGTH, bl.OBJECT_SIZE))
    self.assertEqual(task.env.spec.obs_shape, (28 + 25,))
    self.assertEqual(task.env.spec.action_shape, (10,))
    self.assertEqual(task.random_action(jax.random.key(0)).shape, (10,))
    # object = pot pos, quat, handles, handles - tips, pot - tips.
    data = states.physics.data
    obs = np.asarray(states.obs["object"])
    handle = task.mj_model.geom("handle_right").id
    tip = np.asarray(data.qpos[..., 6:9])
    np.testing.assert_allclose(obs[..., 10:13], data.geom_xpos[:, :, handle])
    np.testing.assert_allclose(
      obs[..., 16:19], data.geom_xpos[:, :, handle] - tip, atol=1e-6
    )
    pot = np.asarray(data.xpos[:, :, task.layout.object_bodies[0]])
    np.testing.assert_allclose(obs[..., 22:25], pot - tip, atol=1e-6)
    env = registry.make_env(
      "bimanual_lifting", obs_mode="pixels", image_size=16
    )
    state = jax.jit(env.reset)(env.init_model(), jax.random.key(0))
    self.assertEqual(state.obs["image"].shape, (16, 16, 3))
    self.assertEqual(state.obs["proprio"].shape, (28,))

  def test_curriculum_records_demos(self):
    task, _, _, _ = _rollouts()
    num, length = 4, 24
    models, axes = task.randomize_model(
      task.env.init_model(), jax.random.key(3), num
    )
    # Traced, not compiled (a compile costs over a minute here): the
    # expert's episodes are the rollout's, checked above.
    demos = jax.eval_shape(
      lambda k: curriculum.record_demos(task, models, axes, k, num, length),
      jax.random.key(4),
    )
    self.assertEqual(demos.qpos.shape, (num, length, task.mj_model.nq))
    self.assertEqual(demos.closed.shape, (num, length, 2))  # per hand
    self.assertEqual(demos.success.shape, (num,))

  def test_straight_descent_aims_below_each_hand(self):
    # The reference without x-y skill: no x-y move from either hand, where
    # the expert moves both toward their handles.
    task, _, first, _ = _rollouts()
    model = task.env.init_model()
    state = jax.tree.map(lambda x: x[0], first)
    key = jax.random.key(0)
    straight = jax.jit(task.straight_descent)(model, state, key)
    expert = jax.jit(task.expert_action)(model, state, key)
    xy = np.array([0, 1, 5, 6])  # each hand's dx, dy
    np.testing.assert_allclose(np.asarray(straight)[xy], 0.0, atol=1e-6)
    self.assertGreater(np.abs(np.asarray(expert)[xy]).max(), 0.05)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "robot"):
      bl.make_bimanual_lift_task(robot="arm7")
    with self.assertRaisesRegex(ValueError, "overhead"):
      bl.make_bimanual_lift_task(camera="wrist")
    with self.assertRaisesRegex(ValueError, "pixels"):
      bl.make_bimanual_lift_task(frame_stack=3)


if __name__ == "__main__":
  absltest.main()
