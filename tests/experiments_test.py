"""Host-side pieces of the runner: config diffs and the metrics log."""

import json
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from experiments import loop
from experiments import rundir
from jaxrl_vision.networks import visionary as networks
from jaxrl_vision.search import visionary as space


class ConfigDiffTest(absltest.TestCase):
  def test_lists_changed_keys_and_ignores_resumable_ones(self):
    old = {
      "agent": {"lr": 0.1, "sizes": [1, 2]},
      "train": {"num_iterations": 10},
      "checkpoint": {"every": 5},
      "seed": 0,
    }
    new = {
      "agent": {"lr": 0.2, "sizes": (1, 2)},
      "train": {"num_iterations": 99},
      "checkpoint": {"every": 50},
      "seed": 0,
      "extra": 1,
    }
    self.assertEqual(
      loop.config_diff(old, new),
      ["agent.lr: 0.1 -> 0.2", "extra: '<missing>' -> 1"],
    )

  def test_identical_configs_have_no_diff(self):
    config = {"a": {"b": (1, 2)}, "c": "x"}
    self.assertEqual(loop.config_diff(config, config), [])


class MetricsLogTest(absltest.TestCase):
  def test_resume_drops_lines_after_the_checkpoint_and_a_cut_line(self):
    path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    with open(path, "w") as f:
      for step in (10, 20, 30):
        f.write(json.dumps({"step": step, "time": 0.0}) + "\n")
      f.write('{"step": 40, "ti')  # killed mid-write
    log = rundir.MetricsLog(path, resume_step=20)
    log.write(30, {"x": 1.0})
    log.close()
    steps = [r["step"] for r in rundir.read_metrics(path)]
    self.assertEqual(steps, [10, 20, 30])
    self.assertEqual(rundir.read_metrics(path)[-1]["x"], 1.0)

  def test_fresh_run_starts_a_new_log(self):
    path = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
    with open(path, "w") as f:
      f.write(json.dumps({"step": 10, "time": 0.0}) + "\n")
    rundir.MetricsLog(path, resume_step=None).close()
    self.assertEqual(rundir.read_metrics(path), [])


if __name__ == "__main__":
  absltest.main()


class InitCompileTest(absltest.TestCase):
  def test_init_options_give_the_same_bits(self):
    # A network's init (two seeds vmapped, as a phase runs it) compiled
    # with loop.init_compiler_options and with XLA's defaults.
    q = networks.make_q_function(
      "grasping_tiny", space.baseline_architecture(), 16, coord_channels=True
    )
    obs = {
      "image": jnp.zeros((1, 16, 16, 3), jnp.uint8),
      **{k: jnp.zeros((1,)) for k in ("gripper_closed", "height", "aperture")},
    }
    init = jax.jit(jax.vmap(lambda k: q.init(k, obs, jnp.zeros((1, 7)))))
    keys = jax.random.split(jax.random.key(3), 2)
    options = loop.init_compiler_options()
    self.assertIsNotNone(options)  # the suite runs on XLA:CPU
    fast = init.lower(keys).compile(compiler_options=options)(keys)
    reference = init.lower(keys).compile()(keys)
    self.assertGreater(len(jax.tree.leaves(reference)), 10)
    for a, b in zip(
      jax.tree.leaves(fast), jax.tree.leaves(reference), strict=True
    ):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
