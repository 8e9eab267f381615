"""The qtopt_offline recipe: optimiser wiring and config validation."""

import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import visionary as visionary_config
from experiments import visionary
from jaxrl_vision import validation
from jaxrl_vision.data import episode_store
from jaxrl_vision.recipes import qtopt_offline


def phase(architecture="search", **overrides):
  config = visionary_config.get_config("smoke")
  c = visionary.phase_config(
    config,
    architecture=architecture,
    seed=0,
    num_seeds=2,
    num_iterations=10,
    dataset_path="/nonexistent",
  )
  for key, value in overrides.items():
    section, name = key.split(".")
    c[section][name] = value
  return c


def _params():
  return {
    "params": {
      "head": {
        "merge_pool2": {"merge_logits": jnp.zeros(5)},
        "conv": {"kernel": jnp.zeros((2, 2))},
      }
    }
  }


class OptimizerTest(absltest.TestCase):
  def _first_update(self, config):
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    opt = qtopt_offline.make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    return updates["params"]["head"]

  def test_search_logits_take_their_own_step_after_warmup(self):
    config = phase(
      **{
        "agent.optimizer": "sgd",
        "agent.learning_rate": 0.1,
        "agent.momentum": 0.0,
        "search.arch_optimizer": "sgd",
        "search.arch_learning_rate": 3.0,
        "search.warmup_iterations": 0,
      }
    )
    head = self._first_update(config)
    np.testing.assert_allclose(head["merge_pool2"]["merge_logits"], -3.0)
    np.testing.assert_allclose(head["conv"]["kernel"], -0.1, rtol=1e-6)
    # With a warm-up the logits hold still at first; the weights do not.
    config.search.warmup_iterations = 5
    head = self._first_update(config)
    np.testing.assert_allclose(head["merge_pool2"]["merge_logits"], 0.0)
    np.testing.assert_allclose(head["conv"]["kernel"], -0.1, rtol=1e-6)

  def test_arch_momentum_is_the_logits_own(self):
    # Gradients +1 then -1. Adam's second step, bias-corrected by hand:
    # m = -(1 - b1) / (1 + b1), v = 1, so the logits rise by
    # lr (1 - b1) / (1 + b1); the weights keep Adam's default b1 = 0.9.
    config = phase(
      **{
        "agent.optimizer": "adam",
        "agent.learning_rate": 0.1,
        "search.arch_optimizer": "adam",
        "search.arch_learning_rate": 3.0,
        "search.arch_momentum": 0.99,
        "search.warmup_iterations": 0,
        "search.entropy_weight": 0.0,
      }
    )
    params = _params()
    opt = qtopt_offline.make_optimizer(config)
    state = opt.init(params)
    for sign in (1.0, -1.0):
      grads = jax.tree.map(lambda x, s=sign: jnp.full_like(x, s), params)
      updates, state = opt.update(grads, state, params)
    head = updates["params"]["head"]
    np.testing.assert_allclose(
      head["merge_pool2"]["merge_logits"], 3.0 * 0.01 / 1.99, rtol=1e-4
    )
    np.testing.assert_allclose(
      head["conv"]["kernel"], 0.1 * 0.1 / 1.9, rtol=1e-4
    )

  def test_fixed_architectures_use_one_optimizer(self):
    config = phase(
      "baseline",
      **{
        "agent.optimizer": "sgd",
        "agent.learning_rate": 0.1,
        "agent.momentum": 0.0,
        "search.arch_learning_rate": 3.0,
      },
    )
    # No arch params in the baseline: every leaf takes the weights' step.
    head = self._first_update(config)
    np.testing.assert_allclose(head["merge_pool2"]["merge_logits"], -0.1)


class ValidateTest(absltest.TestCase):
  def test_refuses_bad_values(self):
    cases = (
      ({"agent.optimizer": "rmsprop"}, "agent.optimizer"),
      ({"search.arch_learning_rate": 0.0}, "search.arch_learning_rate"),
      ({"search.arch_optimizer": "lion"}, "search.arch_optimizer"),
      ({"search.arch_momentum": 1.0}, "search.arch_momentum"),
      ({"search.warmup_iterations": -1}, "search.warmup_iterations"),
      ({"search.entropy_weight": -0.1}, "search.entropy_weight"),
      ({"search.cost_weight": -0.1}, "search.cost_weight"),
      ({"search.holdout_every": 1}, "search.holdout_every"),
      ({"search.holdout_every": -2}, "search.holdout_every"),
      (
        {"search.holdout_every": 5, "search.arch_batch_size": 0},
        "search.arch_batch_size",
      ),
      (
        {"search.holdout_every": 0, "search.arch_batch_size": 4},
        "search.arch_batch_size",
      ),
      (  # held-out transitions take places of the batch (smoke: 8)
        {"search.holdout_every": 5, "search.arch_batch_size": 8},
        "search.arch_batch_size",
      ),
      ({"agent.cem_elites": 100}, "agent.cem_elites"),
      ({"train.seed_batching": "pmap"}, "train.seed_batching"),
    )
    for overrides, key in cases:
      with self.assertRaisesRegex(validation.ConfigError, key):
        qtopt_offline.validate(phase(**overrides), 1)

  def test_batch_and_dataset_split_over_devices(self):
    qtopt_offline.validate(phase(), 8)  # smoke: batch 8
    with self.assertRaisesRegex(validation.ConfigError, "train.batch_size"):
      qtopt_offline.validate(phase(), 3)
    with self.assertRaisesRegex(
      validation.ConfigError, "search.arch_batch_size"
    ):
      qtopt_offline.validate(
        phase(**{"search.holdout_every": 5, "search.arch_batch_size": 4}), 8
      )
    # A dataset on disk must split into equal slices of episodes.
    directory = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, directory)
    with open(os.path.join(directory, episode_store.MANIFEST), "w") as f:
      json.dump({"format": episode_store.FORMAT, "episodes": 12}, f)
    config = phase(**{"dataset.path": directory})
    qtopt_offline.validate(config, 4)
    with self.assertRaisesRegex(
      validation.ConfigError, "dataset.path.*12 episodes.*8 devices"
    ):
      qtopt_offline.validate(config, 8)


class PhaseConfigTest(absltest.TestCase):
  def test_search_agent_departs_only_in_the_search(self):
    config = visionary_config.get_config("smoke")
    config.agent.conservative_samples = 4
    config.search.agent = {"conservative_samples": 8}
    kw = dict(seed=0, num_seeds=2, num_iterations=10, dataset_path="/x")
    search = visionary.phase_config(
      config, architecture="search", search=True, **kw
    )
    group = visionary.phase_config(config, architecture="baseline", **kw)
    self.assertEqual(search.agent.conservative_samples, 8)
    self.assertEqual(group.agent.conservative_samples, 4)
    self.assertEqual(search.agent.gamma, group.agent.gamma)
    visionary.validate(config, 1)
    config.search.agent = {"conservative_sample": 8}  # a typo
    with self.assertRaisesRegex(
      validation.ConfigError, "search.agent.*conservative_sample"
    ):
      visionary.validate(config, 1)
    config.search.agent = {"conservative_samples": 0}  # checked as agent's
    with self.assertRaisesRegex(
      validation.ConfigError, "agent.conservative_samples"
    ):
      visionary.validate(config, 1)

  def test_retrain_seed_must_name_a_search_seed(self):
    config = visionary_config.get_config("smoke")
    config.search.retrain_seed = config.search.num_seeds - 1
    visionary.validate(config, 1)
    config.search.retrain_seed = config.search.num_seeds
    with self.assertRaisesRegex(validation.ConfigError, "search.retrain_seed"):
      visionary.validate(config, 1)


if __name__ == "__main__":
  absltest.main()
