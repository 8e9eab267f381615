"""Bad input gets one clear line and exit status 2, before anything compiles;
damaged or foreign run directories are reported and nothing is lost."""

import glob
import json
import os

import jax.numpy as jnp
import ml_collections
from absl.testing import absltest
from absl.testing import parameterized

from experiments import loop
from jaxrl_vision import validation
from jaxrl_vision.distributed import mesh
from tests.integration import helpers


class BadCommandLineTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("unknown_key", ["--config.agent.lr=1"], "config.agent has no key 'lr'"),
    ("unknown_section", ["--config.bogus.x=1"], "config has no key 'bogus'"),
    ("wrong_type", ["--config.replay.batch_size=abc"], "replay.batch_size"),
    (
      "negative_batch",
      ["--config.replay.batch_size=-4"],
      "config.replay.batch_size=-4: must be a positive integer",
    ),
    (
      "image_too_small",
      ["--config.env.params.rows=2"],
      "a 2x5 image shrinks to 0x3 at conv layer 0",
    ),
    (
      "nan_learning_rate",
      ["--config.agent.learning_rate=nan"],
      "config.agent.learning_rate=nan: must be a finite number",
    ),
    (
      "unknown_experiment",
      ["--config.experiment=nope"],
      "config.experiment='nope': must be one of: dqn_pixels",
    ),
    (
      "unknown_env",
      ["--config.env.name=nope"],
      "config.env.name='nope': must be one of: bimanual_lifting, "
      "bimanual_peg_in_hole, bin_picking, catch",
    ),
    (
      "misaligned_checkpoint",
      ["--config.checkpoint.every=15"],
      "must be 0 or a multiple of train.log_every (10)",
    ),
    ("too_many_devices", ["--config.distributed.num_devices=4096"], "at most"),
    (
      # The other distributed keys are checked in DistributedConfigTest.
      "negative_num_processes",
      ["--config.distributed.num_processes=-7"],
      "config.distributed.num_processes=-7: must be an integer >= 0",
    ),
    (
      "unknown_variant",
      [],
      "unknown variant 'nope'; valid variants: smoke",
      "configs/catch_dqn.py:nope",
    ),
    ("missing_config_file", [], "no such file", "configs/nope.py"),
    ("stray_argument", ["extra"], "unexpected arguments: extra"),
  )
  def test_one_line_exit_2_nothing_written(
    self, args, message, config=helpers.SMOKE
  ):
    workdir = helpers.fresh_workdir("bad_input")
    result = helpers.cli(
      f"--config={config}", f"--workdir={workdir}", *args, timeout=120
    )
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertNotIn("Traceback", result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    self.assertLen(lines, 1, result.stderr)
    self.assertIn(message, lines[0])
    # Refused before the run started: no run directory, so nothing compiled.
    self.assertFalse(os.path.exists(workdir))


def distributed_config(**overrides) -> ml_collections.ConfigDict:
  """The `distributed` section of configs/common.py with some values changed.

  Not type-safe like a loaded config, so wrong types reach the checks.
  """
  section = dict(
    num_devices=0,
    cpu_devices=0,
    coordinator_address="",
    num_processes=0,
    process_id=-1,
    auto_detect=False,
  )
  assert set(overrides) <= set(section), overrides
  return ml_collections.ConfigDict(dict(distributed=section | overrides))


class DistributedConfigTest(parameterized.TestCase):
  """`mesh.validate_config`, which the runner calls before jax.distributed.

  One case runs end to end: `negative_num_processes` above.
  """

  @parameterized.named_parameters(
    ("defaults", {}),
    ("all_devices_set", {"num_devices": 2}),
    ("cpu_devices", {"cpu_devices": 4}),
    ("two_processes", {"num_processes": 2, "process_id": 1}),
    ("id_from_env", {"num_processes": 2}),
    ("count_from_env", {"process_id": 3}),
    ("address", {"coordinator_address": "10.0.0.1:8476"}),
    ("ipv6_address", {"coordinator_address": "[::1]:1"}),
    ("max_port", {"coordinator_address": "localhost:65535"}),
    ("auto", {"auto_detect": True}),
  )
  def test_accepts(self, overrides):
    mesh.validate_config(distributed_config(**overrides))

  @parameterized.named_parameters(
    ("negative_devices", {"num_devices": -1}, "num_devices=-1: must be an"),
    ("negative_cpu", {"cpu_devices": -2}, "cpu_devices=-2: must be an"),
    ("float_cpu", {"cpu_devices": 2.0}, "cpu_devices=2.0: must be an"),
    ("negative_processes", {"num_processes": -7}, "num_processes=-7: must be"),
    ("bool_processes", {"num_processes": True}, "num_processes=True: must"),
    ("negative_id", {"process_id": -7}, "process_id=-7: must be -1 (not"),
    ("float_id", {"process_id": 1.0}, "process_id=1.0: must be -1 (not"),
    (
      "id_out_of_range",
      {"num_processes": 4, "process_id": 4},
      "process_id=4: must be < distributed.num_processes (4)",
    ),
    ("no_port", {"coordinator_address": "localhost"}, "address='localhost':"),
    ("no_host", {"coordinator_address": ":1234"}, "address=':1234': must"),
    ("port_0", {"coordinator_address": "h:0"}, "address='h:0': must"),
    ("port_high", {"coordinator_address": "h:65536"}, "address='h:65536':"),
    ("port_name", {"coordinator_address": "h:http"}, "address='h:http':"),
    ("port_sign", {"coordinator_address": "h:+80"}, "address='h:+80':"),
    ("space", {"coordinator_address": "a b:80"}, "address='a b:80':"),
    ("address_type", {"coordinator_address": 80}, "address=80: must be"),
    ("auto_string", {"auto_detect": "yes"}, "auto_detect='yes': must be"),
  )
  def test_rejects_naming_the_key(self, overrides, message):
    with self.assertRaises(validation.ConfigError) as raised:
      mesh.validate_config(distributed_config(**overrides))
    self.assertStartsWith(str(raised.exception), "config.distributed.")
    self.assertIn(message, str(raised.exception))


def nan_at(recipe, iteration):
  """The recipe, with the loss of one iteration replaced by NaN."""

  def make_train(config, axis_name, num_devices):
    trainer = recipe.make_train(config, axis_name, num_devices)

    def step(state):
      new_state, metrics = trainer.step(state)
      metrics = dict(metrics)
      loss = metrics["sum/learner/loss"]
      metrics["sum/learner/loss"] = jnp.where(
        state.iteration + 1 == iteration, jnp.nan, loss
      )
      return new_state, metrics

    return trainer._replace(step=step)

  return recipe._replace(make_train=make_train)


class RunDirectoryTest(absltest.TestCase):
  def test_nonfinite_loss_stops_and_names_the_iteration(self):
    config = helpers.smoke_config()
    workdir = helpers.fresh_workdir("nan")
    with self.assertRaisesRegex(
      loop.NonFiniteError, r"at iteration 25;.*checkpoint: 20"
    ):
      helpers.run(config, workdir, nan_at(helpers.recipe(config), 25))
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    self.assertEqual(summary["status"], "diverged")
    self.assertEqual(summary["iterations"], 20)
    # Nothing from the bad chunk was checkpointed or logged.
    self.assertEqual(
      sorted(os.listdir(os.path.join(workdir, "checkpoints"))), ["10", "20"]
    )
    step, _ = helpers.final_state(workdir, config)
    self.assertEqual(step, 20)

  def test_incompatible_config_is_refused_with_the_difference(self):
    workdir = helpers.fresh_workdir("incompatible")
    first = helpers.cli(
      f"--config={helpers.SMOKE}",
      f"--workdir={workdir}",
      "--config.train.num_iterations=10",
    )
    self.assertEqual(first.returncode, 0, first.stderr[-2000:])
    result = helpers.cli(
      f"--config={helpers.SMOKE}",
      f"--workdir={workdir}",
      "--config.agent.learning_rate=0.5",
    )
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertNotIn("Traceback", result.stderr)
    self.assertIn("agent.learning_rate: 0.001 -> 0.5", result.stderr)
    self.assertNotIn("train.num_iterations", result.stderr)  # resumable key
    # The refused run changed nothing.
    self.assertEqual(
      sorted(os.listdir(os.path.join(workdir, "checkpoints"))), ["10"]
    )
    self.assertLen(open(os.path.join(workdir, "metrics.jsonl")).readlines(), 1)

  def _run_then_damage(self, name, damage):
    config = helpers.smoke_config()  # checkpoints 20, 30, 40 are kept
    workdir = helpers.fresh_workdir(name)
    helpers.run(config, workdir, helpers.recipe(config))
    for step in damage:
      files = glob.glob(
        os.path.join(workdir, "checkpoints", str(step), "state", "**", "*"),
        recursive=True,
      )
      biggest = max(
        (f for f in files if os.path.isfile(f)), key=os.path.getsize
      )
      with open(biggest, "r+b") as f:
        f.truncate(os.path.getsize(biggest) // 2)
    return workdir

  def test_truncated_newest_checkpoint_falls_back_to_previous(self):
    workdir = self._run_then_damage("corrupt_newest", damage=[40])
    config = helpers.smoke_config(**{"train.num_iterations": 50})
    reference = helpers.fresh_workdir("corrupt_reference")
    helpers.run(config, reference, helpers.recipe(config))

    summary = helpers.run(config, workdir, helpers.recipe(config))
    self.assertEqual(summary["resumed_from"], 30)
    self.assertLen(glob.glob(os.path.join(workdir, "corrupt", "40-*")), 1)
    _, leaves = helpers.final_state(workdir, config)
    _, expected = helpers.final_state(reference, config)
    helpers.assert_bitwise_equal(leaves, expected)

  def test_all_checkpoints_damaged_is_an_error(self):
    workdir = self._run_then_damage("corrupt_all", damage=[20, 30, 40])
    result = helpers.cli(f"--config={helpers.SMOKE}", f"--workdir={workdir}")
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertIn("no intact checkpoint left", result.stderr)
    self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
  absltest.main()
