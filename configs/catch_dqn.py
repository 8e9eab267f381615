r"""Double DQN from 10x5 Catch pixels: the foundation's end-to-end run.

  python -m experiments.run --config=configs/catch_dqn.py
  python -m experiments.run --config=configs/catch_dqn.py:smoke \
      --config.agent.learning_rate=3e-4 --workdir=/tmp/catch

Default: about 1 minute on a 2-core CPU, greedy eval return near 1.0 (random
play scores about -0.6). `:smoke` finishes in seconds (used by the tests).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "dqn_pixels"
  config.seed = 0
  config.env = dict(
    name="catch",
    num_envs=16,
    params=dict(rows=10, cols=5, pixel_scale=1),
  )
  config.network = dict(
    channels=(16,), kernel_sizes=(3,), strides=(1,), hidden_sizes=(64,)
  )
  config.agent = dict(
    learning_rate=1e-3,
    discount=0.99,
    max_grad_norm=10.0,
    huber_delta=1.0,
    target_update_tau=0.05,
    epsilon_start=1.0,
    epsilon_end=0.05,
    epsilon_decay_steps=500,
    eval_epsilon=0.0,
  )
  config.replay = dict(capacity=10_000, batch_size=64, min_size=256)
  config.train = dict(
    num_iterations=1000,
    unroll_length=4,
    num_updates_per_iteration=2,
    log_every=50,
  )
  config.eval = dict(every=100, num_episodes=100)
  common.add_common(config)
  config.checkpoint.every = 200

  if arg == "smoke":  # CPU seconds; used by tests/integration/
    config.train.num_iterations = 40
    config.train.log_every = 10
    config.eval.every = 20
    config.eval.num_episodes = 20
    config.checkpoint.every = 10
    config.replay.min_size = 64
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; valid variants: smoke")
  return config
