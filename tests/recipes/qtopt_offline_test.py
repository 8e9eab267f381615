"""The qtopt_offline recipe: optimiser wiring and config validation."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from configs import visionary as visionary_config
from experiments import visionary
from jaxrl_vision import validation
from jaxrl_vision.recipes import qtopt_offline


def phase(**agent):
  config = visionary_config.get_config("smoke")
  c = visionary.phase_config(
    config,
    architecture="search",
    seed=0,
    num_iterations=10,
    dataset_path="/nonexistent",
  )
  c.agent.update(agent)
  return c


class OptimizerTest(absltest.TestCase):
  def test_arch_logits_take_a_scaled_step(self):
    params = {
      "params": {
        "head": {
          "merge_pool2": {"merge_logits": jnp.zeros(5)},
          "conv": {"kernel": jnp.zeros((2, 2))},
        }
      }
    }
    grads = jax.tree.map(jnp.ones_like, params)
    for scale, arch_step in ((1.0, -0.1), (10.0, -1.0)):
      opt = qtopt_offline.make_optimizer(
        phase(
          optimizer="sgd", learning_rate=0.1, momentum=0.0, arch_lr_scale=scale
        )
      )
      updates, _ = opt.update(grads, opt.init(params), params)
      head = updates["params"]["head"]
      np.testing.assert_allclose(
        head["merge_pool2"]["merge_logits"], arch_step, rtol=1e-6
      )
      np.testing.assert_allclose(head["conv"]["kernel"], -0.1, rtol=1e-6)


class ValidateTest(absltest.TestCase):
  def test_refuses_bad_values(self):
    cases = (
      (dict(optimizer="rmsprop"), "agent.optimizer"),
      (dict(arch_lr_scale=0.0), "agent.arch_lr_scale"),
      (dict(cem_elites=100), "agent.cem_elites"),
    )
    for agent, key in cases:
      with self.assertRaisesRegex(validation.ConfigError, key):
        qtopt_offline.validate(phase(**agent), 1)

  def test_one_device_only(self):
    with self.assertRaisesRegex(validation.ConfigError, "one device"):
      qtopt_offline.validate(phase(), 2)

  def test_architecture_json_or_preset(self):
    arch = qtopt_offline.architecture("baseline")
    self.assertEqual(arch.attention, "off")
    with self.assertRaisesRegex(ValueError, "preset"):
      qtopt_offline.architecture("{not json")


if __name__ == "__main__":
  absltest.main()
