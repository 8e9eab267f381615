"""The rubiksnet_video recipe: a :smoke run, learning, validation, configs."""

import json
import os

import jax
import numpy as np
import optax
from absl.testing import absltest
from absl.testing import parameterized

from configs import rubiksnet as rubiksnet_config
from jaxrl_vision import recipes
from jaxrl_vision import validation
from jaxrl_vision.recipes import rubiksnet_video
from tests.integration import helpers


def smoke_aq(**overrides):
  """`:smoke` with the AQ network (the most code: attention, budget, hard)."""
  config = rubiksnet_config.get_config("smoke")
  config.network.temporal_shift = "attention"
  config.agent.budget_weight = 1.0
  for key, value in overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  config.lock()
  return config


class SmokeRunTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Both tests compile the same step: they share it through the
    # session's persistent cache (tests/conftest.py).
    cls.workdir = helpers.fresh_workdir("rubiksnet_smoke")

  def test_smoke_run_through_the_loop(self):
    config = smoke_aq()
    rubiksnet_video.validate(config, 1)
    summary = helpers.run(config, self.workdir, recipes.get_recipe(config))
    self.assertEqual(summary["status"], "completed")
    self.assertEqual(summary["iterations"], 4)
    self.assertEqual(summary["env_steps"], 4 * 8)  # clips seen
    final = summary["final"]
    for name in ("train/loss", "train/ce", "train/accuracy"):
      self.assertTrue(np.isfinite(final[name]), name)
    # AQ: budget metrics in training and evaluation.
    self.assertGreater(final["train/budget_loss"], 0.0)
    self.assertLessEqual(final["train/budget_loss"], 1.0)
    self.assertLess(final["train/temperature"], 2.0)  # annealing
    for name in ("eval/accuracy", "eval/accuracy_hard"):
      self.assertIn(final[name], np.arange(17) / 16)  # 16 eval clips
    self.assertBetween(final["eval/nonzero_shift_fraction"], 0.0, 1.0)
    self.assertAlmostEqual(final["eval/temperature"], 1e-3, places=6)
    records = [
      json.loads(line)
      for line in open(os.path.join(self.workdir, "metrics.jsonl"))
    ]
    self.assertEqual([r["step"] for r in records], [2, 4])
    self.assertNotIn("eval/accuracy", records[0])  # eval.every = 4
    self.assertTrue(
      os.path.isdir(os.path.join(self.workdir, "checkpoints", "4"))
    )

  def test_loss_goes_down_on_a_fixed_batch(self):
    # The same batch every step (the data key reset before each step): a
    # few SGD steps must fit it.
    config = smoke_aq()
    trainer = rubiksnet_video.make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    step = jax.jit(trainer.step, donate_argnums=0)
    data_key = np.asarray(jax.random.key_data(state.key))  # step donates it
    losses = []
    for _ in range(8):
      key = jax.random.wrap_key_data(data_key)
      state, metrics = step(state._replace(key=key))
      losses.append(float(metrics["sum/train/ce"]))
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    self.assertLess(losses[-1], 0.5 * losses[0], losses)
    self.assertEqual(int(state.agent.step), 8)


class ValidateTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("unknown_key", "data.colour", "red", "data.colour"),
    ("bad_shift", "network.temporal_shift", "sideways", "temporal_shift"),
    ("bad_optimizer", "agent.optimizer", "rmsprop", "agent.optimizer"),
    ("bad_budget", "agent.budget", 1.0, "agent.budget"),
    ("odd_eval_size", "data.eval_size", 6, "data.eval_size"),
    ("square_leaves_frame", "data.max_speed", 4, "leaves the frame"),
    ("bad_background", "data.background", "plaid", "data.background"),
    ("unbalanced_batch", "train.batch_size", 6, "train.batch_size"),
    ("bad_grad_norm", "agent.grad_norm", None, "agent.grad_norm"),
  )
  def test_rejects(self, key, value, pattern):
    config = rubiksnet_config.get_config()
    section, name = key.split(".")
    if name in config[section]:
      config[section][name] = value
    else:
      config[section] = dict(config[section].to_dict(), **{name: value})
    with self.assertRaisesRegex(validation.ConfigError, pattern):
      rubiksnet_video.validate(config, 1)

  def test_one_device_only(self):
    with self.assertRaisesRegex(validation.ConfigError, "one device"):
      rubiksnet_video.validate(rubiksnet_config.get_config(), 2)

  @parameterized.parameters(None, *rubiksnet_config.VARIANTS)
  def test_every_variant_validates(self, variant):
    config = rubiksnet_config.get_config(variant)
    rubiksnet_video.validate(config, 1)
    self.assertEqual(
      recipes.get_recipe(config).validate, rubiksnet_video.validate
    )

  def test_unknown_variant_raises(self):
    with self.assertRaisesRegex(ValueError, "valid variants"):
      rubiksnet_config.get_config("bogus")

  def test_learning_rate_warmup_then_constant(self):
    # lr 0.1, 10 warmup steps: linear 0 -> 0.1, i.e. 0.05 at step 5.
    config = rubiksnet_config.get_config()
    config.agent.lr_schedule = "constant"
    config.agent.warmup_steps = 10
    lr = rubiksnet_video.make_learning_rate(config)
    np.testing.assert_allclose(
      [lr(0), lr(5), lr(10), lr(500)], [0.0, 0.05, 0.1, 0.1], rtol=1e-6
    )

  def test_adam_takes_momentum_as_b1(self):
    # Gradients +1 then -1 on a "weights" leaf (no decay): the second update
    # depends on b1, and must equal plain Adam with b1 = agent.momentum.
    def updates(opt):
      params = {"kernel": np.zeros(2, np.float32)}
      state = opt.init(params)
      out = []
      for g in (1.0, -1.0):
        grads = {"kernel": np.full(2, g, np.float32)}
        u, state = opt.update(grads, state, params)
        out.append(np.asarray(u["kernel"]))
      return out[1]

    got = {}
    for momentum in (0.5, 0.9):
      config = rubiksnet_config.get_config()
      config.agent.optimizer = "adam"
      config.agent.momentum = momentum
      config.agent.weight_decay = 0.0
      got[momentum] = updates(rubiksnet_video.make_optimizer(config))
      lr = rubiksnet_video.make_learning_rate(config)
      np.testing.assert_allclose(
        got[momentum], updates(optax.adam(lr, b1=momentum)), rtol=1e-6
      )
    self.assertGreater(np.abs(got[0.5] - got[0.9]).min(), 1e-4)


if __name__ == "__main__":
  absltest.main()
