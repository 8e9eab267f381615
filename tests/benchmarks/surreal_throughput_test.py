"""The throughput benchmark's knee: the fewest worlds within 90 % of the
best frames/s."""

from absl.testing import absltest

from experiments.benchmarks import surreal_throughput


class KneeTest(absltest.TestCase):
  def test_hand_cases(self):
    rows = [
      {"worlds": 16, "frames_per_s": 100.0},
      {"worlds": 64, "frames_per_s": 300.0},
      {"worlds": 256, "frames_per_s": 460.0},
      {"worlds": 1024, "frames_per_s": 500.0},
    ]
    self.assertEqual(surreal_throughput.knee(rows), 256)  # 460 >= 450
    rows[2]["frames_per_s"] = 440.0
    self.assertEqual(surreal_throughput.knee(rows), 1024)


if __name__ == "__main__":
  absltest.main()
