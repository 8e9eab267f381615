r"""Surreal-DDPG on Block Lifting (issue #15): state, Cartesian gripper.

  python -m experiments.run --config=configs/surreal_ddpg_lift.py
  python -m experiments.run --config=configs/surreal_ddpg_lift.py:smoke

The seed's Block Lifting settings (spec surreal.md §1.3.3): n-step 3,
weight decay 1e-4, OU noise with sigma_i linear from 0 to 2.0 over the
worlds, gamma 0.99, Adam 1e-4 for actor and critic, actor gradients
clipped at 1.0, hard target copies every 500 updates, batch 512, sampling
from 3,000 transitions. The replay holds 192K transitions (the reference's
1M does not fit the CPU run's budget of steps). The task, its episode
length and its worlds are Surreal-PPO's (`configs/surreal_suite.py`).
Measured (README): 1,500 iterations, 3 seeds, 0 % success (it reaches
and touches the cube, return 30.5 against the straight descent's 23.3).
"""

import ml_collections

from configs import common
from configs import surreal_suite


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "smoke"):
    raise ValueError(f"unknown variant {arg!r}; valid: smoke")
  task = "lift"
  config = ml_collections.ConfigDict()
  config.experiment = "surreal_ddpg"
  config.seed = 0
  config.num_seeds = 3
  config.env = dict(
    name=task,
    num_worlds=32,
    params=dict(
      obs_mode="state",
      episode_length=surreal_suite.EPISODE_LENGTH[task],
      substeps_per_action=10,
      robot="gripper",
    ),
  )
  config.agent = dict(
    actor_hidden_sizes=(300, 200),
    critic_state_size=400,
    critic_hidden_sizes=(300,),
    layer_norm=False,
    actor_learning_rate=1e-4,
    critic_learning_rate=1e-4,
    actor_grad_clip=1.0,
    weight_decay=1e-4,
    target_update_period=500,
    target_tau=0.0,
  )
  config.train = dict(
    num_iterations=2000,
    stride=10,  # env steps per world per iteration
    n_step=3,
    gamma=0.99,
    max_sigma=2.0,
    updates_per_iteration=20,
    log_every=20,
    seed_batching="vmap",
  )
  # exact: on several devices the shards sample bit for bit what one buffer
  # would (a psum of each batch); False: each device samples its share from
  # its own shard (no communication; stratified, the same per-item rates).
  config.replay = dict(
    capacity=192_000, batch_size=512, min_size=3000, exact=True
  )
  config.eval = dict(every=500, num_episodes=100, references=True)
  common.add_common(config)
  config.checkpoint.every = 500
  config.distributed.cpu_devices = 2

  if arg == "smoke":
    config.num_seeds = 2
    config.env.num_worlds = 8
    config.env.params.episode_length = 10
    config.agent.actor_hidden_sizes = (16,)
    config.agent.critic_state_size = 16
    config.agent.critic_hidden_sizes = (16,)
    config.agent.target_update_period = 4
    config.train.num_iterations = 6
    config.train.stride = 4
    config.train.updates_per_iteration = 2
    config.train.log_every = 2
    config.replay = dict(capacity=320, batch_size=16, min_size=32, exact=True)
    config.eval.every = 6
    config.eval.num_episodes = 8
    config.eval.references = False
    config.checkpoint.every = 2
  return config
