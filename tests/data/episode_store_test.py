"""The on-disk dataset format: round trip, and damage reported by name."""

import json
import os
import tempfile

import jax
import numpy as np
from absl.testing import absltest

from jaxrl_vision.data import episode_store
from jaxrl_vision.data import offline


def _episodes(num=5, horizon=3, seed=0):
  rng = np.random.default_rng(seed)
  return offline.Episodes(
    obs={
      "image": rng.integers(0, 256, (num, horizon + 1, 4, 4, 3), np.uint8),
      "height": rng.random((num, horizon + 1), np.float32),
    },
    action=rng.random((num, horizon, 7), np.float32),
    reward=rng.random((num, horizon), np.float32),
    terminated=np.zeros((num, horizon), bool),
    length=np.full((num,), horizon, np.int32),
    success=(np.arange(num) % 2).astype(np.float32),
    policy=np.zeros((num,), np.int32),
  )


class EpisodeStoreTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.dir = os.path.join(tempfile.mkdtemp(), "data")
    self.episodes = _episodes()
    self.manifest = episode_store.write(
      self.dir, self.episodes, {"env": "test"}, episodes_per_shard=2
    )

  def test_round_trip(self):
    loaded, manifest = episode_store.read(self.dir, self.episodes)
    jax.tree.map(np.testing.assert_array_equal, loaded, self.episodes)
    self.assertEqual(manifest["episodes"], 5)
    self.assertEqual(manifest["transitions"], 15)
    self.assertEqual(manifest["success_rate"], 0.4)
    self.assertLen(manifest["shards"], 3)  # 2 + 2 + 1 episodes
    self.assertEqual(manifest["metadata"], {"env": "test"})

  def test_images_stay_uint8_and_each_frame_is_stored_once(self):
    shard = os.path.join(self.dir, "shard-00000.npz")
    with np.load(shard) as data:
      image = data["obs.image"]
    self.assertEqual(image.dtype, np.uint8)
    self.assertEqual(image.shape, (2, 4, 4, 4, 3))  # T+1 frames, not 2T

  def test_truncated_shard_is_reported(self):
    shard = os.path.join(self.dir, "shard-00001.npz")
    with open(shard, "r+b") as f:
      f.truncate(os.path.getsize(shard) - 10)
    with self.assertRaisesRegex(
      episode_store.DatasetError, "shard-00001.*truncated"
    ):
      episode_store.read(self.dir, self.episodes)

  def test_changed_byte_is_reported(self):
    shard = os.path.join(self.dir, "shard-00002.npz")
    with open(shard, "r+b") as f:
      f.seek(os.path.getsize(shard) // 2)
      byte = f.read(1)
      f.seek(-1, os.SEEK_CUR)
      f.write(bytes([byte[0] ^ 1]))
    with self.assertRaisesRegex(
      episode_store.DatasetError, "shard-00002.*sha256"
    ):
      episode_store.read(self.dir, self.episodes)

  def test_unfinished_collection_is_reported(self):
    os.remove(os.path.join(self.dir, "manifest.json"))
    with self.assertRaisesRegex(episode_store.DatasetError, "did not finish"):
      episode_store.read(self.dir, self.episodes)

  def test_missing_shard_and_wrong_format(self):
    os.remove(os.path.join(self.dir, "shard-00000.npz"))
    with self.assertRaisesRegex(episode_store.DatasetError, "missing"):
      episode_store.read(self.dir, self.episodes)
    path = os.path.join(self.dir, "manifest.json")
    manifest = json.load(open(path))
    manifest["format"] = "other/9"
    json.dump(manifest, open(path, "w"))
    with self.assertRaisesRegex(episode_store.DatasetError, "format"):
      episode_store.read(self.dir, self.episodes)

  def test_never_overwrites_a_dataset(self):
    with self.assertRaisesRegex(episode_store.DatasetError, "already"):
      episode_store.write(self.dir, self.episodes, {})


if __name__ == "__main__":
  absltest.main()
