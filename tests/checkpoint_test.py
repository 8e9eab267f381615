"""Checkpoint helpers: round trip, state signature, damaged checkpoints."""

import collections
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from jaxrl_vision import checkpoint


def _state(n=3):
  return {
    "w": jnp.arange(n, dtype=jnp.float32),
    "key": jax.random.key(7),
    "step": jnp.int32(5),
  }


def _abstract(state):
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
  )


class CheckpointTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp(prefix="ckpt_test_")
    self.manager = checkpoint.make_manager(os.path.join(self.dir, "ckpt"), 3)
    self.addCleanup(self.manager.close)

  def test_round_trip_keeps_values_and_keys(self):
    state = _state()
    checkpoint.save(self.manager, 1, state, {"note": "x"})
    restored = checkpoint.restore_latest(self.manager, _abstract(state))
    self.assertEqual(restored.step, 1)
    self.assertEqual(restored.meta["note"], "x")
    np.testing.assert_array_equal(restored.state["w"], state["w"])
    np.testing.assert_array_equal(
      jax.random.key_data(restored.state["key"]),
      jax.random.key_data(state["key"]),
    )

  def test_empty_directory_restores_nothing(self):
    self.assertIsNone(
      checkpoint.restore_latest(self.manager, _abstract(_state()))
    )

  def test_different_state_shape_is_refused_not_quarantined(self):
    checkpoint.save(self.manager, 1, _state(3), {})
    with self.assertRaisesRegex(
      checkpoint.CheckpointError, r"\['w'\]: float32\[3\]"
    ):
      checkpoint.restore_latest(self.manager, _abstract(_state(4)))
    self.assertEqual(list(self.manager.all_steps()), [1])  # still there

  def test_intact_checkpoint_of_another_tree_structure_is_left_in_place(self):
    # Same leaves (paths, dtypes, shapes), another structure: a NamedTuple
    # that gained a None field, as when Transition gained mc_return.
    old = collections.namedtuple("T", ["x", "y"])
    new = collections.namedtuple("T", ["x", "y", "z"])
    checkpoint.save(self.manager, 1, {"b": old(jnp.ones(3), None)}, {})
    abstract = {"b": new(jax.ShapeDtypeStruct((3,), jnp.float32), None, None)}
    with self.assertRaisesRegex(checkpoint.CheckpointError, "is intact"):
      checkpoint.restore_latest(self.manager, abstract)
    self.assertEqual(list(self.manager.all_steps()), [1])  # still there
    self.assertFalse(os.path.exists(os.path.join(self.dir, "corrupt")))

  def test_changed_byte_is_detected_by_the_seal(self):
    state = _state()
    checkpoint.save(self.manager, 1, state, {})
    checkpoint.save(self.manager, 2, jax.tree.map(lambda x: x, state), {})
    folder = os.path.join(self.dir, "ckpt", "2", "state")
    files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
    target = max(files, key=os.path.getsize)
    with open(target, "r+b") as f:  # same length, one byte flipped
      byte = f.read(1)
      f.seek(0)
      f.write(bytes([byte[0] ^ 0xFF]))
    restored = checkpoint.restore_latest(self.manager, _abstract(state))
    self.assertEqual(restored.step, 1)
    self.assertLen(restored.skipped, 1)
    self.assertIn("does not match its sha256", restored.skipped[0])
    self.assertTrue(os.path.isdir(os.path.join(self.dir, "corrupt")))


if __name__ == "__main__":
  absltest.main()
