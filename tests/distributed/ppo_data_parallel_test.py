"""Surreal-PPO's learner on 4 simulated CPU devices equals one device on the
global minibatch (advantage normalisation, gradients, early stop, z-filter,
publish count), and a control without `pmean` does not. The 4-device run
happens in a worker process (XLA_FLAGS must precede jax's backend)."""

import shutil
import tempfile

import numpy as np
from absl.testing import absltest

from tests.distributed import ppo_worker
from tests.distributed import worker_lib

_out_dir = ""
_output = None


def setUpModule():
  global _out_dir, _output
  _out_dir = tempfile.mkdtemp(prefix="ppo_data_parallel_test_")
  _output = worker_lib.run_workers(
    {"ppo": ["tests.distributed.ppo_worker", _out_dir]},
    worker_lib.worker_env(ppo_worker.NUM_DEVICES),
    _out_dir,
    fail_fast=True,
  )["ppo"]


def tearDownModule():
  shutil.rmtree(_out_dir, ignore_errors=True)


class PPODataParallelTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if _output.returncode != 0:
      raise AssertionError(_output.describe("ppo"))
    cls.result = worker_lib.parse_result(_output.stdout)
    with np.load(f"{_out_dir}/ppo.npz") as npz:
      cls.arrays = dict(npz)

  def _far(self, name: str, it: int) -> list[str]:
    prefix = f"single|{it}|"
    return [
      key[len(prefix) :]
      for key in self.arrays
      if key.startswith(prefix)
      and not np.allclose(
        self.arrays[key.replace("single", name, 1)],
        self.arrays[key],
        rtol=2e-4,
        atol=2e-5,
      )
    ]

  def test_sharded_learner_equals_one_device(self):
    self.assertEqual(self.result["num_devices"], ppo_worker.NUM_DEVICES)
    for it in (0, 1):
      # The reported actor loss is the last epoch's, evaluated even when
      # that epoch stopped early, and its hinge acts on each device's KL
      # (make_ppo's doc): the one leaf allowed to differ. The parameters,
      # whose updates stop before the hinge binds, agree.
      far = self._far("sharded", it)
      self.assertEqual([k for k in far if "actor_loss" not in k], [], it)
    # The second iteration published: 8 + 8 segments counted over devices.
    (key,) = [
      k
      for k in self.arrays
      if k.startswith("sharded|1|") and k.endswith(".publishes")
    ]
    self.assertEqual(int(self.arrays[key]), 1)

  def test_without_pmean_it_differs(self):
    far = self._far("no_pmean", 0)
    self.assertTrue(any("params" in k for k in far), far)
    self.assertTrue(any("zfilter" in k for k in far), far)


if __name__ == "__main__":
  absltest.main()
