"""Bimanual Peg-in-hole: the expert inserts the peg, random actions and the
no-turn reference mostly do not, the reward and success are the spec's
row, the peg's radius is drawn per world, and the contract holds (the
curriculum records demos as for any task: the expert's episodes here run
vmapped over randomised models, as `curriculum.record_demos` runs them)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import surreal_ppo_bimanual_peg_in_hole
from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import bimanual_peg_in_hole as ph
from jaxrl_vision.recipes import surreal_ppo

NUM_WORLDS = 16  # per policy
LENGTH = 12  # the expert has the peg fully in by step 9
EXPERT, RANDOM, DESCENT, HOLD = 0, 1, 2, 3
# Hand-built worlds, the hands holding still: the left fingertips at
# (X, 0, Z) turned a quarter turn (the hole's normal along -x); the right
# hand turned by `turn` from it, its peg's centre `short` metres short of
# the hole along its axis and `rise` metres above it. Expected (t, d, cos).
X, Z = -0.10, 0.17
BUILT = {
  "success": (0.0, 0.0, 0.0),
  "angle": (0.4, 0.0, 0.0),  # cos 0.4 = 0.92 < 0.95
  "t": (0.0, 0.16, 0.0),  # t = 0.16 > 0.14
  "d": (0.0, 0.12, 0.07),  # d = 0.07 > 0.06 (clear of the board's top)
}


def _built_qpos(turn, short, rise):
  """[12] hand joints of a hand-built world (see `BUILT`)."""
  hole = np.array([X, 0.0, Z - ph.BOARD_DROP])
  yaw = ph.START_YAW + turn
  axis = np.array([-np.sin(yaw), np.cos(yaw), 0.0])  # the right hand's +y
  peg = hole - short * axis + [0.0, 0.0, rise]
  tip = peg - ph.PEG_OFFSET * axis
  open_ = [scene.FINGER_OPEN] * 2
  return np.concatenate([[X, 0.0, Z, ph.START_YAW], open_, tip, [yaw], open_])


@functools.cache
def _rollouts():
  """One compiled, vmapped rollout in randomised worlds (peg radius,
  friction): the expert, random actions and the no-turn reference in
  `NUM_WORLDS` worlds each, then the `BUILT` worlds, hands held still."""
  task = ph.make_bimanual_peg_in_hole_task(episode_length=LENGTH)
  num = 3 * NUM_WORLDS + len(BUILT)
  models, axes = task.randomize_model(
    task.env.init_model(), jax.random.key(0), num
  )
  keys = jax.random.split(jax.random.key(1), num)
  policies = np.repeat(
    [EXPERT, RANDOM, DESCENT, HOLD], [NUM_WORLDS] * 3 + [len(BUILT)]
  )
  built = np.zeros((num, 12), np.float32)
  built[-len(BUILT) :] = [_built_qpos(*v) for v in BUILT.values()]
  hold = jnp.zeros(10).at[jnp.array([4, 9])].set(-1.0)  # jaws open

  def episode(model, key, policy, hands):
    reset_key, key = jax.random.split(key)
    first = task.env.reset(model, reset_key)
    data = first.physics.data
    qpos = jnp.where(policy == HOLD, data.qpos.at[:12].set(hands), data.qpos)
    first = first._replace(
      physics=first.physics._replace(data=data.replace(qpos=qpos))
    )

    def act(model, state, key):
      return jnp.select(
        [policy == EXPERT, policy == RANDOM, policy == DESCENT],
        [
          task.expert_action(model, state, key),
          task.random_action(key),
          task.straight_descent(model, state, key),
        ],
        hold,
      )

    def body(state, k):
      state = task.env.step(model, state, act(model, state, k))
      return state, state

    _, states = jax.lax.scan(body, first, jax.random.split(key, LENGTH))
    # The expert's and the reference's first actions, for the reference's
    # test (in this compile, not one more).
    actions = jnp.stack(
      [
        task.expert_action(model, first, key),
        task.straight_descent(model, first, key),
      ]
    )
    return first, states, actions

  # XLA:CPU's backend at -O0 compiles this in ~45 s instead of ~70 s on the
  # 2-core CPU; the run takes ~1.5 s either way.
  cpu = jax.default_backend() == "cpu"
  run = jax.jit(
    jax.vmap(episode, in_axes=(axes, 0, 0, 0)),
    compiler_options={"xla_backend_optimization_level": 0} if cpu else None,
  )
  first, states, actions = run(models, keys, policies, built)
  return task, models, first, states, actions


def _numpy_terms(task, states):
  """The spec's row recomputed from the bodies' poses: (reward, t, d, cos,
  distance), each [worlds, steps]."""
  data = states.physics.data
  xpos = np.asarray(data.xpos, np.float64)
  xmat = np.asarray(data.xmat, np.float64)
  peg_id, board_id = (
    task.mj_model.body("peg").id,
    task.mj_model.body("board").id,
  )
  peg, axis = xpos[..., peg_id, :], xmat[..., peg_id, :, 2]
  hole, normal = xpos[..., board_id, :], xmat[..., board_id, :, 2]
  t = np.sum((hole - peg) * axis, -1)
  d = np.linalg.norm(np.cross(axis, peg - hole), axis=-1)
  cos = np.abs(np.sum(normal * axis, -1))
  dist = np.linalg.norm(peg - hole, axis=-1)
  success = (d < 0.06) & (t >= -0.12) & (t <= 0.14) & (cos > 0.95)
  reward = success + (1 - np.tanh(dist)) + (1 - np.tanh(d))
  reward += (1 - np.tanh(np.abs(t))) + cos
  return reward, t, d, cos, dist


class BimanualPegInHoleTest(absltest.TestCase):
  def test_expert_inserts_random_and_no_turn_mostly_do_not(self):
    *_, states, _ = _rollouts()
    final = np.asarray(states.metrics["success"])[:, -1]
    expert, random, descent = final[: 3 * NUM_WORLDS].reshape(3, NUM_WORLDS)
    self.assertGreaterEqual(expert.mean(), 0.9, expert)
    self.assertLessEqual(random.mean(), 0.2, random)
    # Without turning the peg onto the hole's normal only the worlds whose
    # start yaws agree succeed.
    self.assertLessEqual(descent.mean(), 0.75, descent)
    # The expert has the peg all the way in: t = d = 0, axes aligned.
    obs = np.asarray(states.obs["object"])[:NUM_WORLDS, -1]
    np.testing.assert_allclose(obs[:, 14:16], 0.0, atol=3e-3)
    np.testing.assert_allclose(obs[:, 16], 1.0, atol=1e-3)
    inserted = np.asarray(states.metrics["inserted"])[:, -1]
    np.testing.assert_array_equal(inserted[:NUM_WORLDS], 1.0)
    # `inserted` is the stricter flag: never without success.
    self.assertTrue(np.all(inserted <= final))

  def test_reward_is_the_spec_row(self):
    task, _, _, states, _ = _rollouts()
    reward, t, d, cos, dist = _numpy_terms(task, states)
    np.testing.assert_allclose(states.reward, reward, rtol=1e-5, atol=1e-5)
    m = {k: np.asarray(v) for k, v in states.metrics.items()}
    np.testing.assert_allclose(m["reach"], 1 - np.tanh(dist), atol=1e-5)
    np.testing.assert_allclose(m["perpendicular"], 1 - np.tanh(d), atol=1e-5)
    np.testing.assert_allclose(m["along"], 1 - np.tanh(np.abs(t)), atol=1e-5)
    np.testing.assert_allclose(m["cos"], cos, atol=1e-5)
    # Success flags agree away from the thresholds (float32 vs float64).
    success = (d < 0.06) & (t >= -0.12) & (t <= 0.14) & (cos > 0.95)
    margin = np.min(np.abs([d - 0.06, t + 0.12, t - 0.14, cos - 0.95]), axis=0)
    sure = margin > 1e-5
    np.testing.assert_array_equal(m["success"][sure], success[sure])
    self.assertTrue(np.all(states.reward <= 5.0 + 1e-5))
    self.assertGreater(states.reward.max(), 5.0 - 1e-3)  # the expert's

  def test_hand_built_success_and_failures(self):
    # After one step held still: the inserted peg succeeds; turned by 0.4
    # rad, 16 cm short, or 12 cm short and 7 cm high it fails on that
    # criterion alone.
    task, _, _, states, _ = _rollouts()
    after = jax.tree.map(lambda x: np.asarray(x)[-len(BUILT) :, 0], states)
    obs = after.obs["object"]
    expected = np.array(
      [[0.0, 0.0, 1.0], [0.0, 0.0, np.cos(0.4)], [0.16, 0.0, 1.0]]
      + [[0.12, 0.07, 1.0]]
    )
    np.testing.assert_allclose(obs[:, 14:17], expected, atol=2e-3)
    np.testing.assert_array_equal(after.metrics["success"], [1, 0, 0, 0])
    np.testing.assert_array_equal(after.metrics["inserted"], [1, 0, 0, 0])
    reward, *_ = _numpy_terms(task, after)
    np.testing.assert_allclose(after.reward, reward, rtol=1e-5)
    self.assertGreater(after.reward[0], 4.99)  # 1 + 1 + 1 + 1 + 1
    # No contact: the turned peg still clears the hole's edges.
    dist = after.physics.data._impl.contact.dist
    self.assertGreater(dist.min(), 0.0)

  def test_peg_radius_per_world(self):
    task, models, *_ = _rollouts()
    peg = task.mj_model.geom("peg").id
    size = np.asarray(models.geom_size[:, peg])
    radius = size[:, 0]
    self.assertTrue(np.all((radius >= 0.015) & (radius <= 0.03)))
    self.assertGreater(radius.std(), 0.003)
    np.testing.assert_allclose(size[:, 1] + radius, ph.PEG_LENGTH / 2)
    body = task.mj_model.body("peg").id
    mass = np.asarray(models.body_mass[:, body])
    solid = 800.0 * np.pi * radius**2 * (2 * size[:, 1] + 4 / 3 * radius)
    np.testing.assert_allclose(mass, solid, rtol=1e-5)

  def test_observation_shapes_and_registry(self):
    task, _, first, states, _ = _rollouts()
    num = 3 * NUM_WORLDS + len(BUILT)
    self.assertEqual(first.obs["proprio"].shape, (num, 28))
    self.assertEqual(states.obs["object"].shape, (num, LENGTH, 17))
    self.assertEqual(task.env.spec.obs_shape, (28 + 17,))
    self.assertEqual(task.env.spec.action_shape, (10,))
    # object = hole, its quaternion, peg - hole, the peg's quaternion.
    data = states.physics.data
    obs = np.asarray(states.obs["object"])
    peg, board = task.mj_model.body("peg").id, task.mj_model.body("board").id
    np.testing.assert_allclose(obs[..., 0:3], data.xpos[:, :, board])
    np.testing.assert_allclose(obs[..., 3:7], data.xquat[:, :, board])
    np.testing.assert_allclose(
      obs[..., 7:10], data.xpos[:, :, peg] - data.xpos[:, :, board], atol=1e-6
    )
    np.testing.assert_allclose(obs[..., 10:14], data.xquat[:, :, peg])
    self.assertIn("bimanual_peg_in_hole", registry.env_names())
    self.assertIn("bimanual_peg_in_hole", surreal_ppo.TASKS)
    config = surreal_ppo_bimanual_peg_in_hole.get_config("smoke")
    surreal_ppo.validate(config, 1)
    env = registry.make_env(
      "bimanual_peg_in_hole", obs_mode="pixels", image_size=16
    )
    # Traced, not compiled (the camera's compile costs ~9 s here; bimanual
    # lifting's test renders with it).
    state = jax.eval_shape(env.reset, env.init_model(), jax.random.key(0))
    self.assertEqual(state.obs["image"].shape, (16, 16, 3))
    self.assertEqual(state.obs["image"].dtype, jnp.uint8)
    self.assertEqual(state.obs["proprio"].shape, (28,))

  def test_no_turn_reference_never_turns(self):
    # At the start the expert turns the right hand toward the left's
    # heading, the reference never does; neither closes a grip.
    *_, first, _, actions = _rollouts()
    expert, straight = np.asarray(actions[:NUM_WORLDS]).swapaxes(0, 1)
    qpos = np.asarray(first.physics.data.qpos[:NUM_WORLDS])
    gap = qpos[:, 3] - qpos[:, 9]  # left yaw - right yaw
    np.testing.assert_array_equal(straight[:, 8], 0.0)
    np.testing.assert_array_equal(np.sign(expert[:, 8]), np.sign(gap))
    np.testing.assert_array_equal(expert[:, [4, 9]], -1.0)
    np.testing.assert_array_equal(straight[:, [4, 9]], -1.0)

  def test_bad_arguments(self):
    make = ph.make_bimanual_peg_in_hole_task
    for kwargs, message in (
      (dict(robot="arm7"), "robot"),
      (dict(camera="wrist"), "overhead"),
      (dict(frame_stack=3), "pixels"),
      (dict(episode_length=0), "episode_length"),
    ):
      with self.assertRaisesRegex(ValueError, message) as caught:
        make(**kwargs)
      self.assertNotIn("\n", str(caught.exception))


if __name__ == "__main__":
  absltest.main()
