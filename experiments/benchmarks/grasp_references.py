r"""Success of the grasp task's reference policies in a bin layout.

  python -m experiments.benchmarks.grasp_references
  python -m experiments.benchmarks.grasp_references --layout=grasp_default

What a learner's success on `grasp` should be read against: the noiseless
scripted expert (privileged state, full skill), `grasp.straight_descent_action`
(height and gripper flag only: descends, closes, rises; no x-y skill) and
the uniformly random policy, each over `num_episodes` fresh episodes in
per-world randomised models. `--layout=visionary` (default) is the task of
`configs/visionary.py`; `grasp_default` is the same without its
`object_extent` / `object_jitter`, i.e. `grasp`'s own sparser layout.

The last line is one JSON object with each policy's success rate, the
number of episodes and the task parameters.
"""

import json
from collections.abc import Callable

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging

from configs import visionary as visionary_config
from jaxrl_vision.data import offline
from jaxrl_vision.envs.manipulation import common
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import scripted

_LAYOUT = flags.DEFINE_enum(
  "layout", "visionary", ["visionary", "grasp_default"], "Bin layout."
)
_EPISODES = flags.DEFINE_integer("num_episodes", 200, "Episodes per policy.")
IMAGE_SIZE = 16  # the camera's side: none of the policies looks at it
SEED = 0


def task_params(layout: str, image_size: int) -> dict:
  """The grasp keywords of `configs/visionary.py`, for `layout`."""
  params = dict(visionary_config.get_config().task.params)
  params["image_size"] = image_size
  if layout == "grasp_default":
    del params["object_extent"], params["object_jitter"]
  return params


def ignore_episode_key(policy: Callable[..., jax.Array]) -> offline.Policy:
  """`policy(model, state, key)` as an `offline.Policy`: these references
  have no per-episode latent, so the episode key is dropped."""

  def per_step(model, state, key, episode_key):
    del episode_key
    return policy(model, state, key)

  return per_step


def reference_policies(
  task: common.ManipulationTask,
) -> dict[str, offline.Policy]:
  """`scripted.reference_policies` as `offline.Policy` functions."""
  references = scripted.reference_policies(task, grasp.straight_descent_action)
  return {name: ignore_episode_key(p) for name, p in references.items()}


def main(argv):
  del argv
  if _EPISODES.value < 1:
    raise app.UsageError("num_episodes must be >= 1")
  params = task_params(_LAYOUT.value, IMAGE_SIZE)
  task = grasp.make_grasp_task(**params)
  model_key, key = jax.random.split(jax.random.key(SEED))
  models, axes = task.randomize_model(
    task.env.init_model(), model_key, _EPISODES.value
  )
  policies = reference_policies(task)

  def success_rate(policy) -> float:
    collect = offline.make_collector(task.env, [policy], [1.0])
    # One episode per randomised world; the same worlds and keys for all.
    episodes = jax.jit(
      jax.vmap(lambda m, k: collect(m, k, 1), in_axes=(axes, 0))
    )(models, jax.random.split(key, _EPISODES.value))
    return round(float(np.mean(episodes.success)), 4)

  result = {}
  for name, policy in policies.items():
    result[name] = success_rate(policy)
    logging.info("%s: %.3f", name, result[name])
  print(
    json.dumps(dict(result, num_episodes=_EPISODES.value, task_params=params))
  )


if __name__ == "__main__":
  app.run(main)
