"""Tests for the uniform replay buffer."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.data.replay import uniform


def items(values):
  """A two-leaf item batch whose leaves encode the same ids."""
  values = jnp.asarray(values, jnp.int32)
  obs = jnp.stack([values, -values], axis=-1).astype(jnp.float32)  # [B, 2]
  return {"id": values, "obs": obs}  # id: [B] int32


EXAMPLE = jax.tree.map(lambda x: x[0], items([0]))


class UniformReplayTest(chex.TestCase):
  def test_init(self):
    buffer = uniform.make_uniform_replay(capacity=4, batch_size=2, min_size=1)
    state = buffer.init(EXAMPLE)
    chex.assert_shape(state.data["id"], (4,))
    chex.assert_shape(state.data["obs"], (4, 2))
    self.assertEqual(state.data["obs"].dtype, jnp.float32)
    self.assertEqual(int(state.insert_pos), 0)
    self.assertEqual(int(state.size), 0)
    self.assertFalse(buffer.can_sample(state))

  @chex.variants(with_jit=True, without_jit=True)
  def test_add_wraps_around(self):
    buffer = uniform.make_uniform_replay(capacity=4, batch_size=2, min_size=1)
    add = self.variant(buffer.add)
    state = add(buffer.init(EXAMPLE), items([1, 2, 3]))
    # Slots 0..2 filled; the next write goes to slot 3.
    np.testing.assert_array_equal(state.data["id"], [1, 2, 3, 0])
    self.assertEqual(int(state.insert_pos), 3)
    self.assertEqual(int(state.size), 3)

    state = add(state, items([4, 5, 6]))
    # Slots (3 + [0, 1, 2]) % 4 = [3, 0, 1] get 4, 5, 6; slot 2 keeps 3.
    np.testing.assert_array_equal(state.data["id"], [5, 6, 3, 4])
    np.testing.assert_array_equal(state.data["obs"][:, 1], [-5, -6, -3, -4])
    self.assertEqual(int(state.insert_pos), 2)  # (3 + 3) % 4
    self.assertEqual(int(state.size), 4)  # min(3 + 3, 4)

  def test_can_sample_threshold(self):
    buffer = uniform.make_uniform_replay(capacity=8, batch_size=4, min_size=3)
    add = jax.jit(buffer.add)
    state = add(buffer.init(EXAMPLE), items([1, 2]))
    self.assertFalse(buffer.can_sample(state))  # 2 < 3
    state = add(state, items([3]))
    self.assertTrue(buffer.can_sample(state))  # 3 >= 3
    state = add(state, items([4, 5, 6, 7, 8, 9]))
    self.assertTrue(buffer.can_sample(state))  # full and wrapped

  @chex.variants(with_jit=True, without_jit=True)
  def test_sample_only_returns_stored_items(self):
    buffer = uniform.make_uniform_replay(capacity=8, batch_size=256, min_size=1)
    state = buffer.add(buffer.init(EXAMPLE), items([1, 2, 3]))
    sample = self.variant(buffer.sample)
    for i in range(3):
      batch = sample(state, jax.random.key(i))
      chex.assert_shape(batch["id"], (256,))
      chex.assert_shape(batch["obs"], (256, 2))
      # Never the zero padding in slots 3..7; each of 3 items shows up.
      self.assertSetEqual(set(np.asarray(batch["id"])), {1, 2, 3})
      # Leaves stay paired: one slot index is used for the whole item.
      np.testing.assert_array_equal(batch["obs"][:, 0], batch["id"])
      np.testing.assert_array_equal(batch["obs"][:, 1], -batch["id"])

  def test_sample_is_uniform_and_reproducible(self):
    buffer = uniform.make_uniform_replay(
      capacity=4, batch_size=4000, min_size=1
    )
    state = buffer.add(buffer.init(EXAMPLE), items([1, 2, 3]))
    state = buffer.add(state, items([4, 5, 6]))  # [5, 6, 3, 4]
    sample = jax.jit(buffer.sample)
    batch = sample(state, jax.random.key(0))
    counts = np.bincount(np.asarray(batch["id"]), minlength=7)
    # Items 1 and 2 were overwritten by 5 and 6.
    np.testing.assert_array_equal(counts[:3], [0, 0, 0])
    # Each of 4 items: mean 1000, std sqrt(4000 * 1/4 * 3/4) ~ 27.
    self.assertTrue(np.all(np.abs(counts[3:] - 1000) < 150), msg=str(counts))
    chex.assert_trees_all_equal(batch, sample(state, jax.random.key(0)))
    self.assertFalse(
      np.array_equal(batch["id"], sample(state, jax.random.key(1))["id"])
    )

  @parameterized.named_parameters(
    ("zero_batch", dict(capacity=4, batch_size=0, min_size=1)),
    ("zero_min_size", dict(capacity=4, batch_size=2, min_size=0)),
    ("min_size_over_capacity", dict(capacity=4, batch_size=2, min_size=5)),
  )
  def test_invalid_construction_raises(self, kwargs):
    with self.assertRaises(ValueError):
      uniform.make_uniform_replay(**kwargs)

  def test_adding_more_than_capacity_raises(self):
    buffer = uniform.make_uniform_replay(capacity=4, batch_size=2, min_size=1)
    with self.assertRaises(ValueError):
      buffer.add(buffer.init(EXAMPLE), items([1, 2, 3, 4, 5]))


if __name__ == "__main__":
  absltest.main()
