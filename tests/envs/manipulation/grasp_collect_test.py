"""The grasp task end to end through the offline collector (one compile).

Episodes of the scripted expert and of random play, vmapped, at 32x32: the
observation layout, the reward bookkeeping, expert >> random, determinism,
and the camera seeing the objects.
"""

import jax
import numpy as np
from absl.testing import absltest

from jaxrl_vision.data import offline
from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import grasp

NUM = 12
LENGTH = 6


class GraspCollectTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.task = grasp.make_grasp_task(image_size=32, episode_length=LENGTH)
    cls.model = cls.task.env.init_model()

    def expert(model, state, key, episode_key):
      del episode_key
      return cls.task.expert_action(model, state, key, 0.0)

    def random(model, state, key, episode_key):
      del model, state, episode_key
      return cls.task.random_action(key)

    # staticmethod: a jitted function stored on the class is not a method.
    cls.collect = staticmethod(
      jax.jit(
        offline.make_collector(cls.task.env, [expert, random], [0.5, 0.5]),
        static_argnums=2,
      )
    )
    cls.episodes = jax.device_get(
      cls.collect(cls.model, jax.random.key(0), NUM)
    )

  def test_observation_layout(self):
    obs = self.episodes.obs
    self.assertEqual(obs["image"].shape, (NUM, LENGTH + 1, 32, 32, 3))
    self.assertEqual(obs["image"].dtype, np.uint8)
    self.assertEqual(obs["gripper_closed"].shape, (NUM, LENGTH + 1))
    self.assertEqual(obs["height"].shape, (NUM, LENGTH + 1))
    self.assertEqual(self.episodes.action.shape, (NUM, LENGTH, 7))
    # Images are not blank: objects, tray and floor give several colours.
    self.assertGreater(
      len(np.unique(obs["image"][0, 0].reshape(-1, 3), axis=0)), 4
    )

  def test_reward_bookkeeping(self):
    ep = self.episodes
    np.testing.assert_array_equal(ep.length, LENGTH)  # the lift ends it
    np.testing.assert_allclose(ep.reward[:, :-1], -0.01)
    np.testing.assert_allclose(ep.reward[:, -1], ep.success - 0.01, atol=1e-6)
    np.testing.assert_array_equal(ep.terminated[:, -1], True)
    self.assertFalse(np.any(ep.terminated[:, :-1]))
    # The scripted lift closes the gripper on the last step.
    np.testing.assert_array_equal(ep.obs["gripper_closed"][:, -1], 1.0)

  def test_expert_beats_random(self):
    ep = self.episodes
    expert = ep.success[ep.policy == 0]
    random = ep.success[ep.policy == 1]
    self.assertNotEmpty(expert)
    self.assertNotEmpty(random)
    self.assertGreaterEqual(float(expert.mean()), 0.6)
    self.assertLessEqual(float(random.mean()), 0.2)

  def test_same_key_same_episodes(self):
    again = jax.device_get(self.collect(self.model, jax.random.key(0), NUM))
    jax.tree.map(np.testing.assert_array_equal, again, self.episodes)
    other = jax.device_get(self.collect(self.model, jax.random.key(1), NUM))
    self.assertFalse(
      np.array_equal(other.obs["image"], self.episodes.obs["image"])
    )

  def test_camera_sees_every_object(self):
    state = jax.jit(self.task.env.reset)(self.model, jax.random.key(3))
    camera = render.make_camera(self.task.mj_model, "overhead", 48, 48)
    frame = jax.jit(camera.render)(
      self.model, state.physics.data, render.default_lighting()
    )
    seen = set(np.unique(np.asarray(frame.segmentation)).tolist())
    for geom in self.task.layout.object_geoms:
      self.assertIn(int(geom), seen)


if __name__ == "__main__":
  absltest.main()
