"""The 7-DoF arm: Sawyer's home pose by IK, joint-velocity tracking, the
Cartesian commands through its Jacobian, and the lift expert with it."""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs import robots
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.robots import arm7
from jaxrl_vision.envs.suite import lift

NUM_WORLDS = 8
LENGTH = 40  # 4 s at 10 Hz


@functools.cache
def _task():
  return lift.make_lift_task(
    robot="arm7", episode_length=LENGTH, substeps_per_action=20
  )


def _jit(fn):
  return jax.jit(fn, compiler_options=arm7.compiler_options())


@functools.cache
def _programs():
  """reset and step, compiled once for the module."""
  task = _task()
  return _jit(task.env.reset), _jit(task.env.step)


@functools.cache
def _expert_rollouts():
  task = _task()
  models, axes = task.randomize_model(
    task.env.init_model(), jax.random.key(0), NUM_WORLDS
  )
  run = _jit(
    jax.vmap(
      lambda m, k: common.rollout(task.env, task.expert_action, m, k, LENGTH),
      in_axes=(axes, 0),
    )
  )
  return task, run(models, jax.random.split(jax.random.key(1), NUM_WORLDS))


class Arm7Test(absltest.TestCase):
  def test_home_pose_puts_the_jaws_down_over_the_tray(self):
    model = _task().mj_model
    data = mujoco.MjData(model)
    data.qpos[: arm7.NUM_JOINTS] = arm7.home_qpos(model)
    mujoco.mj_kinematics(model, data)
    tip = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "tip")
    np.testing.assert_allclose(data.xpos[tip], arm7.HOME_TIP, atol=1e-4)
    # The tip frame's z points up: the fingers hang down.
    np.testing.assert_allclose(
      data.xmat[tip].reshape(3, 3)[:, 2], [0, 0, 1], atol=1e-3
    )
    for j, name in enumerate(arm7.JOINTS):
      low, high = model.jnt_range[model.joint(name).id]
      self.assertTrue(low < data.qpos[j] < high, name)

  def test_joint_velocities_are_tracked(self):
    task = _task()
    model = task.env.init_model()
    reset, step = _programs()
    state = reset(model, jax.random.key(0))
    action = jnp.array([0.3, -0.2, 0.2, 0.3, -0.3, 0.2, 0.5, -1.0])
    nxt = step(model, state, action)
    moved = np.asarray(nxt.physics.data.qpos[:7] - state.physics.data.qpos[:7])
    want = np.asarray(action[:7]) * arm7.MAX_JOINT_SPEED * 0.1  # 0.1 s
    np.testing.assert_allclose(moved, want, rtol=0.2, atol=2e-3)
    self.assertEqual(task.env.spec.action_shape, (arm7.ACTION_SIZE,))
    self.assertEqual(nxt.obs["proprio"].shape, (arm7.PROPRIO_SIZE,))

  def test_cartesian_command_moves_the_tip(self):
    task = _task()
    model = task.env.init_model()
    robot = robots.make_robot("arm7", task.mj_model)
    reset, step = _programs()
    state = reset(model, jax.random.key(0))
    want = jnp.array([0.02, -0.01, -0.02])  # metres this step
    action = _jit(
      lambda model, data: robot.cartesian_action(
        model, data, want, 0.0, False, 0.1
      )
    )(model, state.physics.data)
    nxt = step(model, state, action)
    moved = np.asarray(
      robot.tip(nxt.physics.data) - robot.tip(state.physics.data)
    )
    # From rest the joints lag their commanded speeds a little: the right
    # direction and most of the distance, and the jaws stay down.
    cosine = moved @ want / np.linalg.norm(moved) / np.linalg.norm(want)
    self.assertGreater(cosine, 0.97)
    self.assertBetween(np.linalg.norm(moved) / np.linalg.norm(want), 0.6, 1.2)
    up = nxt.physics.data.xmat[:, :, 2][task.mj_model.body("tip").id]
    np.testing.assert_allclose(up, [0, 0, 1], atol=0.05)

  def test_expert_lifts(self):
    task, (_, states) = _expert_rollouts()
    success = np.asarray(states.metrics["success"][:, -1])
    self.assertGreaterEqual(success.mean(), 0.9)

  def test_random_action_shape_and_noise(self):
    a = arm7.random_action(jax.random.key(0))
    self.assertEqual(a.shape, (8,))
    self.assertIn(float(a[7]), (-1.0, 1.0))
    noisy = arm7.add_noise(a, jax.random.key(1), 0.5)
    self.assertEqual(float(noisy[7]), float(a[7]))  # grip kept
    self.assertFalse(np.allclose(noisy[:7], a[:7]))
    with self.assertRaisesRegex(ValueError, "unknown robot"):
      robots.make_robot("ur5", _task().mj_model)


if __name__ == "__main__":
  absltest.main()
