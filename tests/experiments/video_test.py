"""experiments.video: GIF frames, size, tiles, outcome borders and groups."""

import os
import tempfile

import numpy as np
from absl.testing import absltest
from PIL import Image

from experiments import video

# A few colours, so every GIF frame has an exact palette.
COLOURS = np.array(
  [[0, 0, 0], [255, 255, 255], [200, 30, 30], [30, 90, 200], [250, 200, 0]],
  np.uint8,
)


def random_frames(t, n, h, w, seed=0):
  """[T, N, H, W, 3] uint8; frames differ (a GIF merges equal neighbours)."""
  index = np.random.default_rng(seed).integers(len(COLOURS), size=(t, n, h, w))
  return COLOURS[index]


def read_gif(path):
  """([T, H, W, 3] uint8 frames, (width, height)) of a GIF file."""
  with Image.open(path) as image:
    frames = []
    for i in range(image.n_frames):
      image.seek(i)
      frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames), image.size


class WriteGifTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.dir = tempfile.TemporaryDirectory()
    self.addCleanup(self.dir.cleanup)

  def test_frames_size_and_upscaled_tiles(self):
    frames = random_frames(t=5, n=3, h=8, w=16)
    path = os.path.join(self.dir.name, "sub", "rollouts.gif")
    labels = ["found seed0 ep0: success", "b", "a very long label " * 5]
    video.write_gif(path, frames, labels=labels, fps=4)
    got, (width, height) = read_gif(path)

    self.assertLen(got, 5)
    # default scale 256 // 16 = 16: tiles of 128x256, 3 in one row.
    cell_w = 256 + 2 * video.BORDER
    self.assertEqual(width, video.GAP + 3 * (cell_w + video.GAP))
    grid = video.make_grid(frames, labels=labels)
    self.assertEqual((height, width), grid.frames.shape[1:3])
    self.assertGreater(height, 128 + 2 * video.BORDER)  # label strip above
    for t in range(5):
      for i, (top, left, bottom, right) in enumerate(grid.boxes):
        self.assertEqual((bottom - top, right - left), (128, 256))
        expected = frames[t, i].repeat(16, axis=0).repeat(16, axis=1)
        np.testing.assert_array_equal(got[t, top:bottom, left:right], expected)
    # Few colours: the whole frame, labels included, survives exactly.
    np.testing.assert_array_equal(got, grid.frames)

  def test_outcome_colours_the_border_of_the_last_frame(self):
    frames = random_frames(t=3, n=3, h=4, w=4)
    path = os.path.join(self.dir.name, "outcome.gif")
    video.write_gif(path, frames, outcome=np.array([1, 0, -1]), scale=2)
    got, _ = read_gif(path)
    boxes = video.make_grid(frames, scale=2).boxes
    corner = [got[:, top - 1, left - 1] for top, left, _, _ in boxes]
    success, failure, unknown = (video.OUTCOME_COLOURS[k] for k in (1, 0, -1))
    np.testing.assert_array_equal(corner[0], [unknown, unknown, success])
    np.testing.assert_array_equal(corner[1], [unknown, unknown, failure])
    np.testing.assert_array_equal(corner[2], [unknown] * 3)
    with Image.open(path) as image:  # the last frame is held 1 s longer
      image.seek(2)
      self.assertEqual(image.info["duration"], 1250)

  def test_many_episodes_wrap_into_rows(self):
    frames = random_frames(t=1, n=10, h=4, w=4)
    grid = video.make_grid(frames, scale=1, per_row=4)
    cell = 4 + 2 * video.BORDER + video.GAP
    self.assertEqual(
      grid.frames.shape, (1, video.GAP + 3 * cell, 4 * cell + 4, 3)
    )
    # Episode 5 is the second tile of the second row.
    top, left, _, _ = grid.boxes[5]
    self.assertEqual(
      (top, left),
      (video.GAP + cell + video.BORDER, video.GAP + cell + video.BORDER),
    )

  def test_bad_input(self):
    frames = random_frames(t=2, n=2, h=4, w=4)
    with self.assertRaisesRegex(ValueError, "uint8"):
      video.make_grid(frames.astype(np.float32))
    with self.assertRaisesRegex(ValueError, "1 labels for 2 episodes"):
      video.make_grid(frames, labels=["x"])
    with self.assertRaisesRegex(ValueError, "outcome has shape"):
      video.make_grid(frames, outcome=np.zeros(3))
    with self.assertRaisesRegex(ValueError, "outcome values"):
      video.make_grid(frames, outcome=np.array([2, 0]))
    with self.assertRaisesRegex(ValueError, "outcome values"):
      video.make_grid(frames, outcome=np.array([0.5, 0]))


class StackGroupsTest(absltest.TestCase):
  def test_groups_side_by_side_shorter_one_holds_its_last_frame(self):
    found = random_frames(t=3, n=2, h=4, w=4, seed=1)
    baseline = random_frames(t=2, n=1, h=4, w=4, seed=2)
    stacked = video.stack_groups(
      {"found": found, "baseline": baseline},
      labels={"found": ["s0", "s1"]},
      outcome={"baseline": np.array([0])},
    )
    self.assertEqual(stacked.frames.shape, (3, 3, 4, 4, 3))
    self.assertEqual(stacked.labels, ["found s0", "found s1", "baseline ep0"])
    np.testing.assert_array_equal(stacked.frames[:, :2], found)
    np.testing.assert_array_equal(stacked.frames[:2, 2], baseline[:, 0])
    np.testing.assert_array_equal(stacked.frames[2, 2], baseline[1, 0])
    # Baseline's [N] outcome is known from its last frame on; found's never.
    np.testing.assert_array_equal(
      stacked.outcome, [[-1, -1, -1], [-1, -1, 0], [-1, -1, 0]]
    )
    video.make_grid(
      stacked.frames, labels=stacked.labels, outcome=stacked.outcome
    )

  def test_different_image_sizes_are_refused(self):
    with self.assertRaisesRegex(ValueError, "differ"):
      video.stack_groups(
        {"a": random_frames(1, 1, 4, 4), "b": random_frames(1, 1, 8, 4)}
      )


if __name__ == "__main__":
  absltest.main()
