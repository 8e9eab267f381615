"""Nut-and-peg Assembly: the on-peg predicate and robosuite's staged reward
on hand-set states, the expert puts both nuts on their pegs while random
actions and the straight descent do not, the whole nut's mass in the
randomiser, the observation contract, bad input."""

import functools

import jax
import numpy as np
from absl.testing import absltest

from configs import surreal_ppo_nut_assembly
from configs import surreal_suite
from jaxrl_vision.envs import registry
from jaxrl_vision.envs.manipulation import scene
from jaxrl_vision.envs.suite import nut_assembly as na
from jaxrl_vision.recipes import surreal_ppo
from tests.envs.suite import scripted_rollouts

LENGTH = surreal_suite.EPISODE_LENGTH["nut_assembly"]
NUM_EXPERT, NUM_OTHER = 12, 2  # worlds: expert; random and descent each
FAR = (0.0, -0.08, 0.2)  # fingertips well away from both pegs
OVER_SQUARE = (-na.PEG_X, na.PEG_Y, 0.041)  # 3.5 cm over the square nut
SQUARE_ON_PEG = (-na.PEG_X, na.PEG_Y, na.RING_HALF_HEIGHT)


def _placed_qpos(tip) -> np.ndarray:
  """[20] both nuts at rest on their pegs, handles towards -y, the jaws
  open at `tip`."""
  yaw = -np.pi / 2
  quat = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
  nuts = [[x, y - na.HANDLE_X, na.RING_HALF_HEIGHT, *quat] for x, y in na.PEGS]
  gripper = [*tip, 0.0, scene.FINGER_OPEN, scene.FINGER_OPEN]
  return np.concatenate([gripper, *nuts]).astype(np.float32)


@functools.cache
def _rollouts():
  """The expert, random actions and the straight descent in randomised
  worlds, then two hand-set worlds held still (both nuts on their pegs;
  the fingertips far from them, or over the square nut); and the worlds'
  nut masses and inertias."""
  task = na.make_nut_assembly_task(episode_length=LENGTH)
  bodies = task.layout.object_bodies

  def record(task, data):
    del task
    return {"handle": data.xpos[bodies], "xmat": data.xmat[bodies]}

  held = [_placed_qpos(FAR), _placed_qpos(OVER_SQUARE)]
  first, steps, mass = scripted_rollouts.rollouts(
    task,
    LENGTH,
    NUM_EXPERT,
    NUM_OTHER,
    held,
    record,
    extra=lambda m: (m.body_mass[:, bodies], m.body_inertia[:, bodies]),
  )
  return task, first, steps, mass


# Jitted: one small compile per shape instead of one per op.
_placed = jax.jit(na.placed)
_staged_rewards = jax.jit(na.staged_rewards)


def _stages(centre, handle, tip, touch=None, done=None):
  centre = np.asarray(centre, np.float32)
  touch = np.zeros((len(centre), 2), bool) if touch is None else touch
  done = np.zeros(len(centre), bool) if done is None else done
  out = _staged_rewards(
    centre,
    np.asarray(handle, np.float32),
    np.asarray(tip, np.float32),
    touch,
    done,
  )
  return {k: float(v) for k, v in out.items()}


class PredicateAndRewardTest(absltest.TestCase):
  """Hand-set states, no physics: the numbers worked out in comments."""

  def test_placed(self):
    x, y, z = SQUARE_ON_PEG
    cases = (
      (SQUARE_ON_PEG, FAR, True),
      # d = 0.035: 1 - tanh(0.35) = 0.664 >= 0.6, the gripper too close;
      (SQUARE_ON_PEG, OVER_SQUARE, False),
      # d = 0.05: 1 - tanh(0.5) = 0.538 < 0.6, away.
      (SQUARE_ON_PEG, (x, y, z + 0.05), True),
      ((x + 0.029, y - 0.029, z), FAR, True),  # 1 mm inside in x and y
      ((x + 0.031, y, z), FAR, False),  # 1 mm out in x
      ((x, y, 0.024), FAR, True),  # below robosuite's table + 0.05 (x0.5)
      ((x, y, 0.026), FAR, False),
      ((na.PEG_X, na.PEG_Y, z), FAR, False),  # on the round nut's peg
    )
    for centre, tip, expected in cases:
      got = _placed(np.float32([centre]), np.float32(tip))
      self.assertEqual(bool(got[0]), expected, (centre, tip))

  def test_staged_rewards(self):
    # The square nut held (both fingers) by its handle, its centre at
    # (0, -0.02, 0.08), the fingertips 1 cm under the handle: reach = 0.1
    # (1 - tanh(0.1)); grasp = 0.35; z gap = 0.1 - 0.08: lift = 0.35 +
    # 0.15 (1 - tanh(0.3)); off its peg by (0.055, 0.085): hover = lift +
    # 0.2 (1 - tanh(10 d_xy)).
    centre, handle = [[0.0, -0.02, 0.08]], [[0.0, -0.065, 0.08]]
    tip = [0.0, -0.065, 0.07]
    s = _stages(centre, handle, tip, touch=np.array([[True, True]]))
    lift = 0.35 + 0.15 * (1 - np.tanh(0.3))
    d_xy = np.hypot(0.055, 0.085)
    expected = {
      "reach": 0.1 * (1 - np.tanh(0.1)),
      "grasp": 0.35,
      "lift": lift,
      "hover": lift + 0.2 * (1 - np.tanh(10 * d_xy)),
    }
    for k, v in expected.items():
      np.testing.assert_allclose(s[k], v, rtol=1e-5, err_msg=k)
    # One finger only: no grasp, no lift; hover = 0 + 0.2 (1 - tanh).
    s = _stages(centre, handle, tip, touch=np.array([[True, False]]))
    self.assertEqual((s["grasp"], s["lift"]), (0.0, 0.0))
    np.testing.assert_allclose(s["hover"], 0.2 * (1 - np.tanh(10 * d_xy)), 1e-5)

  def test_placed_nuts_leave_the_stages(self):
    # The square nut placed and touched by both fingers, the round one on
    # the floor at (0.05, -0.03): the stages are over the round nut alone
    # (reach to its handle 5 cm from the fingertips; no grasp; hover 0.2
    # (1 - tanh(10 * 0.095))), and with both placed they are all 0.
    centre = [SQUARE_ON_PEG, [0.05, -0.03, 0.006]]
    handle = [[-na.PEG_X, na.PEG_Y - 0.045, 0.006], [0.05, -0.075, 0.006]]
    tip = [0.05, -0.075, 0.056]
    touch = np.array([[True, True], [False, False]])
    s = _stages(centre, handle, tip, touch, done=np.array([True, False]))
    np.testing.assert_allclose(s["reach"], 0.1 * (1 - np.tanh(0.5)), 1e-5)
    self.assertEqual((s["grasp"], s["lift"]), (0.0, 0.0))
    d_xy = np.hypot(0.005, 0.095)
    np.testing.assert_allclose(s["hover"], 0.2 * (1 - np.tanh(10 * d_xy)), 1e-5)
    s = _stages(centre, handle, FAR, touch, done=np.array([True, True]))
    self.assertEqual(s, {"reach": 0.0, "grasp": 0.0, "lift": 0.0, "hover": 0.0})


class NutAssemblyTest(absltest.TestCase):
  def test_expert_assembles_random_and_descent_do_not(self):
    _, _, steps, _ = _rollouts()
    final = steps["metrics"]["success"][:, -1]
    expert = final[:NUM_EXPERT]
    random = final[NUM_EXPERT : NUM_EXPERT + NUM_OTHER]
    descent = final[NUM_EXPERT + NUM_OTHER : -2]
    self.assertGreaterEqual(expert.mean(), 0.9, expert)
    self.assertEqual(random.max(), 0.0)
    self.assertEqual(descent.max(), 0.0)
    # Both on: reward 2, every stage 0.
    count = steps["metrics"]["nuts_on_pegs"][:NUM_EXPERT, -1]
    np.testing.assert_array_equal(count[expert > 0], 2.0)
    np.testing.assert_allclose(
      steps["reward"][:NUM_EXPERT, -1][expert > 0], 2.0
    )
    # The straight descent commands no x-y move (contacts push it by mm).
    tip = steps["tip"][NUM_EXPERT + NUM_OTHER : -2, :, :2]
    np.testing.assert_allclose(tip, tip[:, :1].repeat(LENGTH, 1), atol=0.02)

  def test_hand_set_worlds(self):
    # After one step held still: both on, the gripper far: success,
    # reward 2; the fingertips 3.5 cm over the square nut: 1 on, reward 1
    # + max(reach 0.1 (1 - tanh(10 * 0.057)) = 0.049, hover 0.2).
    _, _, steps, _ = _rollouts()
    m = {k: v[-2:, 0] for k, v in steps["metrics"].items()}
    np.testing.assert_array_equal(m["success"], [1.0, 0.0])
    np.testing.assert_array_equal(m["nuts_on_pegs"], [2.0, 1.0])
    np.testing.assert_allclose(steps["reward"][-2:, 0], [2.0, 1.2], atol=2e-3)

  def test_reward_and_metrics_agree(self):
    _, _, steps, _ = _rollouts()
    m = steps["metrics"]
    stages = np.stack([m[k] for k in ("reach", "grasp", "lift", "hover")])
    np.testing.assert_allclose(
      steps["reward"], m["nuts_on_pegs"] + stages.max(0), rtol=1e-6
    )
    np.testing.assert_array_equal(m["success"], m["nuts_on_pegs"] == 2)
    # nuts_on_pegs recomputed from the bodies' poses (float64), away from
    # the thresholds.
    handle = steps["handle"].astype(np.float64)
    centre = handle - na.HANDLE_X * steps["xmat"][..., 0]
    d = np.linalg.norm(centre - steps["tip"][:, :, None], axis=-1)
    off = np.abs(centre[..., :2] - na.PEGS) - 0.03
    low = centre[..., 2] - 0.025
    on = np.all(off < 0, -1) & (low < 0) & (1 - np.tanh(10 * d) < 0.6)
    margin = np.minimum(np.abs(off).min(-1), np.abs(low))
    margin = np.minimum(margin, np.abs(1 - np.tanh(10 * d) - 0.6))
    sure = np.all(margin > 1e-4, -1)
    np.testing.assert_array_equal(m["nuts_on_pegs"][sure], on.sum(-1)[sure])
    self.assertGreater(sure.mean(), 0.9)
    self.assertTrue(np.all(steps["reward"] <= 2.0 + 1e-6))

  def test_randomised_mass_is_the_whole_nut(self):
    # The handle alone would be 8 * 0.02 * 0.007 * 0.006 * 800 = 5.4 g;
    # the whole nut, ring included, is what MuJoCo compiled, times the
    # world's scale in [0.5, 2], its inertia scaled alike.
    task, _, _, (mass, inertia) = _rollouts()
    model = task.mj_model
    whole = model.body_mass[task.layout.object_bodies]
    self.assertGreater(whole[0], 0.02)
    scale = mass / whole
    self.assertTrue(np.all((scale >= 0.5) & (scale <= 2.0)), scale)
    self.assertGreater(scale.std(), 0.1)
    np.testing.assert_allclose(
      inertia,
      model.body_inertia[task.layout.object_bodies] * scale[..., None],
      rtol=1e-5,
    )

  def test_observation_and_registry(self):
    task, first, steps, _ = _rollouts()
    num = 2 * NUM_OTHER + NUM_EXPERT + 2
    self.assertEqual(first["proprio"].shape, (num, 14))
    self.assertEqual(steps["object"].shape, (num, LENGTH, 28))
    self.assertEqual(task.env.spec.obs_shape, (14 + 28,))
    obj = steps["object"].reshape(num, LENGTH, 2, 14)
    centre = steps["handle"] - na.HANDLE_X * steps["xmat"][..., 0]
    np.testing.assert_allclose(obj[..., 0:3], centre, atol=1e-6)
    np.testing.assert_allclose(obj[..., 3:7], steps["quat"], atol=1e-6)
    np.testing.assert_allclose(
      obj[..., 7:10], steps["handle"] - steps["tip"][:, :, None], atol=1e-6
    )
    np.testing.assert_allclose(
      obj[..., 10:12], centre[..., :2] - na.PEGS, atol=1e-6
    )
    np.testing.assert_allclose(obj[..., 12], centre[..., 2], atol=1e-6)
    # The flag: the step's count, nut by nut.
    np.testing.assert_array_equal(
      obj[..., 13].sum(-1), steps["metrics"]["nuts_on_pegs"]
    )
    self.assertIn("nut_assembly", registry.env_names())
    self.assertIn("nut_assembly", surreal_ppo.TASKS)
    surreal_ppo.validate(surreal_ppo_nut_assembly.get_config("smoke"), 1)
    # One nut: 14 features (traced, not compiled); pixels: an image.
    env = registry.make_env("nut_assembly", num_nuts=1)
    state = jax.eval_shape(env.reset, env.init_model(), jax.random.key(0))
    self.assertEqual(state.obs["object"].shape, (14,))
    self.assertEqual(env.spec.obs_shape, (28,))
    env = registry.make_env("nut_assembly", obs_mode="pixels", image_size=16)
    self.assertEqual(env.spec.obs_shape, (16, 16, 3))

  def test_bad_arguments(self):
    for kwargs, message in (
      (dict(num_nuts=0), "num_nuts"),
      (dict(num_nuts=3), "num_nuts"),
      (dict(num_nuts=True), "num_nuts"),
      (dict(robot="two_grippers"), "one-arm task"),
      (dict(robot="arm7"), "Cartesian gripper"),
      (dict(obs_mode="rgb"), "obs_mode"),
    ):
      with self.assertRaisesRegex(ValueError, message) as caught:
        na.make_nut_assembly_task(**kwargs)
      self.assertNotIn("\n", str(caught.exception))


if __name__ == "__main__":
  absltest.main()
