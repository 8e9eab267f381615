"""The Cartesian gripper's continuous suite action (and the two-handed
robot's incremental grip), by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.robots import gripper
from jaxrl_vision.envs.robots import two_grippers


class _Data:  # the fields control reads; the fingers' set-point: open
  qpos = jnp.array([0.01, -0.02, 0.10, 0.3, 0.045, 0.045])
  ctrl = jnp.array(
    [0.01, -0.02, 0.10, 0.3, scene.FINGER_OPEN, scene.FINGER_OPEN]
  )


class _TwoHands:  # both hands, left then right
  qpos = jnp.tile(_Data.qpos, 2)
  qvel = jnp.zeros(12)
  ctrl = jnp.tile(_Data.ctrl, 2)


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

  def test_binary_grip(self):
    # The sign drives the fingers: 0.5 shuts them (linear: a quarter open),
    # -0.2 opens them fully (linear: 0.6 open), 0 is open.
    action = jnp.array([0.0, 0.0, 0.0, 0.0, 0.5])
    for grip, opening in ((0.5, 0.0), (-0.2, 1.0), (0.0, 1.0), (1e-3, 0.0)):
      ctrl, closed = gripper.control(
        _Data, action.at[4].set(grip), grip="binary"
      )
      np.testing.assert_allclose(ctrl[4:], [scene.FINGER_OPEN * opening] * 2)
      self.assertEqual(float(closed), float(grip > 0))
    # Moves are the linear gripper's.
    a = jnp.array([1.0, -0.5, 0.0, -1.0, 0.5])
    np.testing.assert_allclose(
      gripper.control(_Data, a, grip="binary")[0][:4],
      gripper.control(_Data, a)[0][:4],
    )

  def test_incremental_grip(self):
    # From open (set-point FINGER_OPEN, command -1), a[4] = 1 moves the
    # command a quarter of the range per step: -0.75 (set-point 7/8 open),
    # ... and it stays shut.
    data, opening = _Data, []
    for _ in range(9):
      ctrl, closed = gripper.control(
        data, jnp.zeros(5).at[4].set(1.0), grip="incremental"
      )
      self.assertEqual(float(closed), 1.0)
      opening.append(float(ctrl[4] / scene.FINGER_OPEN))
      data = type("D", (), dict(qpos=_Data.qpos, ctrl=ctrl))
    want = [7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0, 0.0]
    np.testing.assert_allclose(opening, want, atol=1e-6)
    # The change is proportional to a[4]: -0.4 from shut moves the command
    # 0.1 (the set-point 1/20 open); a slightly negative command barely
    # loosens the jaws, 0 keeps them.
    ctrl, closed = gripper.control(
      data, jnp.zeros(5).at[4].set(-0.4), grip="incremental"
    )
    self.assertAlmostEqual(float(ctrl[4] / scene.FINGER_OPEN), 0.05, places=6)
    self.assertEqual(float(closed), 0.0)
    ctrl, _ = gripper.control(
      data, jnp.zeros(5).at[4].set(-0.001), grip="incremental"
    )
    self.assertAlmostEqual(
      float(ctrl[4] / scene.FINGER_OPEN), 0.000125, places=7
    )
    ctrl, _ = gripper.control(data, jnp.zeros(5), grip="incremental")
    self.assertEqual(float(ctrl[4]), 0.0)
    with self.assertRaisesRegex(ValueError, "grip must be one of"):
      gripper.control(_Data, jnp.zeros(5), grip="sticky")

  def test_two_grippers_grip_incrementally(self):
    data = _TwoHands
    action = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -0.3])
    ctrl, closed = two_grippers.control(data, action)
    np.testing.assert_allclose(ctrl[4:6], [scene.FINGER_OPEN * 7 / 8] * 2)
    np.testing.assert_allclose(ctrl[10:12], [scene.FINGER_OPEN] * 2)  # right
    np.testing.assert_allclose(closed, [1.0, 0.0])
    # Each hand reads its own set-points (the right one's, shut: +0.3
    # keeps it shut, -0.3 loosens it by 0.075 of the range: 3/80 open).
    shut = type(
      "D",
      (),
      dict(qpos=data.qpos, qvel=data.qvel, ctrl=data.ctrl.at[10:12].set(0.0)),
    )
    ctrl, _ = two_grippers.control(shut, action.at[9].set(0.3))
    np.testing.assert_allclose(ctrl[10:12], [0.0, 0.0])
    ctrl, _ = two_grippers.control(shut, action)
    np.testing.assert_allclose(
      ctrl[10:12], [scene.FINGER_OPEN * 3 / 80] * 2, rtol=1e-5
    )

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
