"""The Cartesian gripper's continuous suite action, by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import gripper


class _Data:  # the two fields control reads
  qpos = jnp.array([0.01, -0.02, 0.10, 0.3, 0.045, 0.045])


class GripperTest(absltest.TestCase):
  def test_control(self):
    action = jnp.array([1.0, -0.5, 0.0, -1.0, 0.5])
    ctrl, closed = gripper.control(_Data, action)
    np.testing.assert_allclose(
      ctrl,
      [0.04, -0.035, 0.10, 0.3 - common.MAX_YAW]
      + [scene.FINGER_OPEN * 0.25] * 2,
      atol=1e-6,
    )
    self.assertEqual(float(closed), 1.0)
    ctrl, closed = gripper.control(_Data, action.at[4].set(-1.0))
    np.testing.assert_allclose(ctrl[4:], [scene.FINGER_OPEN] * 2)  # open
    self.assertEqual(float(closed), 0.0)
    # Out-of-range actions are clipped; the set-point stays in the workspace.
    ctrl, _ = gripper.control(_Data, jnp.array([9.0, 0, -9.0, 0, 0]))
    self.assertAlmostEqual(float(ctrl[0]), 0.04, places=6)
    self.assertAlmostEqual(float(ctrl[2]), 0.07, places=6)

  def test_cartesian_action_round_trip(self):
    a = gripper.cartesian_action(
      None, None, jnp.array([0.015, -0.06, 0.0]), 0.125, True, 0.05
    )
    np.testing.assert_allclose(a, [0.5, -1.0, 0.0, 0.5, 1.0])
    ctrl, closed = gripper.control(_Data, a)
    np.testing.assert_allclose(ctrl[:2], [0.025, -0.05], atol=1e-6)
    self.assertEqual(float(closed), 1.0)
    r = gripper.random_action(jax.random.key(0))
    self.assertEqual(r.shape, (gripper.ACTION_SIZE,))
    self.assertIn(float(r[4]), (-1.0, 1.0))


if __name__ == "__main__":
  absltest.main()
