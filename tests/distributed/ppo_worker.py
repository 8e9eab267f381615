"""Worker: Surreal-PPO's learner iteration on 4 CPU devices vs one device.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    python -m tests.distributed.ppo_worker OUT_DIR

Two learner iterations on one global minibatch of 8 segments: `learn` on one
device, the same agent built with `axis_name` under `data_parallel_update`
(each device 2 segments), and a broken control without the axis (no
`pmean`: each device learns from its own 2 segments only). Writes
OUT_DIR/ppo.npz (every state and metric leaf, per run and iteration) and
prints one RESULT line.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl_vision.agents.ppo import agent as ppo
from jaxrl_vision.distributed import data_parallel
from jaxrl_vision.distributed import mesh as mesh_lib
from jaxrl_vision.networks.policies import Gaussian
from tests.distributed import worker_lib

NUM_DEVICES = 4
B, T, A, D = 8, 8, 3, 5


def segments(key) -> ppo.Segments:
  ks = jax.random.split(key, 4)
  obs = {"proprio": jax.random.normal(ks[0], (B, T, D)) * 2.0 + 1.0}
  starts = jnp.zeros((B, T), bool).at[:, 0].set(True)
  return ppo.Segments(
    obs=obs,
    final_obs={"proprio": jnp.roll(obs["proprio"], -1, axis=1)},
    actions=jax.random.normal(ks[1], (B, T, A)) * 0.3,
    rewards=jax.random.normal(ks[2], (B, T)),
    terminated=jnp.zeros((B, T), bool),
    ends=jnp.zeros((B, T), bool).at[:, 5].set(True),
    starts=starts,
    behaviour=Gaussian(jnp.zeros((B, T, A)), jnp.full((B, T, A), 0.4)),
    carry=(jnp.zeros((B, 0)), jnp.zeros((B, 0))),
  )


def make_agent(axis_name):
  # publish every 2 global minibatches: the second iteration publishes.
  return ppo.make_ppo(
    A,
    lstm_size=0,
    hidden_sizes=(16,),
    horizon=3,
    learning_rate=1e-3,
    publish_every=2 * B,
    axis_name=axis_name,
  )


def main(argv):
  out_dir = argv[1]
  mesh = mesh_lib.make_mesh(NUM_DEVICES, "d")
  single = make_agent(None)
  state0 = single.init(
    jax.random.key(0),
    {"proprio": jnp.zeros((1, D))},
    warm_obs={"proprio": jnp.arange(4.0 * D).reshape(4, D)},
  )
  runs = {
    "single": jax.jit(single.learn),
    "sharded": data_parallel.data_parallel_update(
      make_agent("d").learn, mesh, "d"
    ),
    "no_pmean": data_parallel.data_parallel_update(single.learn, mesh, "d"),
  }
  split = NamedSharding(mesh, P("d"))
  whole = NamedSharding(mesh, P())
  arrays = {}
  for name, learn in runs.items():
    state = state0 if name == "single" else jax.device_put(state0, whole)
    for it in range(2):
      seg = segments(jax.random.key(10 + it))
      if name != "single":
        seg = jax.device_put(seg, split)
      state, metrics = learn(state, seg)
      arrays.update(worker_lib.flatten((state, metrics), f"{name}|{it}|"))
  np.savez(f"{out_dir}/ppo.npz", **arrays)
  worker_lib.emit({"num_devices": len(jax.devices())})


if __name__ == "__main__":
  main(sys.argv)
