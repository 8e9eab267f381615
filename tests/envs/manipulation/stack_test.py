"""Tests for the MJX block-stacking task.

One jitted, vmapped rollout is compiled in `setUpClass` and shared by every
test. Unlike the grasp test, all worlds share one model here, which keeps
the compile short (batched model fields double it); per-world models are
covered by the grasp test.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import stack
from tests.envs.manipulation import rollouts

IMAGE_SIZE = 32
NUM_WORLDS = 8  # first half expert, second half random
EPISODE_LENGTH = 15
HOLD_STEPS = 3


def first_true(mask):
  """Index of the first True along the last axis, or the length if none."""
  return np.where(mask.any(-1), np.argmax(mask, -1), mask.shape[-1])


class StackTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.task = stack.make_stack_task(
      image_size=IMAGE_SIZE, hold_steps=HOLD_STEPS
    )
    cls.model = cls.task.env.init_model()
    cls.keys = jax.random.split(jax.random.key(2), NUM_WORLDS)
    cls.use_expert = jnp.arange(NUM_WORLDS) < NUM_WORLDS // 2
    cls.batch_rollout = staticmethod(
      rollouts.make_batch_rollout(cls.task, None)
    )
    cls.first, cls.states = jax.device_get(
      cls.batch_rollout(cls.model, cls.keys, cls.use_expert)
    )

  def test_spec(self):
    spec = self.task.env.spec
    self.assertEqual(spec.obs_shape, (IMAGE_SIZE, IMAGE_SIZE, 3))
    self.assertEqual(spec.action_shape, (7,))
    self.assertEqual(spec.num_actions, 0)
    self.assertEqual(spec.max_episode_steps, EPISODE_LENGTH)

  def test_shapes_and_dtypes(self):
    n, t, s = NUM_WORLDS, EPISODE_LENGTH, IMAGE_SIZE
    for state, lead in ((self.first, (n,)), (self.states, (n, t))):
      chex.assert_shape(state.obs["image"], lead + (s, s, 3))
      self.assertEqual(state.obs["image"].dtype, np.uint8)
      chex.assert_shape(
        [
          state.obs["gripper_closed"],
          state.obs["height"],
          state.obs["aperture"],
        ],
        lead,
      )
      self.assertEqual(state.obs["height"].dtype, np.float32)
      self.assertEqual(state.reward.dtype, np.float32)
      self.assertEqual(state.terminated.dtype, np.bool_)
      self.assertEqual(state.truncated.dtype, np.bool_)
      self.assertEqual(set(state.metrics), {"success", "stacked"})

  def test_cubes_start_apart_with_different_colours(self):
    layout = self.task.layout
    pos = self.first.physics.data.xpos[:, layout.object_bodies]  # [N, 2, 3]
    gap = np.linalg.norm(pos[:, 0, :2] - pos[:, 1, :2], axis=-1)
    self.assertTrue(np.all(gap > 0.06))
    self.assertTrue(np.all(np.abs(pos[..., :2]) < 0.125))
    np.testing.assert_allclose(pos[..., 2], 0.02, atol=2e-3)
    rgb = self.first.physics.object_rgb  # [N, 2, 3]
    self.assertTrue(np.all(np.abs(rgb[:, 0] - rgb[:, 1]).max(-1) > 0.2))

  def test_same_key_same_episode(self):
    first, states = jax.device_get(
      self.batch_rollout(self.model, self.keys, self.use_expert)
    )
    chex.assert_trees_all_equal(first.obs, self.first.obs)
    chex.assert_trees_all_equal(
      (states.obs, states.reward), (self.states.obs, self.states.reward)
    )

  def test_reward_and_termination_bookkeeping(self):
    success = self.states.metrics["success"] > 0  # [N, T]
    stacked = self.states.metrics["stacked"] > 0
    reward = self.states.reward
    np.testing.assert_allclose(reward, success - 0.01, atol=1e-7)
    np.testing.assert_array_equal(self.states.terminated, success)
    # Success needs HOLD_STEPS consecutive stacked steps.
    first = first_true(success)
    for i in np.flatnonzero(first < EPISODE_LENGTH):
      self.assertTrue(
        np.all(stacked[i, first[i] - HOLD_STEPS + 1 : first[i] + 1])
      )
    # Truncation at the time limit, only for episodes not (yet) successful.
    last = EPISODE_LENGTH - 1
    np.testing.assert_array_equal(
      self.states.truncated[:, last], ~success[:, last]
    )
    self.assertFalse(np.any(self.states.truncated[:, :last]))

  def test_expert_beats_random(self):
    success = (self.states.metrics["success"] > 0).any(-1)
    expert = success[: NUM_WORLDS // 2].mean()
    random = success[NUM_WORLDS // 2 :].mean()
    self.assertGreaterEqual(expert, 0.75)
    self.assertLessEqual(random, expert - 0.5)

  def test_camera_sees_both_cubes(self):
    layout = self.task.layout
    camera = render.make_camera(
      self.task.mj_model, "overhead", IMAGE_SIZE, IMAGE_SIZE
    )
    physics = rollouts.first_world(self.first.physics)
    frame = jax.jit(camera.render)(self.model, physics.data, physics.lighting)
    seen = set(np.unique(frame.segmentation).tolist())
    self.assertTrue(set(layout.object_geoms) <= seen)

  def test_randomize_model_scales_cube_masses(self):
    models, axes = self.task.randomize_model(self.model, jax.random.key(0), 4)
    bodies = self.task.layout.object_bodies
    ratio = models.body_mass[:, bodies] / self.model.body_mass[bodies]
    self.assertTrue(np.all((ratio >= 0.5) & (ratio <= 2.0)))
    self.assertEqual(axes.body_mass, 0)
    # The cubes keep their size; only masses and friction vary per world.
    np.testing.assert_array_equal(
      models.geom_size,
      np.broadcast_to(self.model.geom_size, models.geom_size.shape),
    )
    one = rollouts.world(models, axes, 1)
    chex.assert_shape(one.body_mass, self.model.body_mass.shape)


if __name__ == "__main__":
  absltest.main()
