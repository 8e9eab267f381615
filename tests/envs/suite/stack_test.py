"""Block Stacking: the expert stacks, random actions do not, the reward is
robosuite's staged one, the contract holds."""

import functools

import jax
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.suite import stack

NUM_WORLDS = 16
LENGTH = 60


@functools.cache
def _rollouts():
  """Expert and random episodes in randomised worlds, compiled once."""
  task = stack.make_stack_task(episode_length=LENGTH)
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
  return task, run(True), run(False)


class StackTest(absltest.TestCase):
  def test_expert_stacks_random_does_not(self):
    _, (_, expert), (_, random) = _rollouts()
    success = np.asarray(expert.metrics["success"][:, -1])
    self.assertGreaterEqual(success.mean(), 0.9)
    self.assertLessEqual(np.asarray(random.metrics["success"]).max(), 0.0)

  def test_staged_reward(self):
    task, (_, states), _ = _rollouts()
    m = {k: np.asarray(v) for k, v in states.metrics.items()}
    np.testing.assert_allclose(
      states.reward, np.maximum(np.maximum(m["reach"], m["lift"]), m["stack"])
    )
    data = states.physics.data
    a = np.asarray(data.xpos[:, :, task.layout.object_bodies[0]])
    b = np.asarray(data.xpos[:, :, task.layout.object_bodies[1]])
    lifted = a[..., 2] > stack.LIFTED
    d_xy = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
    np.testing.assert_allclose(
      m["lift"], lifted * (1 + 0.5 * (1 - np.tanh(d_xy))), rtol=1e-5
    )
    # Success is the stack stage: 2 exactly there, and A sits on B.
    np.testing.assert_array_equal(m["stack"], 2.0 * m["success"])
    on = m["success"] > 0.5
    self.assertTrue(on.any())
    np.testing.assert_allclose(d_xy[on], 0.0, atol=0.02)
    self.assertTrue(np.all(a[..., 2][on] > b[..., 2][on] + 0.04))
    self.assertTrue(np.all(states.reward <= 2.0 + 1e-6))

  def test_state_observation_and_registry(self):
    task, (first, states), _ = _rollouts()
    obs = states.obs["object"]
    self.assertEqual(obs.shape[-1], stack.OBJECT_SIZE)
    data = states.physics.data
    a = data.xpos[:, :, task.layout.object_bodies[0]]
    b = data.xpos[:, :, task.layout.object_bodies[1]]
    np.testing.assert_allclose(obs[..., 20:23], b - a, atol=1e-6)
    env = registry.make_env("stacking", obs_mode="pixels", image_size=16)
    state = jax.jit(env.reset)(env.init_model(), jax.random.key(0))
    self.assertEqual(state.obs["image"].shape, (16, 16, 3))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "obs_mode"):
      stack.make_stack_task(obs_mode="rgb")
    with self.assertRaisesRegex(ValueError, "pixels"):
      stack.make_stack_task(frame_stack=3)
    with self.assertRaisesRegex(ValueError, "one-arm task"):
      stack.make_stack_task(robot="two_grippers")


if __name__ == "__main__":
  absltest.main()
