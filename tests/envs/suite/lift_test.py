"""Block Lifting: the expert lifts, the reward is robosuite's, the
contract holds."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.suite import lift

NUM_WORLDS = 32
LENGTH = 30


@functools.cache
def _rollouts():
  """Expert and random episodes in randomised worlds (sizes, masses,
  friction), compiled once for the module."""
  task = lift.make_lift_task(episode_length=LENGTH)
  models, axes = task.randomize_model(
    task.env.init_model(), jax.random.key(0), NUM_WORLDS
  )
  keys = jax.random.split(jax.random.key(1), NUM_WORLDS)

  def policy(model, state, key, expert):
    return jax.lax.cond(
      expert,
      lambda: task.expert_action(model, state, key),
      lambda: task.random_action(key),
    )

  def run(expert):
    return jax.vmap(
      lambda m, k: common.rollout(
        task.env, functools.partial(policy, expert=expert), m, k, LENGTH
      ),
      in_axes=(axes, 0),
    )(models, keys)

  run = jax.jit(run)
  return task, models, run(True), run(False)


class LiftTest(absltest.TestCase):
  def test_expert_lifts_random_does_not(self):
    _, _, (_, expert), (_, random) = _rollouts()
    success = np.asarray(expert.metrics["success"][:, -1])
    self.assertGreaterEqual(success.mean(), 0.9)
    self.assertLessEqual(np.asarray(random.metrics["success"]).max(), 0.0)

  def test_reward_is_robosuites_dense_lift(self):
    task, models, (first, states), _ = _rollouts()
    data = states.physics.data
    cube = np.asarray(data.xpos[:, :, task.layout.object_bodies[0]])
    grip = np.asarray(data.qpos[:, :, :3])
    reach = 1 - np.tanh(10 * np.linalg.norm(cube - grip, axis=-1))
    lifted = cube[..., 2] > 0.04
    np.testing.assert_allclose(states.metrics["reach"], reach, atol=1e-5)
    np.testing.assert_array_equal(states.metrics["success"], lifted)
    grasp = np.asarray(states.metrics["grasp"])
    self.assertTrue(set(np.unique(grasp)) <= {0.0, 0.25})
    self.assertGreater(grasp.max(), 0)  # the expert's fingers hold it
    np.testing.assert_allclose(states.reward, lifted + reach + grasp, atol=1e-5)
    # Cube sizes were drawn per world in the spec's range.
    half = np.asarray(models.geom_size[:, task.layout.object_geoms[0], 0])
    self.assertTrue(np.all((half >= 0.015) & (half <= 0.025)))
    self.assertGreater(half.std(), 0.002)
    # Truncated at the limit, never terminated; first state at rest.
    np.testing.assert_array_equal(
      states.truncated[0], np.arange(1, LENGTH + 1) >= LENGTH
    )
    self.assertFalse(np.any(states.terminated))
    self.assertTrue(np.all(np.asarray(first.reward) == 0))

  def test_state_observation(self):
    task, _, (first, states), _ = _rollouts()
    obs = states.obs
    self.assertEqual(obs["proprio"].shape[-1], lift.PROPRIO_SIZE)
    self.assertEqual(obs["object"].shape[-1], lift.OBJECT_SIZE)
    self.assertEqual(
      task.env.spec.obs_shape, (lift.PROPRIO_SIZE + lift.OBJECT_SIZE,)
    )
    data = states.physics.data
    cube = data.xpos[:, :, task.layout.object_bodies[0]]
    np.testing.assert_allclose(obs["object"][..., :3], cube, atol=1e-6)
    np.testing.assert_allclose(
      obs["object"][..., 7:], cube - data.qpos[..., :3], atol=1e-6
    )
    np.testing.assert_allclose(obs["proprio"][..., :3], data.qpos[..., :3])
    # Cube placement spans the +-6 cm square.
    xy = np.asarray(first.obs["object"][:, :2])
    self.assertTrue(np.all(np.abs(xy) <= 0.06 + 1e-6))
    self.assertGreater(np.abs(xy).max(), 0.03)

  def test_pixels_mode_and_registry(self):
    env = registry.make_env(
      "lift", obs_mode="pixels", image_size=16, depth=True, frame_stack=3
    )
    self.assertEqual(env.spec.obs_shape, (16, 16, 12))
    model = env.init_model()
    first = jax.jit(env.reset)(model, jax.random.key(0))
    image = np.asarray(first.obs["image"])
    self.assertEqual(image.shape, (16, 16, 12))
    self.assertEqual(image.dtype, np.uint8)
    self.assertEqual(first.obs["proprio"].shape, (lift.PROPRIO_SIZE,))
    self.assertGreater(int(image.max()), 0)
    # An episode starts with its first frame repeated.
    for k in (1, 2):
      np.testing.assert_array_equal(
        image[..., 4 * k : 4 * k + 4], image[..., :4]
      )
    down = jnp.array([0.0, 0.0, -1.0, 0.0, -1.0])  # down, jaws open
    second = jax.jit(env.step)(model, first, down)
    new = np.asarray(second.obs["image"])
    np.testing.assert_array_equal(new[..., :8], image[..., 4:])  # shifted
    # The newest frame is the camera's RGB and its depth (the gripper came
    # 3 cm nearer the overhead camera: some depth levels changed).
    self.assertFalse(np.array_equal(new[..., 8:], image[..., 8:]))
    task = lift.make_lift_task(obs_mode="pixels", image_size=16)
    rgb = jax.jit(task.observe)(model, second.physics)["image"]
    np.testing.assert_array_equal(new[..., 8:11], rgb)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "obs_mode"):
      lift.make_lift_task(obs_mode="rgb")
    with self.assertRaisesRegex(ValueError, "placement"):
      lift.make_lift_task(placement=0.2)
    with self.assertRaisesRegex(ValueError, "episode_length"):
      lift.make_lift_task(episode_length=0)
    with self.assertRaisesRegex(ValueError, "pixels"):
      lift.make_lift_task(depth=True)  # state observations have no depth
    with self.assertRaisesRegex(ValueError, "frame_stack"):
      lift.make_lift_task(obs_mode="pixels", frame_stack=0)
    with self.assertRaisesRegex(ValueError, "one-arm task"):
      lift.make_lift_task(robot="two_grippers")


if __name__ == "__main__":
  absltest.main()
