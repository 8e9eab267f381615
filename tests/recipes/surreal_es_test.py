"""Surreal-ES's recipe: the smoke run's metrics and bitwise resume, bad
configs, and 2 devices (returns gathered) equal to one (in a worker
process: XLA_FLAGS must precede jax's backend)."""

import shutil
import tempfile

import numpy as np
from absl.testing import absltest

from configs import surreal_es_halfcheetah
from jaxrl_vision import recipes
from jaxrl_vision.recipes import surreal_es
from tests.distributed import es_worker
from tests.distributed import worker_lib
from tests.integration import helpers


def _config(**overrides):
  return helpers.with_overrides(
    surreal_es_halfcheetah.get_config("smoke"), **overrides
  )


class SurrealESRecipeTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.config = _config()
    cls.recipe = recipes.get_recipe(cls.config)
    cls.reference = helpers.fresh_workdir("es_reference")
    cls.summary = helpers.run(cls.config, cls.reference, cls.recipe)
    cls.step, cls.leaves = helpers.final_state(cls.reference, cls.config)

  def test_run_reports_the_metrics(self):
    final = self.summary["final"]
    for name in ("episode/return", "eval/return", "es/grad_norm"):
      self.assertTrue(np.isfinite(final[name]), name)
    # 4 members x 5 steps (HalfCheetah never terminates).
    self.assertEqual(final["es/env_steps"], 20.0)
    self.assertEqual(self.step, self.config.train.num_iterations)

  def test_resume_is_bitwise(self):
    helpers.assert_resumes_bitwise(
      self.config, self.recipe, "es_crashed", 2, self.step, self.leaves
    )


class BadConfigTest(absltest.TestCase):
  def test_bad_config(self):
    with self.assertRaisesRegex(Exception, "population_size"):
      surreal_es.validate(_config(**{"agent.population_size": 5}), 1)
    with self.assertRaisesRegex(Exception, "split over 4 devices"):
      surreal_es.validate(_config(**{"agent.population_size": 6}), 4)
    with self.assertRaisesRegex(Exception, "agent.noise"):
      surreal_es.validate(_config(**{"agent.noise": 0.1}), 1)
    with self.assertRaisesRegex(Exception, "continuous actions"):
      surreal_es.validate(_config(**{"env.name": "catch", "env.params": {}}), 1)


class TwoDevicesTest(absltest.TestCase):
  def test_two_devices_equal_one(self):
    out_dir = tempfile.mkdtemp(prefix="es_worker_")
    try:
      output = worker_lib.run_workers(
        {"es": ["tests.distributed.es_worker", out_dir]},
        worker_lib.worker_env(es_worker.NUM_DEVICES),
        out_dir,
        fail_fast=True,
      )["es"]
      if output.returncode != 0:
        raise AssertionError(output.describe("es"))
      self.assertEqual(worker_lib.parse_result(output.stdout)["num_devices"], 2)
      with np.load(f"{out_dir}/es.npz") as npz:
        arrays = dict(npz)
    finally:
      shutil.rmtree(out_dir, ignore_errors=True)
    keys = [k for k in arrays if k.startswith("single|")]
    self.assertGreater(len(keys), 5)
    # Equal up to float summation order and MJX's numerics at another
    # vmap width (relative differences ~1e-4 in the observation sums).
    for key in keys:
      np.testing.assert_allclose(
        arrays[key.replace("single", "sharded", 1)],
        arrays[key],
        rtol=2e-3,
        atol=1e-4,
        err_msg=key,
      )
    # The parameters moved: the comparison is not of two initial states.
    self.assertGreater(float(arrays["single|.iteration"]), 1)


if __name__ == "__main__":
  absltest.main()
