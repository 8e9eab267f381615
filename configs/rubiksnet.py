r"""RubiksNet-nano learns temporal order on synthetic clips (spec R10).

  python -m experiments.run --config=configs/rubiksnet.py --workdir=/tmp/rn_default
  python -m experiments.run --config=configs/rubiksnet.py:per_frame --workdir=/tmp/rn_per_frame
  python -m experiments.run --config=configs/rubiksnet.py:fixed --workdir=/tmp/rn_fixed
  python -m experiments.run --config=configs/rubiksnet.py:iq --workdir=/tmp/rn_iq
  python -m experiments.run --config=configs/rubiksnet.py:aq --workdir=/tmp/rn_aq
  python -m experiments.run --config=configs/rubiksnet.py:aq125 --workdir=/tmp/rn_aq125
  python -m experiments.run --config=configs/rubiksnet.py:smoke --workdir=/tmp/rn_smoke

Clips (`data.synthetic_video`): 8 frames of 32x32, a square (side 4-8,
colour >= 1/4 from the background in every channel) moving 1-3 px/frame
right, left, down or up on a black background with static noise
(amplitude 0.5); left/up are right/down reversed in time. Evaluation: 512
fixed clips (256 time-reversed pairs, `data.eval_seed`).

Default: nano (width 8) with learned interpolated temporal + spatial shifts,
SGD momentum 0.9, lr 0.1 cosine, batch 32, 600 updates. Variants:
  per_frame  temporal shifts 0 (TSN-like): cannot order frames, <= 50%
  fixed      TSM's fixed temporal shifts (C/8 at +1, C/8 at -1)
  iq         RubiksShift-IQ (integer forward, straight-through gradient)
  aq         RubiksShift-AQ temporal attention, budget B = 0.25
  aq125      the same with B = 0.125
  smoke      4 updates of 8 clips (the tests)
AQ anneals tau 2.0 -> 1e-3 over `train.anneal_steps` = 400 updates, then
trains 200 more at tau = 1e-3, where the soft network equals the hardened
one. `agent.budget_weight` = 1.0: L_budget <= 0.75 while the cross-entropy
falls below 0.01 by ~200 updates, so weight 1 lets the task be learned first
and then pins the soft shifted mass to B (budget loss 0.000 from ~200
updates on); at 1e-3 annealing makes that mass the hardened fraction.

Measured (2 shared CPU cores, seed 0; wall includes compiling, 12-34 s
without a warm cache), final eval:
  default    accuracy 1.000                                     83 s
  per_frame  accuracy 0.270                                     85 s
  fixed      accuracy 1.000                                     69 s
  iq         accuracy 0.996                                     50 s
  aq         accuracy 1.000, hardened 1.000, nonzero shifts 0.250   85 s
  aq125      accuracy 1.000, hardened 1.000, nonzero shifts 0.125   54 s
Seed 1: default 1.000; aq 1.000/1.000/0.250; aq125 1.000/1.000/0.119.
A plain random-colour background (`--config.data.background=random
--config.data.background_noise=0.0`) is not learned: 26% after 1500 Adam
updates at width 16 (the sign of the square/background contrast is random,
so the motion cue is a product of derivatives, not a linear feature).
"""

import ml_collections

from configs import common

VARIANTS = ("smoke", "per_frame", "fixed", "iq", "aq", "aq125")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "rubiksnet_video"
  config.seed = 0
  config.data = dict(
    num_frames=8,
    image_size=32,
    min_size=4,
    max_size=8,
    min_speed=1,
    max_speed=3,
    background="black",
    background_noise=0.5,
    eval_size=512,
    eval_seed=1234,
  )
  config.network = dict(
    tier="nano",
    width=8,
    temporal_shift="learned",
    spatial_shift="learned",
    shift_mode="interpolate",
    temporal_init="uni1",
  )
  config.agent = dict(
    optimizer="sgd",  # or "adam" (then `momentum` is its b1)
    learning_rate=0.1,
    lr_schedule="cosine",
    warmup_steps=20,
    momentum=0.9,  # SGD momentum, or Adam b1
    weight_decay=1e-4,
    shift_lr_mult=0.01,
    attention_lr_mult=1.0,
    grad_norm="per_channel",
    temporal_factor=1.0,  # λ; "auto" (T/H) would be 8/32 = 0.25
    budget=0.25,
    budget_weight=0.0,
  )
  config.train = dict(
    num_iterations=600,
    batch_size=32,
    anneal_steps=400,
    log_every=50,
  )
  config.eval = dict(every=100)
  common.add_common(config)
  config.checkpoint.every = 200

  if arg == "smoke":  # seconds; used by tests/recipes/rubiksnet_video_test.py
    config.data.eval_size = 16
    config.train.num_iterations = 4
    config.train.batch_size = 8
    config.train.anneal_steps = 4
    config.train.log_every = 2
    config.eval.every = 4
    config.agent.warmup_steps = 0
    config.agent.lr_schedule = "constant"
    config.checkpoint.every = 4
  elif arg == "per_frame":
    config.network.temporal_shift = "zero"
  elif arg == "fixed":
    config.network.temporal_shift = "fixed"
  elif arg == "iq":
    config.network.shift_mode = "quantize"
  elif arg in ("aq", "aq125"):
    config.network.temporal_shift = "attention"
    config.agent.budget = 0.25 if arg == "aq" else 0.125
    config.agent.budget_weight = 1.0
  elif arg:
    raise ValueError(
      f"unknown variant {arg!r}; valid variants: {', '.join(VARIANTS)}"
    )
  return config
