"""The sharded replay on 4 simulated CPU devices samples exactly what one
unsharded buffer samples from the same items and keys (the worker process
sets XLA_FLAGS before jax's backend starts); one-device checks here."""

import shutil
import tempfile

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.data.replay import sharded
from tests.distributed import replay_worker
from tests.distributed import worker_lib

_out_dir = ""
_output = None


def setUpModule():
  global _out_dir, _output
  _out_dir = tempfile.mkdtemp(prefix="sharded_replay_test_")
  _output = worker_lib.run_workers(
    {"replay": ["tests.distributed.replay_worker", _out_dir]},
    worker_lib.worker_env(replay_worker.NUM_DEVICES),
    _out_dir,
    fail_fast=True,
  )["replay"]


def tearDownModule():
  shutil.rmtree(_out_dir, ignore_errors=True)


class ShardedReplayTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if _output.returncode != 0:
      raise AssertionError(_output.describe("replay"))
    cls.result = worker_lib.parse_result(_output.stdout)
    with np.load(f"{_out_dir}/replay.npz") as npz:
      cls.arrays = dict(npz)

  def test_sharded_samples_equal_unsharded(self):
    self.assertEqual(self.result["num_devices"], replay_worker.NUM_DEVICES)
    keys = [k for k in self.arrays if k.startswith("one|")]
    self.assertLen(keys, 3 * 2 * 3)  # adds x keys x leaves
    for key in keys:
      mine = self.arrays[key.replace("one", "many", 1)]
      np.testing.assert_array_equal(mine, self.arrays[key], err_msg=key)
    # The batches are not trivial: distinct items, and the wrapped third add
    # replaced the first (values 0-7 gone, 200-207 present).
    last = np.concatenate(
      [self.arrays[f"one|2|{j}|['obs']"][:, 0] for j in range(2)]
    )
    self.assertGreater(len(set(last.tolist())), 4)
    self.assertTrue(
      set(last.tolist()) <= set(range(100, 108)) | set(range(200, 208))
    )

  def test_stratified_sampling_statistics(self):
    # exact=False: device d's 2 draws come from its own shard (after the
    # third add it holds items 100 + 2d, 101 + 2d, 200 + 2d, 201 + 2d), and
    # over 200 batches every one of the 16 stored items is drawn about
    # 200 x 8 / 16 = 100 times, as unsharded sampling would.
    draws = self.arrays["local_draws"].astype(int)
    for d in range(replay_worker.NUM_DEVICES):
      own = {100 + 2 * d, 101 + 2 * d, 200 + 2 * d, 201 + 2 * d}
      self.assertTrue(set(draws[:, 2 * d : 2 * d + 2].ravel()) <= own, d)
    values, counts = np.unique(draws, return_counts=True)
    self.assertLen(values, 16)
    self.assertTrue(np.all(np.abs(counts - 100) < 40), counts)

  def test_can_sample_agrees(self):
    for call in range(3):
      flags = self.arrays[f"can|{call}"]
      self.assertTrue(np.all(flags == flags[0]), flags)
      self.assertTrue(flags[0])  # min_size 8 = one add

  def test_bad_sizes(self):
    with self.assertRaisesRegex(
      ValueError, "multiple of num_shards x add_size"
    ):
      sharded.make_sharded_replay(
        12, 4, 4, add_size=4, num_shards=2, axis_name="d"
      )
    with self.assertRaisesRegex(ValueError, "batch_size 6 must split over 4"):
      sharded.make_sharded_replay(
        16, 6, 4, add_size=2, num_shards=4, axis_name="d"
      )
    one = sharded.make_sharded_replay(8, 4, 4, add_size=4)
    state = one.add(one.init(jnp.zeros(2)), jnp.ones((4, 2)))
    self.assertEqual(int(state.size), 4)


if __name__ == "__main__":
  absltest.main()
