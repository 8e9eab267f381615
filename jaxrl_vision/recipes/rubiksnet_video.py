"""Supervised RubiksNet on the synthetic temporal-order clips (spec R10).

The CPU learning check of RubiksNet: `networks.rubiksnet` (nano tier) learns
to tell {right, left, down, up} motion in `data.synthetic_video` clips,
where left is right reversed in time. One iteration is one update on a
fresh batch drawn from the data-stream key in the state (infinite data):

  loss = CE(logits, labels) + budget_weight · L_budget      (L_budget: AQ)

with L_budget Eq. 6.8 (`ops.attention_shift.budget_loss`) over the AQ
attention weights at the step's temperature τ(step), annealed
exponentially 2.0 → 1e-3 over `train.anneal_steps` updates and then held
(`temperature_schedule`). The optimizer is the released RubiksNet policy
(`optim.shift_grad_norm.make_rubiksnet_optimizer`): shift gradients
normalised, shift lr × `shift_lr_mult`, no decay on shifts/BN/attention;
the base is SGD with momentum or Adam.

Evaluation is on one fixed set of `data.eval_size` clips drawn from
`data.eval_seed` (never from the training stream), built of time-reversed
pairs, so a per-frame model scores at most 50%:
  eval/accuracy                 soft network (AQ at the current τ)
  eval/loss                     its mean cross-entropy
  eval/accuracy_hard            AQ: argmax-hardened integer temporal shifts
  eval/nonzero_shift_fraction   AQ: fraction of channels shifting after
                                hardening (mean over layers, Eq. 6.8)
  eval/shifted_mass             AQ: the soft statistic the budget constrains
BatchNorm uses its running statistics at evaluation.
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxrl_vision import recipes
from jaxrl_vision import train
from jaxrl_vision import types
from jaxrl_vision import validation as v
from jaxrl_vision.data import synthetic_video
from jaxrl_vision.networks import rubiksnet
from jaxrl_vision.ops import attention_shift as aq
from jaxrl_vision.optim import shift_grad_norm

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")
GRAD_NORMS = ("per_channel", "thesis", "none")
# The evaluation set goes through the network in one forward pass (one
# small compile); this bounds its activation memory.
MAX_EVAL_SIZE = 4096


class ClassifierState(NamedTuple):
  params: types.Params  # network parameters
  batch_stats: Any  # BatchNorm running means and variances
  opt_state: optax.OptState
  step: jax.Array  # () int32, updates so far (drives τ and the lr schedule)


def _data_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  d = config.data
  return dict(
    num_frames=d.num_frames,
    image_size=d.image_size,
    min_size=d.min_size,
    max_size=d.max_size,
    min_speed=d.min_speed,
    max_speed=d.max_speed,
    background=d.background,
    background_noise=d.background_noise,
  )


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  if num_devices != 1:
    raise v.ConfigError(
      "distributed.num_devices",
      num_devices,
      "rubiksnet_video trains on one device for now; set it to 1",
    )
  _check_keys(config)
  # data
  v.positive_int(config, "data.num_frames")
  v.positive_int(config, "data.image_size")
  for key in ("min_size", "max_size", "min_speed", "max_speed"):
    v.positive_int(config, f"data.{key}")
  v.one_of(config, "data.background", synthetic_video.BACKGROUNDS)
  v.number_in(config, "data.background_noise", 0, 1)
  d = config.data
  if d.num_frames < 2:
    raise v.ConfigError("data.num_frames", d.num_frames, "must be >= 2")
  for low, high in (("min_size", "max_size"), ("min_speed", "max_speed")):
    if d[low] > d[high]:
      raise v.ConfigError(
        f"data.{low}", d[low], f"must be <= data.{high} ({d[high]})"
      )
  path = d.max_size + d.max_speed * (d.num_frames - 1)
  if path > d.image_size:
    raise v.ConfigError(
      "data.max_speed",
      d.max_speed,
      f"the square leaves the frame: max_size + max_speed * (num_frames - "
      f"1) = {path} > image_size {d.image_size}",
    )
  eval_size = v.multiple_of(
    config, "data.eval_size", 4, "time-reversed pairs, balanced over axes"
  )
  if eval_size > MAX_EVAL_SIZE:
    raise v.ConfigError(
      "data.eval_size", eval_size, f"must be <= {MAX_EVAL_SIZE}"
    )
  if not isinstance(config.data.eval_seed, int) or isinstance(
    config.data.eval_seed, bool
  ):
    raise v.ConfigError("data.eval_seed", config.data.eval_seed, "an integer")
  # network
  v.one_of(config, "network.tier", rubiksnet.TIERS)
  v.positive_int(config, "network.width")
  v.one_of(config, "network.temporal_shift", rubiksnet.TEMPORAL_SHIFTS)
  v.one_of(config, "network.spatial_shift", rubiksnet.SPATIAL_SHIFTS)
  v.one_of(config, "network.shift_mode", rubiksnet.SHIFT_MODES)
  try:
    rubiksnet.parse_temporal_init(config.network.temporal_init)
  except ValueError as e:
    raise v.ConfigError(
      "network.temporal_init", config.network.temporal_init, str(e)
    ) from e
  # agent
  a = "agent."
  v.one_of(config, a + "optimizer", OPTIMIZERS)
  v.number_in(config, a + "learning_rate", 0, 10, low_open=True)
  v.one_of(config, a + "lr_schedule", LR_SCHEDULES)
  v.non_negative_int(config, a + "warmup_steps")
  v.number_in(config, a + "momentum", 0, 1, high_open=True)
  v.number_in(config, a + "weight_decay", 0, 1)
  v.number_in(config, a + "shift_lr_mult", 0, 1e3)
  v.number_in(config, a + "attention_lr_mult", 0, 1e3)
  v.one_of(config, a + "grad_norm", GRAD_NORMS)
  v.number_in(config, a + "temporal_factor", -1e3, 1e3)
  if config.agent.grad_norm == "thesis" and config.agent.temporal_factor < 0:
    raise v.ConfigError(
      a + "temporal_factor",
      config.agent.temporal_factor,
      "the thesis variant needs λ >= 0 (λ < 0 is per_channel's temporal-only)",
    )
  v.number_in(config, a + "budget", 0, 1, low_open=True, high_open=True)
  v.number_in(config, a + "budget_weight", 0, 1e3)
  # train / eval
  v.positive_int(config, "train.num_iterations")
  v.multiple_of(
    config, "train.batch_size", synthetic_video.NUM_CLASSES, "balanced classes"
  )
  v.positive_int(config, "train.anneal_steps")
  v.positive_int(config, "train.log_every")
  v.positive_int(config, "eval.every")
  if config.agent.warmup_steps >= config.train.num_iterations:
    raise v.ConfigError(
      a + "warmup_steps",
      config.agent.warmup_steps,
      f"must be < train.num_iterations ({config.train.num_iterations})",
    )


# Every key of every section this recipe reads; anything else is a typo.
_KEYS = {
  "data": (
    "num_frames",
    "image_size",
    "min_size",
    "max_size",
    "min_speed",
    "max_speed",
    "background",
    "background_noise",
    "eval_size",
    "eval_seed",
  ),
  "network": (
    "tier",
    "width",
    "temporal_shift",
    "spatial_shift",
    "shift_mode",
    "temporal_init",
  ),
  "agent": (
    "optimizer",
    "learning_rate",
    "lr_schedule",
    "warmup_steps",
    "momentum",
    "weight_decay",
    "shift_lr_mult",
    "attention_lr_mult",
    "grad_norm",
    "temporal_factor",
    "budget",
    "budget_weight",
  ),
  "train": ("num_iterations", "batch_size", "anneal_steps", "log_every"),
  "eval": ("every",),
}


# Sections of configs/common.py, checked by experiments/run.py.
_COMMON = ("experiment", "seed", "checkpoint", "distributed", "run")


def _check_keys(config: ml_collections.ConfigDict) -> None:
  extra = sorted(set(config.keys()) - set(_KEYS) - set(_COMMON))
  if extra:
    raise v.ConfigError(
      extra[0],
      config[extra[0]],
      f"unknown section; valid: {', '.join(sorted((*_KEYS, *_COMMON)))}",
    )
  for section, keys in _KEYS.items():
    if section not in config:
      raise v.ConfigError(section, None, f"missing section; keys: {keys}")
    node = config[section]
    extra = sorted(set(node.keys()) - set(keys))
    if extra:
      raise v.ConfigError(
        f"{section}.{extra[0]}",
        node[extra[0]],
        f"unknown key; valid keys: {', '.join(keys)}",
      )
    missing = sorted(set(keys) - set(node.keys()))
    if missing:
      raise v.ConfigError(f"{section}.{missing[0]}", None, "missing key")


def make_network(config: ml_collections.ConfigDict) -> types.Network:
  n = config.network
  return rubiksnet.make_rubiksnet(
    n.tier,
    synthetic_video.NUM_CLASSES,
    width=n.width,
    temporal_shift=n.temporal_shift,
    spatial_shift=n.spatial_shift,
    shift_mode=n.shift_mode,
    temporal_init=n.temporal_init,
  )


def make_learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  a = config.agent
  if a.lr_schedule == "constant":
    return optax.schedules.join_schedules(
      [
        optax.linear_schedule(0.0, a.learning_rate, max(a.warmup_steps, 1)),
        optax.constant_schedule(a.learning_rate),
      ],
      [a.warmup_steps],
    )
  return optax.warmup_cosine_decay_schedule(
    0.0,
    a.learning_rate,
    a.warmup_steps,
    config.train.num_iterations,
    end_value=0.0,
  )


def make_optimizer(
  config: ml_collections.ConfigDict,
) -> optax.GradientTransformation:
  """The released RubiksNet policy over SGD or Adam; `agent.momentum` is
  SGD's momentum or Adam's b1."""
  a = config.agent
  base = None
  if a.optimizer == "adam":

    def base(lr):
      return optax.adam(lr, b1=a.momentum)

  return shift_grad_norm.make_rubiksnet_optimizer(
    make_learning_rate(config),
    momentum=a.momentum,
    weight_decay=a.weight_decay,
    shift_lr_mult=a.shift_lr_mult,
    attention_lr_mult=a.attention_lr_mult,
    grad_norm=None if a.grad_norm == "none" else a.grad_norm,
    temporal_factor=a.temporal_factor,
    base=base,
  )


def _accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def make_train(
  config: ml_collections.ConfigDict,
  axis_name: str | None = None,
  num_devices: int = 1,
) -> train.Trainer:
  del axis_name, num_devices  # one device (see validate)
  network = make_network(config)
  optimizer = make_optimizer(config)
  data_kwargs = _data_kwargs(config)
  batch_size = config.train.batch_size
  attention = config.network.temporal_shift == "attention"
  budget = config.agent.budget
  budget_weight = config.agent.budget_weight
  temperature = aq.temperature_schedule(steps=config.train.anneal_steps)
  eval_key = jax.random.key(config.data.eval_seed)
  eval_size = config.data.eval_size

  def sample(key):
    clips, labels = synthetic_video.sample_batch(key, batch_size, **data_kwargs)
    # Materialise the clips: otherwise XLA:CPU may fuse their rendering
    # into the network's first consumers.
    return jax.lax.optimization_barrier((clips, labels))

  def init(key: jax.Array) -> train.TrainState:
    params_key, example_key, data_key = jax.random.split(key, 3)
    clips, _ = sample(example_key)
    variables = network.init(params_key, clips[:1])
    params = variables["params"]
    agent = ClassifierState(
      params=params,
      batch_stats=variables["batch_stats"],
      opt_state=optimizer.init(params),
      step=jnp.zeros((), jnp.int32),
    )
    zero = jnp.zeros((), jnp.float32)  # no worlds, replay or episodes
    return train.TrainState(
      agent=agent,
      env=zero,
      buffer=zero,
      episode_return=zero,
      key=data_key,
      iteration=jnp.zeros((), jnp.int32),
    )

  def loss_fn(params, batch_stats, clips, labels, tau):
    logits, updates = network.apply(
      {"params": params, "batch_stats": batch_stats},
      clips,
      train=True,
      temperature=tau,
      mutable=["batch_stats"],
    )  # [B, classes]
    ce = jnp.mean(
      optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    )
    metrics = {"ce": ce, "accuracy": _accuracy(logits, labels)}
    loss = ce
    if attention:
      weights = rubiksnet.attention_weights(params, tau)
      budget_loss = aq.budget_loss(weights, budget)
      loss = loss + budget_weight * budget_loss
      metrics.update(
        budget_loss=budget_loss,
        shifted_mass=jnp.mean(jnp.stack([aq.shifted_mass(w) for w in weights])),
        temperature=jnp.asarray(tau, jnp.float32),
      )
    metrics["loss"] = loss
    return loss, (updates["batch_stats"], metrics)

  def step(state: train.TrainState) -> tuple[train.TrainState, types.Metrics]:
    key, batch_key = jax.random.split(state.key)
    clips, labels = sample(batch_key)  # [B, T, H, W, 3] uint8, [B]
    agent = state.agent
    tau = temperature(agent.step)
    grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(
      agent.params, agent.batch_stats, clips, labels, tau
    )
    updates, opt_state = optimizer.update(grads, agent.opt_state, agent.params)
    agent = ClassifierState(
      params=optax.apply_updates(agent.params, updates),
      batch_stats=batch_stats,
      opt_state=opt_state,
      step=agent.step + 1,
    )
    metrics = {f"sum/train/{k}": m for k, m in metrics.items()}
    metrics["count/train"] = jnp.float32(1)
    new_state = state._replace(
      agent=agent, key=key, iteration=state.iteration + 1
    )
    return new_state, metrics

  def evaluate(agent: ClassifierState, key: jax.Array) -> types.Metrics:
    del key  # the evaluation set is fixed (data.eval_seed)
    clips, labels = synthetic_video.sample_batch(
      eval_key, eval_size, paired=True, **data_kwargs
    )
    variables = {"params": agent.params, "batch_stats": agent.batch_stats}
    tau = temperature(agent.step)

    def logits_of(hard):  # one forward over the whole set: [eval_size, 4]
      return network.apply(
        variables, clips, temperature=tau, hard_attention=hard
      )

    logits = logits_of(False)
    metrics = {
      "eval/accuracy": _accuracy(logits, labels),
      "eval/loss": jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      ),
    }
    if attention:
      weights = rubiksnet.attention_weights(agent.params, tau)
      metrics.update(
        {
          "eval/accuracy_hard": _accuracy(logits_of(True), labels),
          "eval/nonzero_shift_fraction": aq.nonzero_shift_fraction(weights),
          "eval/shifted_mass": jnp.mean(
            jnp.stack([aq.shifted_mass(w) for w in weights])
          ),
          "eval/temperature": tau,
        }
      )
    return metrics

  return train.Trainer(
    init=init,
    step=step,
    evaluate=evaluate,
    num_iterations=config.train.num_iterations,
    env_steps_per_iteration=batch_size,  # clips seen
    # XLA:CPU runs this step faster from the host than inside a scan
    # (nano, batch 32: 0.14 s vs 0.19 s per step, and a shorter compile).
    host_loop=jax.default_backend() == "cpu",
  )


def make_recipe() -> recipes.Recipe:
  return recipes.Recipe(
    validate=validate,
    make_train=make_train,
    main_metrics=(
      "train/loss",
      "train/accuracy",
      "eval/accuracy",
      "eval/accuracy_hard",
      "eval/nonzero_shift_fraction",
    ),
  )
