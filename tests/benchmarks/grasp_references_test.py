"""Tests for the grasp reference-policy benchmark's layouts."""

from absl.testing import absltest

from configs import visionary as visionary_config
from experiments.benchmarks import grasp_references


class TaskParamsTest(absltest.TestCase):
  def test_layouts(self):
    config = visionary_config.get_config().task.params
    params = grasp_references.task_params("visionary", 16)
    self.assertEqual(params["image_size"], 16)
    self.assertEqual(params["object_extent"], config.object_extent)
    self.assertEqual(params["num_objects"], config.num_objects)
    sparse = grasp_references.task_params("grasp_default", 16)
    self.assertNotIn("object_extent", sparse)
    self.assertNotIn("object_jitter", sparse)
    self.assertEqual(sparse["num_objects"], config.num_objects)


if __name__ == "__main__":
  absltest.main()
