"""Two processes on localhost form one 2-device CPU job and agree.

Each worker (two_process_worker.py) joins through `mesh.initialize`, holds
one CPU device and half of a deterministic global batch, and runs
data-parallel DQN updates whose gradient `pmean` crosses the process boundary
(gloo). Both must report the same bits, and those must be the updates of one
process on the whole batch, not on its own half.

Then both run the data-parallel offline trainer (a dataset sharded over the
two processes' devices, each process placing its own slice; a split
evaluation): it must equal the same run in one process with two devices (a
third worker, started beside them).
"""

import shutil
import tempfile

import chex
import jax
import numpy as np
from absl.testing import absltest

from tests.distributed import two_process_worker
from tests.distributed import worker_lib

NUM_PROCESSES = two_process_worker.NUM_PROCESSES
RTOL = ATOL = 1e-5
_WORKER = "tests.distributed.two_process_worker"


def _single_process_reference(global_rows: slice) -> dict[str, np.ndarray]:
  """The workers' updates by one CPU device on batch rows `global_rows`."""
  agent = worker_lib.make_agent(axis_name=None)
  batches = worker_lib.make_batches(
    0, two_process_worker.NUM_UPDATES, two_process_worker.GLOBAL_BATCH
  )
  with jax.default_device(jax.devices("cpu")[0]):
    state = agent.init(jax.random.key(0), batches.obs_tm1[0, :1])
    update = jax.jit(agent.update)
    all_metrics = []
    for i in range(two_process_worker.NUM_UPDATES):
      batch = jax.tree.map(lambda x, i=i: x[i, global_rows], batches)
      state, metrics = update(state, batch)
      all_metrics.append(metrics)
  return worker_lib.flatten((state, all_metrics), "")


def _mismatches(got: dict, want: dict) -> list[str]:
  return [
    k for k in want if not np.allclose(got[k], want[k], rtol=RTOL, atol=ATOL)
  ]


_outputs: dict[str, worker_lib.WorkerOutput] = {}
_out_dir = ""


def setUpModule():
  global _out_dir
  _out_dir = tempfile.mkdtemp(prefix="two_process_test_")
  port = str(worker_lib.free_port())
  env = worker_lib.worker_env(num_cpu_devices=1)
  # jax binds the coordinator to every interface ([::]) unless told.
  env["JAX_COORDINATOR_BIND_ADDRESS"] = f"127.0.0.1:{port}"
  commands = {
    f"process_{i}": [_WORKER, port, str(i), _out_dir]
    for i in range(NUM_PROCESSES)
  }
  commands["local"] = [_WORKER, "local", "-", _out_dir]
  _outputs.update(
    worker_lib.run_workers(
      commands,
      env,
      _out_dir,
      fail_fast=True,
      envs={"local": worker_lib.worker_env(num_cpu_devices=NUM_PROCESSES)},
    )
  )
  failed = [
    out.describe(name) for name, out in _outputs.items() if out.returncode != 0
  ]
  if failed:
    raise AssertionError("\n\n".join(failed))


def tearDownModule():
  shutil.rmtree(_out_dir, ignore_errors=True)


def _load(name: str) -> dict[str, np.ndarray]:
  with np.load(f"{_out_dir}/{name}.npz") as npz:
    return dict(npz)


class TwoProcessTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.results = [
      worker_lib.parse_result(_outputs[f"process_{i}"].stdout)
      for i in range(NUM_PROCESSES)
    ]
    cls.arrays = [_load(f"process_{i}") for i in range(NUM_PROCESSES)]
    cls.reference = _single_process_reference(slice(None))

  def test_processes_form_one_job(self):
    for i, result in enumerate(self.results):
      self.assertTrue(result["joined"])
      self.assertEqual(result["process_index"], i)
      self.assertEqual(result["process_count"], NUM_PROCESSES)
      self.assertEqual(result["num_global_devices"], NUM_PROCESSES)
      self.assertEqual(result["num_local_devices"], 1)
      self.assertEqual(result["mesh_shape"], {"data": NUM_PROCESSES})

  def test_processes_report_identical_results(self):
    def without_index(result):
      return {k: v for k, v in result.items() if k != "process_index"}

    self.assertEqual(
      without_index(self.results[0]), without_index(self.results[1])
    )
    for name, value in self.arrays[0].items():
      np.testing.assert_array_equal(self.arrays[1][name], value, err_msg=name)

  def test_matches_single_process_on_global_batch(self):
    want = self.reference
    for got in self.arrays:
      self.assertEqual(sorted(got), sorted(want))
      for name in want:
        np.testing.assert_allclose(
          got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name
        )
    # The JSON checksum agrees too: sums in float64 of the final params.
    sums = self.results[0]["param_sums"]
    for name, value in want.items():
      if name.startswith("[0].params"):
        self.assertAlmostEqual(
          sums[name[len("[0].params") :]],
          float(value.astype(np.float64).sum()),
          delta=1e-4,
        )

  def test_half_batch_does_not_match(self):
    # Control: had the pmean stayed inside one process, process 0 would have
    # learned from its own half only. The comparison above must tell.
    half = two_process_worker.GLOBAL_BATCH // NUM_PROCESSES
    want = _single_process_reference(slice(0, half))
    bad = _mismatches(self.arrays[0], want)
    self.assertTrue(any(k.startswith("[0].params") for k in bad), bad)
    self.assertEmpty(_mismatches(self.arrays[0], self.reference))


class TwoProcessOfflineTest(chex.TestCase):
  """The offline trainer with its dataset sharded over two processes."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.arrays = [_load(f"offline_process_{i}") for i in range(NUM_PROCESSES)]
    cls.local = _load("offline_local")

  def test_matches_one_process_with_two_devices(self):
    want = {k: v for k, v in self.local.items() if "|" not in k}
    # Agent state, both chunks' metrics and the evaluation are compared.
    for part in ("[0].params", "[0].opt_state", "[1][1]['learner/loss']"):
      self.assertTrue(any(k.startswith(part) for k in want), part)
    self.assertTrue(any("eval/return" in k for k in want))
    for got in self.arrays:
      self.assertEqual(sorted(got), sorted(want))
      for name in want:
        np.testing.assert_allclose(
          got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name
        )
    for name, value in self.arrays[0].items():
      np.testing.assert_array_equal(self.arrays[1][name], value, err_msg=name)

  def test_without_pmean_does_not_match(self):
    # Control: a device that learned from its own slice alone (no pmean)
    # ends elsewhere; had the pmean stayed inside each process, the check
    # above would have seen this.
    prefix = "no_pmean_device_1|"
    control = {
      "[0].params" + k[len(prefix) :]: v
      for k, v in self.local.items()
      if k.startswith(prefix)
    }
    self.assertNotEmpty(control)
    bad = _mismatches(self.arrays[1], control)
    self.assertNotEmpty(bad)


if __name__ == "__main__":
  absltest.main()
