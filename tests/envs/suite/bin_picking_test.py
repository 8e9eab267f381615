"""Bin Picking: the success predicate and robosuite's staged reward on
hand-set states, the expert places all four objects while random actions
and the straight descent do not, the observation contract, bad input."""

import functools

import jax
import numpy as np
from absl.testing import absltest

from configs import surreal_ppo_bin_picking
from configs import surreal_suite
from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import bin_picking as bp
from jaxrl_vision.recipes import surreal_ppo
from tests.envs.suite import scripted_rollouts

LENGTH = surreal_suite.EPISODE_LENGTH["bin_picking"]
NUM_EXPERT, NUM_OTHER = 12, 2  # worlds: expert; random and descent each
FAR = (0.0, -0.06, 0.2)  # fingertips well away from every cell
OVER_MILK = (-0.055, 0.045, 0.065)  # 3.5 cm over the milk in its cell


def _placed_qpos(tip) -> np.ndarray:
  """[34] every object at rest on its cell's centre (long sides along x),
  the jaws open at `tip`."""
  lying = [np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]  # the capsule along x
  poses = [
    [*cell, z, *(lying if o.kind == "capsule" else [1.0, 0.0, 0.0, 0.0])]
    for cell, z, o in zip(bp.CELLS, bp.REST_Z, bp.OBJECTS, strict=True)
  ]
  gripper = [*tip, 0.0, scene.FINGER_OPEN, scene.FINGER_OPEN]
  return np.concatenate([gripper, *poses]).astype(np.float32)


@functools.cache
def _rollouts():
  """The expert, random actions and the straight descent in randomised
  worlds, then two hand-set worlds held still (every object in its cell;
  the fingertips far from them, or over the milk)."""
  task = bp.make_bin_picking_task(episode_length=LENGTH)
  bodies = task.layout.object_bodies

  def record(task, data):
    del task
    return {"pos": data.xpos[bodies]}

  held = [_placed_qpos(FAR), _placed_qpos(OVER_MILK)]
  first, steps, _ = scripted_rollouts.rollouts(
    task, LENGTH, NUM_EXPERT, NUM_OTHER, held, record
  )
  return task, first, steps


# Jitted: one small compile per shape instead of one per op.
_in_bins = jax.jit(bp.in_bins)
_staged_rewards = jax.jit(bp.staged_rewards)


def _stages(pos, tip, touch=None, placed=None):
  pos = np.asarray(pos, np.float32)
  touch = np.zeros((len(pos), 2), bool) if touch is None else touch
  placed = np.zeros(len(pos), bool) if placed is None else placed
  out = _staged_rewards(pos, np.asarray(tip, np.float32), touch, placed)
  return {k: float(v) for k, v in out.items()}


class PredicateAndRewardTest(absltest.TestCase):
  """Hand-set states, no physics: the numbers worked out in comments."""

  def test_in_bins(self):
    milk = [-0.055, 0.045, 0.03]  # its cell's centre, at rest
    cases = (
      (milk, FAR, True),
      # d = 0.035: 1 - tanh(0.35) = 0.664 >= 0.6, the gripper too close;
      (milk, OVER_MILK, False),
      # d = 0.05: 1 - tanh(0.5) = 0.538 < 0.6, away.
      (milk, (-0.055, 0.045, 0.08), True),
      ([0.055, 0.045, 0.03], FAR, False),  # the bread's cell
      ([-0.108, 0.012, 0.03], FAR, True),  # 2 mm inside its corner
      ([-0.111, 0.045, 0.03], FAR, False),  # 1 mm out in x
      ([-0.055, 0.045, 0.051], FAR, False),  # above the 5 cm bin height
    )
    for pos, tip, expected in cases:
      got = _in_bins(np.float32([pos]), np.float32(tip))
      self.assertEqual(bool(got[0]), expected, (pos, tip))

  def test_staged_rewards(self):
    # Milk in its cell, the fingertips 3 cm over it (not counted):
    # reach = 0.1 (1 - tanh(0.3)) = 0.0709; over its cell, 0 off its
    # centre: hover = 0.5 + 0.2 (1 - tanh(0)) = 0.7.
    s = _stages([[-0.055, 0.045, 0.03]], [-0.055, 0.045, 0.06])
    np.testing.assert_allclose(s["reach"], 0.1 * (1 - np.tanh(0.3)), 1e-5)
    self.assertEqual((s["grasp"], s["lift"]), (0.0, 0.0))
    np.testing.assert_allclose(s["hover"], 0.7, 1e-6)
    # Held (both fingers) 10 cm up at (0, -0.02), fingertips 1 cm below:
    # reach = 0.1 (1 - tanh(0.1)) = 0.0900; grasp = 0.35; z gap = 0.125 -
    # 0.1: lift = 0.35 + 0.15 (1 - tanh(0.375)) = 0.4462; off its cell by
    # (0.055, 0.065), d_xy = 0.0851, not over it: hover = lift + 0.2 (1 -
    # tanh(0.851)) = 0.4462 + 0.0616 = 0.5079.
    pos, tip = [[0.0, -0.02, 0.1]], [0.0, -0.02, 0.09]
    s = _stages(pos, tip, touch=np.array([[True, True]]))
    lift = 0.35 + 0.15 * (1 - np.tanh(0.375))
    d_xy = np.hypot(0.055, 0.065)
    expected = {
      "reach": 0.1 * (1 - np.tanh(0.1)),
      "grasp": 0.35,
      "lift": lift,
      "hover": lift + 0.2 * (1 - np.tanh(10 * d_xy)),
    }
    for k, v in expected.items():
      np.testing.assert_allclose(s[k], v, rtol=1e-5, err_msg=k)
    # One finger only: no grasp, no lift; hover = 0 + 0.0616.
    s = _stages(pos, tip, touch=np.array([[True, False]]))
    self.assertEqual((s["grasp"], s["lift"]), (0.0, 0.0))
    np.testing.assert_allclose(s["hover"], 0.2 * (1 - np.tanh(10 * d_xy)), 1e-5)
    # robosuite's grasp: the left finger on one object, the right on
    # another.
    two = [[0.0, -0.02, 0.1], [0.05, -0.02, 0.1]]
    s = _stages(two, tip, touch=np.array([[True, False], [False, True]]))
    self.assertAlmostEqual(s["grasp"], 0.35, places=6)

  def test_placed_objects_leave_the_stages(self):
    # The milk placed, the bread held by both fingers: the stages are
    # over the bread alone (the milk's touch is ignored once placed), and
    # with every object placed they are all 0.
    pos = [[-0.055, 0.045, 0.03], [0.055, 0.045, 0.04]]
    tip = [0.055, 0.045, 0.03]
    touch = np.array([[True, True], [False, False]])
    s = _stages(pos, tip, touch, placed=np.array([True, False]))
    np.testing.assert_allclose(s["reach"], 0.1 * (1 - np.tanh(0.1)), 1e-5)
    self.assertEqual(s["grasp"], 0.0)
    # The bread over its cell's centre: hover = 0.5 + 0.2.
    np.testing.assert_allclose(s["hover"], 0.7, 1e-6)
    s = _stages(pos, FAR, touch, placed=np.array([True, True]))
    self.assertEqual(s, {"reach": 0.0, "grasp": 0.0, "lift": 0.0, "hover": 0.0})


class BinPickingTest(absltest.TestCase):
  def test_expert_places_random_and_descent_do_not(self):
    *_, steps = _rollouts()
    final = steps["metrics"]["success"][:, -1]
    expert = final[:NUM_EXPERT]
    random = final[NUM_EXPERT : NUM_EXPERT + NUM_OTHER]
    descent = final[NUM_EXPERT + NUM_OTHER : -2]
    self.assertGreaterEqual(expert.mean(), 0.9, expert)
    self.assertEqual(random.max(), 0.0)
    self.assertEqual(descent.max(), 0.0)
    # All four placed: reward 4, every stage 0.
    count = steps["metrics"]["objects_in_bins"][:NUM_EXPERT, -1]
    np.testing.assert_array_equal(count[expert > 0], 4.0)
    np.testing.assert_allclose(
      steps["reward"][:NUM_EXPERT, -1][expert > 0], 4.0
    )
    # The straight descent commands no x-y move (contacts push it by mm).
    tip = steps["tip"][NUM_EXPERT + NUM_OTHER : -2, :, :2]
    np.testing.assert_allclose(tip, tip[:, :1].repeat(LENGTH, 1), atol=0.02)

  def test_hand_set_worlds(self):
    # After one step held still: all four in, the gripper far: success,
    # reward 4; the fingertips 3.5 cm over the milk: 3 in, reward 3 +
    # max(reach 0.1 (1 - tanh(0.35)) = 0.066, hover 0.5 + 0.2 = 0.7).
    *_, steps = _rollouts()
    m = {k: v[-2:, 0] for k, v in steps["metrics"].items()}
    np.testing.assert_array_equal(m["success"], [1.0, 0.0])
    np.testing.assert_array_equal(m["objects_in_bins"], [4.0, 3.0])
    np.testing.assert_allclose(steps["reward"][-2:, 0], [4.0, 3.7], atol=2e-3)

  def test_reward_and_metrics_agree(self):
    _, _, steps = _rollouts()
    m = steps["metrics"]
    stages = np.stack([m[k] for k in ("reach", "grasp", "lift", "hover")])
    np.testing.assert_allclose(
      steps["reward"], m["objects_in_bins"] + stages.max(0), rtol=1e-6
    )
    np.testing.assert_array_equal(m["success"], m["objects_in_bins"] == 4)
    # objects_in_bins recomputed from the bodies' poses (float64), away
    # from the thresholds.
    pos, tip = steps["pos"], steps["tip"][:, :, None]
    d = np.linalg.norm(pos - tip, axis=-1)
    off = np.abs(pos[..., :2] - bp.CELLS) - bp.CELL_HALF
    inside = np.all(off < 0, -1) & (pos[..., 2] > 0) & (pos[..., 2] < 0.05)
    placed = inside & (1 - np.tanh(10 * d) < 0.6)
    margin = np.minimum(np.abs(off).min(-1), np.abs(1 - np.tanh(10 * d) - 0.6))
    sure = np.all(margin > 1e-4, -1)
    np.testing.assert_array_equal(
      m["objects_in_bins"][sure], placed.sum(-1)[sure]
    )
    self.assertTrue(np.all(steps["reward"] <= 4.0 + 1e-6))

  def test_observation_and_registry(self):
    task, first, steps = _rollouts()
    num = 2 * NUM_OTHER + NUM_EXPERT + 2
    self.assertEqual(first["proprio"].shape, (num, 14))
    self.assertEqual(steps["object"].shape, (num, LENGTH, 56))
    self.assertEqual(task.env.spec.obs_shape, (14 + 56,))
    obj = steps["object"].reshape(num, LENGTH, 4, 14)
    pos = steps["pos"]
    np.testing.assert_allclose(obj[..., 0:3], pos, atol=1e-6)
    np.testing.assert_allclose(obj[..., 3:7], steps["quat"], atol=1e-6)
    np.testing.assert_allclose(
      obj[..., 7:10], pos - steps["tip"][:, :, None], atol=1e-6
    )
    np.testing.assert_allclose(
      obj[..., 10:12], pos[..., :2] - bp.CELLS, atol=1e-6
    )
    np.testing.assert_allclose(obj[..., 12], pos[..., 2], atol=1e-6)
    # The flag: the step's count, object by object.
    np.testing.assert_array_equal(
      obj[..., 13].sum(-1), steps["metrics"]["objects_in_bins"]
    )
    self.assertIn("bin_picking", registry.env_names())
    self.assertIn("bin_picking", surreal_ppo.TASKS)
    surreal_ppo.validate(surreal_ppo_bin_picking.get_config("smoke"), 1)
    # One object: 14 features (traced, not compiled); pixels: an image.
    env = registry.make_env("bin_picking", num_objects=1)
    state = jax.eval_shape(env.reset, env.init_model(), jax.random.key(0))
    self.assertEqual(state.obs["object"].shape, (14,))
    self.assertEqual(env.spec.obs_shape, (28,))
    env = registry.make_env("bin_picking", obs_mode="pixels", image_size=16)
    self.assertEqual(env.spec.obs_shape, (16, 16, 3))

  def test_bad_arguments(self):
    for kwargs, message in (
      (dict(num_objects=0), "num_objects"),
      (dict(num_objects=5), "num_objects"),
      (dict(robot="two_grippers"), "one-arm task"),
      (dict(robot="arm7"), "Cartesian gripper"),
      (dict(obs_mode="rgb"), "obs_mode"),
    ):
      with self.assertRaisesRegex(ValueError, message) as caught:
        bp.make_bin_picking_task(**kwargs)
      self.assertNotIn("\n", str(caught.exception))


if __name__ == "__main__":
  absltest.main()
