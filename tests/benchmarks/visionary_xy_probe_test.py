"""The x-y probe's label, its skill figures and its trunk-once Q grid."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from experiments.benchmarks import visionary_xy_probe as probe
from jaxrl_vision.networks import visionary


def _positions(gripper, objects):
  return probe.Positions(jnp.asarray(gripper), jnp.asarray(objects))


class LabelTest(absltest.TestCase):
  def test_hand_computed(self):
    here = _positions([0.0, 0.0], [[0.03, 0.0], [0.5, 0.5]])
    toward = jnp.zeros(7).at[0].set(1.0)  # +3 cm in x: onto the object
    away = jnp.zeros(7).at[0].set(-1.0)  # -3 cm: 6 cm from it
    np.testing.assert_allclose(probe.label(here, toward), 1.0, atol=1e-6)
    np.testing.assert_allclose(probe.label(here, away), np.exp(-2.0), rtol=1e-5)


class SkillTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.positions = _positions(
      rng.uniform(-0.05, 0.05, (6, 2)), rng.uniform(-0.1, 0.1, (6, 3, 2))
    )
    moves = np.asarray(probe.grid_actions())[:, :2] * 0.03
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


class GridTest(absltest.TestCase):
  def test_grid_q_is_q_of_every_grid_action(self):
    size = 32
    q = visionary.make_q_function(
      "grasping_tiny", visionary.baseline_architecture(), size
    )
    keys = jax.random.split(jax.random.key(0), 3)
    obs = {
      "image": jax.random.randint(keys[0], (2, size, size, 3), 0, 256).astype(
        jnp.uint8
      ),
      **{k: jax.random.uniform(keys[1], (2,)) for k in visionary.STATE_KEYS},
    }
    params = q.init(keys[2], obs, jnp.zeros((2, 7)))
    _, grid_q = probe.make_probe(q, optax.adam(1e-3), 2, 3)
    got = grid_q(params, obs)
    actions = probe.grid_actions()
    for i in range(2):
      one = jax.tree.map(
        lambda x, i=i: jnp.broadcast_to(x[i], (len(actions),) + x.shape[1:]),
        obs,
      )
      np.testing.assert_allclose(
        got[i], q.apply(params, one, actions), rtol=1e-4, atol=1e-5
      )


if __name__ == "__main__":
  absltest.main()
