"""Data parallelism over 8 simulated CPU devices matches one device.

XLA_FLAGS must be set before jax starts its backend, and this pytest process
may already have started it for another test module, so the 8-device runs
happen in worker processes (eight_device_worker.py) started once for the
module; the tests assert on what the workers report. This process runs no
jax computation of its own.

Each property has a broken control run beside it (no `pmean`, no per-device
`fold_in`, an evaluation mean that counts padding) that must fail the same
check, so a check that passes vacuously shows up as a failure. The
`offline` worker checks qtopt_offline: its update, its trainer with vmapped
seeds on a sharded dataset, and the split evaluation.
"""

import math
import shutil
import tempfile

import chex
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from tests.distributed import eight_device_worker
from tests.distributed import worker_lib

NUM_DEVICES = eight_device_worker.NUM_DEVICES
NUM_UPDATES = eight_device_worker.NUM_UPDATES
RTOL = ATOL = 1e-5

_WORKER = "tests.distributed.eight_device_worker"
_outputs: dict[str, worker_lib.WorkerOutput] = {}
_out_dir = ""


def setUpModule():
  # Both modes at once: on a small machine the compiles overlap.
  global _out_dir
  _out_dir = tempfile.mkdtemp(prefix="data_parallel_test_")
  _outputs.update(
    worker_lib.run_workers(
      {
        mode: [_WORKER, mode, _out_dir]
        for mode in ("updates", "trainer", "offline")
      },
      worker_lib.worker_env(NUM_DEVICES),
      _out_dir,
      fail_fast=False,
    )
  )


def tearDownModule():
  shutil.rmtree(_out_dir, ignore_errors=True)


def _result(mode: str) -> dict:
  output = _outputs[mode]
  if output.returncode != 0:
    raise AssertionError(output.describe(mode))
  return worker_lib.parse_result(output.stdout)


def _mismatches(arrays, name: str, step: int) -> list[str]:
  """Leaves of run `name` after update `step` not close to the single run."""
  prefix = f"single|{step}|"
  bad = []
  for key in arrays:
    if key.startswith(prefix):
      other = arrays[key.replace("single", name, 1)]
      if not np.allclose(other, arrays[key], rtol=RTOL, atol=ATOL):
        bad.append(key[len(prefix) :])
  return bad


def _assert_sharded_matches(test, arrays, step: int, parts) -> None:
  """Every leaf of the sharded run after update `step` is close to the
  single run's; the state's `parts` and the metrics are among them."""
  prefix = f"single|{step}|"
  names = [k[len(prefix) :] for k in arrays if k.startswith(prefix)]
  for part in parts:
    test.assertTrue(any(n.startswith("[0]" + part) for n in names), part)
  for metric in ("loss", "q_mean", "grad_norm"):
    test.assertIn(f"[1]['{metric}']", names)
  for name in names:
    np.testing.assert_allclose(
      arrays[f"sharded|{step}|{name}"],
      arrays[prefix + name],
      rtol=RTOL,
      atol=ATOL,
      err_msg=f"update {step}: {name}",
    )


class DataParallelUpdateTest(chex.TestCase):
  """`data_parallel_update` vs `jax.jit(agent.update)` on the global batch."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.result = _result("updates")
    with np.load(f"{_out_dir}/updates.npz") as npz:
      cls.arrays = dict(npz)

  def test_worker_saw_eight_devices(self):
    self.assertEqual(self.result["num_devices"], NUM_DEVICES)
    self.assertEqual(
      self.result["num_shards"],
      {"sharded": NUM_DEVICES, "no_pmean": NUM_DEVICES},
    )

  @parameterized.parameters(range(NUM_UPDATES))
  def test_sharded_update_matches_single_device(self, step):
    # State (params, target params, Adam moments, count, key, step) and every
    # metric are compared.
    _assert_sharded_matches(
      self,
      self.arrays,
      step,
      (".params", ".target_params", ".opt_state", ".key", ".step"),
    )

  def test_updates_move_params(self):
    # Otherwise matching params would prove nothing.
    first = [k for k in self.arrays if k.startswith("single|0|[0].params")]
    last = f"|{NUM_UPDATES - 1}|"
    moved = [
      not np.allclose(self.arrays[k], self.arrays[k.replace("|0|", last, 1)])
      for k in first
    ]
    self.assertTrue(all(moved), dict(zip(first, moved, strict=True)))

  def test_without_pmean_does_not_match(self):
    # Control: the agent built with axis_name=None, mapped the same way,
    # steps each device on its own slice. The comparison must see that.
    bad = _mismatches(self.arrays, "no_pmean", NUM_UPDATES - 1)
    for part in (".params", ".target_params", ".opt_state[1][0].mu"):
      self.assertTrue(any(b.startswith("[0]" + part) for b in bad), bad)
    self.assertIn("[1]['grad_norm']", bad)
    self.assertEmpty(_mismatches(self.arrays, "sharded", NUM_UPDATES - 1))

  def test_state_replicated_bitwise(self):
    replicated = self.result["replicated"]["sharded"]
    # Every leaf of DQNState was checked.
    state_leaves = {
      k[len("single|0|[0]") :]
      for k in self.arrays
      if k.startswith("single|0|[0]")
    }
    self.assertEqual(set(replicated), state_leaves)
    self.assertEqual([k for k, same in replicated.items() if not same], [])

  def test_without_pmean_state_diverges(self):
    # Control for the replication check: devices that never average drift.
    replicated = self.result["replicated"]["no_pmean"]
    differing = {k for k, same in replicated.items() if not same}
    learned = (".params", ".target_params", ".opt_state")
    self.assertTrue(all(k.startswith(learned) for k in differing), differing)
    self.assertTrue(
      all(
        k in differing
        for k in replicated
        if k.startswith((".params", ".target_params"))
      ),
      replicated,
    )


class DataParallelTrainerTest(chex.TestCase):
  """`data_parallel_trainer` + `make_chunk`: catch, uniform replay, DQN."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.result = _result("trainer")

  def test_agent_replicated_bitwise(self):
    run = self.result["data_parallel"]
    self.assertEqual(run["num_agent_shards"], NUM_DEVICES)
    self.assertTrue(run["params_moved"])  # else replication is trivial
    self.assertTrue(run["agent_replicated"])

  def test_agent_without_pmean_diverges(self):
    # Control: a trainer whose agent never averages gradients.
    run = self.result["agent_no_pmean"]
    self.assertEqual(run["num_agent_shards"], NUM_DEVICES)
    self.assertFalse(run["agent_replicated"])

  def test_worlds_differ_across_devices(self):
    run = self.result["data_parallel"]
    self.assertEqual(run["env_leading_dims"], [NUM_DEVICES])
    self.assertEqual(run["num_distinct_env_states"], NUM_DEVICES)
    self.assertEqual(run["num_distinct_keys"], NUM_DEVICES)
    self.assertGreater(run["num_distinct_obs"], 1)

  def test_worlds_identical_without_fold_in(self):
    # Control: a trainer built with axis_name=None starts every device from
    # the same key, so the distinctness check above must fail for it.
    run = self.result["trainer_no_axis"]
    self.assertEqual(run["env_leading_dims"], [NUM_DEVICES])
    self.assertEqual(run["num_distinct_env_states"], 1)
    self.assertEqual(run["num_distinct_keys"], 1)

  def test_metrics_finite(self):
    run = self.result["data_parallel"]
    self.assertEqual(run["iteration"], 4)  # 2 chunks of 2 steps
    self.assertLen(run["metrics"], 2)
    for metrics in run["metrics"]:
      self.assertEqual(metrics["first_nonfinite"], -1)
      for name, value in metrics.items():
        self.assertTrue(math.isfinite(value), f"{name}={value}")

  def test_metric_counts(self):
    # Per chunk each world steps 2 iterations x 10 = 20 times; catch episodes
    # last 9 steps, so 2 end per world: 8 devices x 4 worlds x 2 = 64, summed
    # over devices. Updates are 2 iterations x 2 = 4, the same on every device
    # (averaged, not summed). Non-zero counts keep test_metrics_finite honest.
    for metrics in self.result["data_parallel"]["metrics"]:
      self.assertEqual(metrics["episode/count"], NUM_DEVICES * 4 * 2)
      self.assertEqual(metrics["learner/count"], 4)


class OfflineDataParallelTest(chex.TestCase):
  """qtopt_offline over 8 devices: its update, trainer and evaluation."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.result = _result("offline")
    with np.load(f"{_out_dir}/offline.npz") as npz:
      cls.arrays = dict(npz)

  @parameterized.parameters(range(NUM_UPDATES))
  def test_qtopt_update_matches_single_device(self, step):
    # The recipe's agent (grasping_tiny, 32 px, Monte-Carlo targets) on 8
    # slices of a global batch of 16 vs one device on all of it. No CQL:
    # each device draws its own uniform actions (a key folded by device),
    # so with CQL the sharded update is not one device's.
    _assert_sharded_matches(
      self,
      self.arrays,
      step,
      (".params", ".polyak_params", ".opt_state", ".key"),
    )
    self.assertTrue(self.result["replicated"])

  def test_qtopt_without_pmean_does_not_match(self):
    bad = _mismatches(self.arrays, "no_pmean", NUM_UPDATES - 1)
    for part in (".params", ".polyak_params", ".opt_state"):
      self.assertTrue(any(b.startswith("[0]" + part) for b in bad), bad)
    self.assertIn("[1]['grad_norm']", bad)
    self.assertEmpty(_mismatches(self.arrays, "sharded", NUM_UPDATES - 1))

  def test_trainer_run(self):
    # The recipe's trainer, 2 seeds vmapped inside each device's program,
    # one host chunk of 2 iterations x 2 updates.
    run = self.result["trainer"]
    self.assertTrue(run["same_agent_structure"])
    self.assertTrue(run["params_moved"])
    self.assertTrue(run["agent_replicated"])
    self.assertEqual(run["iteration"], [2, 2])
    self.assertEqual(run["metrics"]["first_nonfinite"], -1)
    for name, values in run["metrics"].items():
      self.assertTrue(all(map(math.isfinite, np.ravel(values))), name)
    self.assertEqual(run["metrics"]["learner/count"], [4.0, 4.0])
    # Each device holds 2 of the 16 episodes and draws with its own key.
    self.assertEqual(run["data_shards"], [NUM_DEVICES])
    self.assertEqual(run["episodes_per_device"], [2])
    self.assertEqual(run["num_distinct_keys"], NUM_DEVICES)

  def test_split_evaluation_equals_one_device(self):
    # 5 Catch worlds dealt over 8 devices (3 run padding copies): the same
    # worlds and means as one device running all 5.
    catch = self.result["catch"]
    self.assertEqual(catch["split_eval"], catch["one_device_eval"])
    self.assertEqual(catch["metrics"]["first_nonfinite"], -1)
    # Control: counting the padding copies would give another mean.
    self.assertNotEqual(
      catch["unmasked_return"], catch["one_device_eval"]["eval/return"]
    )


if __name__ == "__main__":
  absltest.main()
