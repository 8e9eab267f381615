"""The x-y probe's label, its skill figures and its trunk-once Q grid."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from experiments.benchmarks import visionary_xy_probe as probe
from jaxrl_vision.networks import visionary
from jaxrl_vision.search import visionary as space


def _positions(gripper, objects):
  return probe.Positions(jnp.asarray(gripper), jnp.asarray(objects))


class LabelTest(absltest.TestCase):
  def test_hand_computed(self):
    here = _positions([0.0, 0.0], [[0.03, 0.0], [0.5, 0.5]])
    toward = jnp.array([1.0, 0.0])  # +3 cm in x: onto the object
    away = jnp.array([-1.0, 0.0])  # -3 cm: 6 cm from it
    np.testing.assert_allclose(probe.label(here, toward), 1.0, atol=1e-6)
    np.testing.assert_allclose(probe.label(here, away), np.exp(-2.0), rtol=1e-5)


class ActionsTest(absltest.TestCase):
  def test_open_gripper_no_yaw_no_descent(self):
    got = probe.xy_actions(jnp.array([[0.5, -1.0]]))
    np.testing.assert_array_equal(got, [[0.5, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    self.assertEqual(probe.grid_moves().shape, (probe.GRID**2, 2))
    self.assertIn([0.0, 0.0], np.asarray(probe.grid_moves()).tolist())


class SkillTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.positions = _positions(
      rng.uniform(-0.05, 0.05, (6, 2)), rng.uniform(-0.1, 0.1, (6, 3, 2))
    )
    moves = np.asarray(probe.grid_moves()) * 0.03
    rel = np.asarray(self.positions.objects - self.positions.gripper[:, None])
    self.after = np.linalg.norm(rel[:, None] - moves[None, :, None], axis=-1)
    self.after = self.after.min(-1)  # [6, 81]
    self.still = np.linalg.norm(moves, axis=-1)[None].repeat(6, 0)

  def test_oracle_scores_one(self):
    figures = probe.skill(-self.after, self.positions)
    self.assertAlmostEqual(figures["xy_gain_fraction"], 1.0, places=6)
    self.assertAlmostEqual(figures["corr"], 1.0, places=6)
    self.assertGreater(figures["best_xy_gain_cm"], 0.0)

  def test_standing_still_scores_zero_and_moving_away_below(self):
    still = probe.skill(-self.still, self.positions)
    self.assertAlmostEqual(still["xy_gain_fraction"], 0.0, places=6)
    away = probe.skill(self.after, self.positions)
    self.assertLess(away["xy_gain_fraction"], 0.0)
    self.assertLess(away["corr"], 0.0)


class ProbeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    size = 32
    self.q = visionary.make_q_function(
      "grasping_tiny", space.baseline_architecture(), size
    )
    keys = jax.random.split(jax.random.key(0), 4)
    self.obs = {
      "image": jax.random.randint(keys[0], (4, size, size, 3), 0, 256).astype(
        jnp.uint8
      ),
      **{k: jax.random.uniform(keys[1], (4,)) for k in visionary.STATE_KEYS},
    }
    self.positions = _positions(
      jax.random.uniform(keys[2], (4, 2), minval=-0.05, maxval=0.05),
      jax.random.uniform(keys[3], (4, 3, 2), minval=-0.1, maxval=0.1),
    )
    self.params = self.q.init(keys[0], self.obs, jnp.zeros((4, 7)))

  def test_grid_q_is_q_of_every_grid_action(self):
    _, grid_q = probe.make_probe(self.q, optax.adam(1e-3), 2, 3)
    got = grid_q(self.params, self.obs)
    actions = probe.xy_actions(probe.grid_moves())
    for i in range(2):
      one = jax.tree.map(
        lambda x, i=i: jnp.broadcast_to(x[i], (len(actions),) + x.shape[1:]),
        self.obs,
      )
      np.testing.assert_allclose(
        got[i], self.q.apply(self.params, one, actions), rtol=1e-4, atol=1e-5
      )

  def test_update_fits_the_label(self):
    optimizer = optax.adam(3e-3)
    update, _ = probe.make_probe(self.q, optimizer, 4, 8)
    params, opt_state = self.params, optimizer.init(self.params)
    # One key every step: the same batch, so the loss can only fall if the
    # updates are applied.
    losses = []
    for _ in range(40):
      params, opt_state, value = update(
        params, opt_state, jax.random.key(1), self.obs, self.positions
      )
      losses.append(float(value))
    self.assertLess(losses[-1], 0.9 * losses[0])


if __name__ == "__main__":
  absltest.main()
