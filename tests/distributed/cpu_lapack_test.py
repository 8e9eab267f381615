"""`cpu_lapack`: the same bits as jax's own CPU lowering, and no deadlock.

The worker runs in a fresh process with a 2-thread XLA:CPU pool (`NPROC=2`),
where jaxlib 0.10.2's own lowering of four independent batched Cholesky
factorisations in one program never returns (measured: killed after 60 s on
one device and on two); a broken fix fails here by the timeout.
"""

import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision.distributed import cpu_lapack

WORKER = pathlib.Path(__file__).with_name("cpu_lapack_worker.py")
REPO_ROOT = WORKER.parents[2]


class CpuLapackTest(absltest.TestCase):
  def test_same_bits_and_no_deadlock(self):
    env = dict(os.environ, NPROC="2", PYTHONPATH=str(REPO_ROOT))
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
      [sys.executable, str(WORKER)],
      env=env,
      capture_output=True,
      text=True,
      timeout=300,  # a deadlock guard; the worker takes ~20 s
    )
    self.assertEqual(done.returncode, 0, done.stderr[-3000:])
    self.assertEqual(done.stdout.strip().splitlines()[-1], "ok")

  def test_chunk_size_is_jaxlibs_inline_bound(self):
    # jaxlib runs a call inline when batch * cost < 200,000.
    self.assertEqual(cpu_lapack.chunk_size(18**3 // 3), 102)
    self.assertLess(102 * (18**3 // 3), 200_000)
    self.assertGreaterEqual(103 * (18**3 // 3), 200_000)
    self.assertEqual(cpu_lapack.chunk_size(10**6), 1)

  def test_map_chunks_keeps_order_and_batch_dims(self):
    x = jnp.arange(2 * 7 * 3, dtype=jnp.float32).reshape(2, 7, 3)
    seen = []

    def fn(a, b):
      seen.append(a.shape[0])
      return a * 2 + b, a.sum(-1)

    y, s = cpu_lapack.map_chunks(fn, [x, x + 1], 1, 4)
    self.assertEqual(seen, [4, 2])  # three chunks of 4 (one traced), then 2
    np.testing.assert_array_equal(y, 3 * x + 1)
    np.testing.assert_array_equal(s, x.sum(-1))


if __name__ == "__main__":
  absltest.main()
