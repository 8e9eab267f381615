"""Demonstration curricula: the window grows, schemes sample where they
should, demo resets land on recorded states that the expert can finish."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.suite import curriculum
from jaxrl_vision.envs.suite import lift

N, L = 16, 20


@functools.cache
def _setup():
  task = lift.make_lift_task(episode_length=L)
  models, axes = task.randomize_model(
    task.env.init_model(), jax.random.key(0), N
  )
  demos = jax.jit(
    lambda k: curriculum.record_demos(task, models, axes, k, N, L)
  )(jax.random.key(1))
  return task, models, axes, demos


class WindowTest(absltest.TestCase):
  def test_grows_every_grow_every_resets(self):
    counts = jnp.array([0, 99, 100, 250])
    got = curriculum.window(counts, 25, 25, 100)
    np.testing.assert_array_equal(got, [25, 25, 50, 75])

  def test_schemes_sample_inside_their_windows(self):
    keys = jax.random.split(jax.random.key(0), 2000)
    sample = jax.vmap(curriculum.sample_step, in_axes=(0, None, None, None))
    uniform = np.asarray(sample(keys, 0, 4, 30))
    forward = np.asarray(sample(keys, 1, 4, 30))
    reverse = np.asarray(sample(keys, 2, 4, 30))
    self.assertEqual((uniform.min(), uniform.max()), (0, 29))
    self.assertEqual(set(forward), {0, 1, 2, 3})
    self.assertEqual(set(reverse), {26, 27, 28, 29})
    # A window wider than the demonstration is the whole of it.
    self.assertEqual(int(np.asarray(sample(keys, 1, 99, 30)).max()), 29)


class ApplyTest(absltest.TestCase):
  def test_expert_demos_succeed(self):
    *_, demos = _setup()
    self.assertGreaterEqual(float(np.mean(demos.success)), 0.9)
    self.assertEqual(demos.qpos.shape[:2], (N, L))

  def test_ended_worlds_move_to_demo_states(self):
    task, models, axes, demos = _setup()
    cur = curriculum.make_curriculum(
      task, axes, alpha=1.0, ratios={"reverse": 1.0}, initial_window=3
    )
    states = jax.vmap(task.env.reset, in_axes=(axes, 0))(
      models, jax.random.split(jax.random.key(2), N)
    )
    ends = jnp.arange(N) % 2 == 0
    counts = jnp.zeros((N,), jnp.int32)
    moved, counts2, used = jax.jit(cur.apply)(
      models, demos, states, ends, counts, jax.random.key(3)
    )
    used = np.asarray(used)
    np.testing.assert_array_equal(used, np.asarray(ends & demos.success))
    np.testing.assert_array_equal(counts2, used.astype(np.int32))
    qpos = np.asarray(moved.physics.data.qpos)
    ctrl = np.asarray(moved.physics.data.ctrl)
    demo_qpos, demo_ctrl = np.asarray(demos.qpos), np.asarray(demos.ctrl)
    for i in range(N):
      if used[i]:  # one of the last 3 recorded states of its own world
        hits = [
          np.allclose(qpos[i], demo_qpos[i, t]) for t in (L - 3, L - 2, L - 1)
        ]
        self.assertTrue(any(hits), i)
        # with that step's set-points (the jaws' in force), not the reset's
        t = (L - 3, L - 2, L - 1)[hits.index(True)]
        np.testing.assert_array_equal(ctrl[i], demo_ctrl[i, t])
        self.assertFalse(np.allclose(ctrl[i], states.physics.data.ctrl[i]))
        self.assertEqual(int(moved.physics.t[i]), 0)
      else:  # untouched
        np.testing.assert_array_equal(qpos[i], states.physics.data.qpos[i])
    # The observation is the restored state's.
    want = jax.vmap(task.observe, in_axes=(axes, 0))(models, moved.physics)
    for k in want:
      np.testing.assert_allclose(moved.obs[k], want[k], atol=1e-6)

  def test_the_expert_finishes_from_mid_demo_states(self):
    # Demo states are physically consistent: restored halfway (cube held
    # or about to be), the expert still lifts it.
    task, models, axes, demos = _setup()
    states = jax.vmap(task.env.reset, in_axes=(axes, 0))(
      models, jax.random.split(jax.random.key(4), N)
    )
    t = 7  # the fingers have closed (first success at steps 6-9)
    physics = jax.vmap(
      common.restore_configuration, in_axes=(axes, 0, 0, 0, 0)
    )(
      models,
      states.physics,
      demos.qpos[:, t],
      demos.qvel[:, t],
      demos.closed[:, t],
    )
    states = states._replace(physics=physics)

    def run(states):
      step = jax.vmap(task.env.step, in_axes=(axes, 0, 0))
      expert = jax.vmap(task.expert_action, in_axes=(axes, 0, 0))

      def one(s, k):
        a = expert(models, s, jax.random.split(k, N))
        return step(models, s, a), None

      final, _ = jax.lax.scan(
        one, states, jax.random.split(jax.random.key(5), 10)
      )
      return final.metrics["success"]

    success = np.asarray(jax.jit(run)(states))
    self.assertGreaterEqual(success.mean(), 0.9)

  def test_bad_arguments(self):
    task, _, axes, _ = _setup()
    with self.assertRaisesRegex(ValueError, "alpha"):
      curriculum.make_curriculum(task, axes, alpha=1.5)
    with self.assertRaisesRegex(ValueError, "ratios"):
      curriculum.make_curriculum(task, axes, ratios={"sideways": 1.0})


if __name__ == "__main__":
  absltest.main()
