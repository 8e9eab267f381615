"""QT-Opt (Kalashnikov et al., 2018) as an `Agent` of pure functions.

Spec B1.3 / B1.7: Q(s, a) = sigmoid(logit) trained with the log loss against
the clipped double-Q target

  a' = CEM argmax_a Q_polyak(s', a)
  V(s') = min(Q_polyak(s', a'), Q_lagged(s', a'))
  target = clip(r + gamma * discount * V(s'), 0, 1)

where Q_polyak is a Polyak average of the online params and Q_lagged a copy
refreshed every `lag_every` updates. Actions are CEM maximisers of the online
Q; the image trunk runs once per example and its features are tiled over the
CEM samples, so only the action-dependent head is evaluated per sample.

The Q-function is a `QFunction`-like NamedTuple with four pure functions:
  init(key, obs, action) -> params
  trunk(params, image [B, H, W, 3] uint8) -> features (leaves [B, ...])
  head(params, features, state [B, S], action [B, 7]) -> logits [B]
  apply(params, obs, action) -> logits [B]
with obs = {"image", and the state leaves of `visionary.STATE_KEYS`}.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl_vision import types
from jaxrl_vision.agents.qtopt import cem
from jaxrl_vision.agents.qtopt import losses
from jaxrl_vision.data import augment
from jaxrl_vision.networks import visionary


class QtOptState(NamedTuple):
  params: types.Params  # online params θ
  polyak_params: types.Params  # θ̄_1: Polyak average of θ
  lagged_params: types.Params  # θ̄_2: θ copied every `lag_every` updates
  opt_state: optax.OptState
  key: jax.Array  # learner randomness (target CEM)
  step: jax.Array  # () int32, learner updates taken


TARGETS = ("bellman", "bellman_or_return", "return")
proprio_state = visionary.state_vector  # obs -> [B, S] float32


def _cem_on_features(
  q_function: Any,
  params: types.Params,
  features: Any,
  state: jax.Array,
  key: jax.Array,
  *,
  iterations: int,
  num_samples: int,
  num_elites: int,
) -> tuple[jax.Array, jax.Array]:
  """CEM over the head, per example; features leaves [B, ...], state [B, S]."""

  def one_example(features, state, key):
    # Tile the example's trunk features over the samples: the trunk has run
    # once for this image, only the head sees the N candidate actions.
    tiled = jax.tree.map(
      lambda x: jnp.broadcast_to(x, (num_samples,) + x.shape), features
    )
    tiled_state = jnp.broadcast_to(state, (num_samples,) + state.shape)

    def score_fn(continuous, discrete):
      action = cem.decode_action(continuous, discrete)  # [N, 7]
      return q_function.head(params, tiled, tiled_state, action)  # [N]

    continuous, discrete, logit = cem.cem_maximize(
      score_fn,
      key,
      num_continuous=cem.NUM_CONTINUOUS,
      num_discrete=cem.NUM_DISCRETE,
      iterations=iterations,
      num_samples=num_samples,
      num_elites=num_elites,
    )
    return cem.decode_action(continuous, discrete), logit

  batch_size = state.shape[0]
  keys = jax.random.split(key, batch_size)
  return jax.vmap(one_example)(features, state, keys)


def select_action(
  q_function: Any,
  params: types.Params,
  obs: dict[str, jax.Array],
  key: jax.Array,
  *,
  iterations: int = 2,
  num_samples: int = 64,
  num_elites: int = 6,
) -> tuple[jax.Array, jax.Array]:
  """CEM argmax of Q(s, .) for every example of a batch.

  Args:
    q_function: the Q-function (init, trunk, head, apply).
    params: its params.
    obs: a batch of observations, leaves [B, ...].
    key: PRNG key.
    iterations: CEM iterations.
    num_samples: CEM samples per iteration and example.
    num_elites: CEM elites.

  Returns:
    (action [B, 7] float32, logit [B] float32 of Q at that action).
  """
  features = q_function.trunk(params, obs["image"])
  return _cem_on_features(
    q_function,
    params,
    features,
    proprio_state(obs),
    key,
    iterations=iterations,
    num_samples=num_samples,
    num_elites=num_elites,
  )


def make_cem_policy(
  q_function: Any,
  *,
  iterations: int = 2,
  num_samples: int = 64,
  num_elites: int = 6,
) -> Callable[..., tuple[jax.Array, jax.Array]]:
  """The greedy CEM policy: policy(params, obs, key) -> (action, logit).

  For evaluation and latency benchmarks; see `select_action` for shapes.
  """

  def policy(params, obs, key):
    return select_action(
      q_function,
      params,
      obs,
      key,
      iterations=iterations,
      num_samples=num_samples,
      num_elites=num_elites,
    )

  return policy


def random_actions(key: jax.Array, num: int) -> jax.Array:
  """[num, 7] uniformly random actions in the CEM's search space."""
  continuous_key, discrete_key = jax.random.split(key)
  continuous = jax.random.uniform(
    continuous_key, (num, cem.NUM_CONTINUOUS), minval=-1.0, maxval=1.0
  )
  discrete = jax.random.randint(discrete_key, (num,), 0, cem.NUM_DISCRETE)
  return cem.decode_action(continuous, discrete)


def make_qtopt(
  q_function: Any,
  *,
  optimizer: optax.GradientTransformation,
  gamma: float = 0.9,
  polyak_decay: float = 0.9999,
  lag_every: int = 6000,
  l2_scale: float = 9e-5,
  is_arch_param: Callable[[tuple[str, ...]], bool] = lambda path: False,
  cem_iterations: int = 2,
  cem_samples: int = 64,
  cem_elites: int = 6,
  target_cem_iterations: int | None = None,
  target_cem_samples: int | None = None,
  target_cem_elites: int | None = None,
  epsilon: float = 0.0,
  target: str = "bellman",
  conservative_weight: float = 0.0,
  conservative_samples: int = 8,
  image_shift: int = 0,
  arch_batch_size: int = 0,
  axis_name: str | None = None,
) -> types.Agent:
  """Builds QT-Opt with a clipped double-Q target (spec B1.3, B1.7).

  Args:
    q_function: the Q-function (init, trunk, head, apply); see module doc.
    optimizer: e.g. the paper's optax.sgd(0.0044, momentum=0.958) (B1.5).
    gamma: discount factor.
    polyak_decay: decay of the Polyak average θ̄_1.
    lag_every: updates between refreshes of the lagged copy θ̄_2.
    l2_scale: slim-style L2 coefficient on kernels (scale * sum w^2 / 2).
    is_arch_param: path predicate for params excluded from L2.
    cem_iterations: acting CEM iterations.
    cem_samples: acting CEM samples.
    cem_elites: acting CEM elites.
    target_cem_iterations: target CEM iterations (None: as acting).
    target_cem_samples: target CEM samples (None: as acting).
    target_cem_elites: target CEM elites (None: as acting).
    epsilon: probability of a uniformly random action when acting with
      `deterministic=False`.
    target: "bellman" (the paper's clipped double-Q target); "bellman_or_return"
      (raised to the transition's Monte-Carlo return,
      `losses.lower_bounded_target`); or "return" (the Monte-Carlo return
      alone: Q of the data's policy, no target networks or target CEM).
      The last two need batches with `mc_return` and are not in the paper.
    conservative_weight: weight of `losses.conservative_penalty` (CQL)
      in the loss; 0 (the paper) turns it off.
    conservative_samples: uniform actions per example for that penalty.
    image_shift: DrQ random-shift augmentation of the learner's images
      (`augment.random_shift`, +-image_shift pixels, independently for s
      and s' and per example); 0 (the paper) turns it off. Acting never
      augments.
    arch_batch_size: 0 (the paper): one loss over the batch trains every
      parameter. n > 0: the batch's last n examples (held-out episodes,
      `train.make_offline_train(holdout_batch_size=n)`) give the
      architecture parameters' (`is_arch_param`, all in the head)
      gradient, from their log loss alone (no CQL term), and the others
      the weights' (a first-order DARTS split: on a small dataset the
      training loss rewards the ops that fit it best, not those that
      generalise).
    axis_name: when set, gradients and metrics are averaged over that mapped
      axis, so every device applies the same update.

  Returns:
    An `Agent` over `QtOptState`:
      init(key, obs, action) -> state        obs, action: an example batch
      act(state, obs, key, deterministic=False) -> (action [B, 7], info)
        info: "q" [B] Q of the returned action, "explored" [B] bool
      update(state, batch: Transition) -> (state, metrics)
  """
  if target not in TARGETS:
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
  if image_shift < 0:
    raise ValueError(f"image_shift must be >= 0, got {image_shift}")
  if arch_batch_size < 0:
    raise ValueError(f"arch_batch_size must be >= 0, got {arch_batch_size}")
  acting_cem = dict(
    iterations=cem_iterations, num_samples=cem_samples, num_elites=cem_elites
  )

  def or_acting(value, acting):
    return acting if value is None else value

  target_cem = dict(
    iterations=or_acting(target_cem_iterations, cem_iterations),
    num_samples=or_acting(target_cem_samples, cem_samples),
    num_elites=or_acting(target_cem_elites, cem_elites),
  )

  def init(key: jax.Array, obs, action: jax.Array) -> QtOptState:
    key, params_key = jax.random.split(key)
    params = q_function.init(params_key, obs, action)
    return QtOptState(
      params=params,
      polyak_params=params,
      lagged_params=params,
      opt_state=optimizer.init(params),
      key=key,
      step=jnp.zeros((), jnp.int32),
    )

  def act(state: QtOptState, obs, key: jax.Array, deterministic=False):
    cem_key, explore_key, random_key = jax.random.split(key, 3)
    features = q_function.trunk(state.params, obs["image"])
    proprio = proprio_state(obs)
    action, logit = _cem_on_features(
      q_function, state.params, features, proprio, cem_key, **acting_cem
    )
    explored = jnp.zeros(logit.shape, bool)
    if epsilon > 0.0 and not deterministic:
      explored = jax.random.uniform(explore_key, logit.shape) < epsilon
      action = jnp.where(
        explored[:, None], random_actions(random_key, logit.shape[0]), action
      )
      # Q of the action actually returned; the trunk features are reused.
      logit = jnp.where(
        explored,
        q_function.head(state.params, features, proprio, action),
        logit,
      )
    return action, {"q": jax.nn.sigmoid(logit), "explored": explored}

  def next_value(polyak_params, lagged_params, obs_t, key):
    action_t, logit_polyak = select_action(
      q_function, polyak_params, obs_t, key, **target_cem
    )
    logit_lagged = q_function.apply(lagged_params, obs_t, action_t)
    v_t = jnp.minimum(
      jax.nn.sigmoid(logit_polyak), jax.nn.sigmoid(logit_lagged)
    )  # [B]
    return jax.lax.stop_gradient(v_t)

  def targets(batch: types.Transition, v_t):
    """[B] the log loss's labels: the configured `target`."""
    bellman = jax.vmap(losses.qtopt_target, in_axes=(0, 0, 0, None))(
      batch.reward_t.astype(jnp.float32),
      batch.discount_t.astype(jnp.float32),
      v_t,
      gamma,
    )
    if target == "bellman":
      return bellman
    if batch.mc_return is None:
      raise ValueError(
        f"target={target!r} needs batches with mc_return (an offline "
        "sampler made with gamma)"
      )
    mc_return = batch.mc_return.astype(jnp.float32)
    if target == "return":
      return jnp.clip(mc_return, 0.0, 1.0)
    return jax.vmap(losses.lower_bounded_target)(bellman, mc_return)

  def loss_fn(params, batch: types.Transition, v_t, key, features=None):
    # The trunk runs once; the head also scores sampled actions for CQL.
    if features is None:
      features = q_function.trunk(params, batch.obs_tm1["image"])
    state_tm1 = proprio_state(batch.obs_tm1)
    logit_tm1 = q_function.head(
      params, features, state_tm1, batch.action_tm1
    )  # [B]
    y = targets(batch, v_t)
    log_loss = jnp.mean(jax.vmap(losses.log_loss)(logit_tm1, y))
    l2 = losses.l2_penalty(params, l2_scale, is_arch_param)
    loss, extra = log_loss + l2, {}
    if conservative_weight > 0:
      batch_size = logit_tm1.shape[0]
      sampled = random_actions(key, conservative_samples * batch_size)
      logits = jax.vmap(
        lambda a: q_function.head(params, features, state_tm1, a)
      )(sampled.reshape(conservative_samples, batch_size, -1))  # [K, B]
      cql = jnp.mean(
        jax.vmap(losses.conservative_penalty)(
          jax.nn.sigmoid(logit_tm1), jax.nn.sigmoid(logits.T)
        )
      )
      extra = {"conservative": cql}
      loss = loss + conservative_weight * cql
    return loss, {
      **extra,
      "log_loss": log_loss,
      "l2": l2,
      "q_mean": jnp.mean(jax.nn.sigmoid(logit_tm1)),
      "target_mean": jnp.mean(y),
      "v_next_mean": jnp.mean(v_t),
    }

  def frozen(params, arch: bool):
    """`params` with the architecture's (arch) or the weights' leaves out
    of the gradient."""
    return jax.tree_util.tree_map_with_path(
      lambda path, x: (
        jax.lax.stop_gradient(x) if is_arch_param(path) == arch else x
      ),
      params,
    )

  def split_loss_fn(params, batch: types.Transition, v_t, key):
    """The weights' loss on the batch's first examples plus the
    architecture's held-out log loss on its last `arch_batch_size`; each
    gradient reaches only its own parameters. The trunk runs once: the
    architecture parameters live in the head (`networks.visionary`), so
    the held-out examples' features are constants. Metrics are the
    weights' part's ("loss" included), plus "arch_log_loss"."""
    n = v_t.shape[0] - arch_batch_size
    part = lambda x, s: jax.tree.map(lambda y: y[s], x)  # noqa: E731
    first, last = slice(None, n), slice(n, None)
    weights_view = frozen(params, arch=True)
    features = q_function.trunk(weights_view, batch.obs_tm1["image"])
    loss, aux = loss_fn(
      weights_view,
      part(batch, first),
      v_t[first],
      key,
      features=part(features, first),
    )
    held = part(batch, last)
    logit = q_function.head(
      frozen(params, arch=False),
      jax.lax.stop_gradient(part(features, last)),
      proprio_state(held.obs_tm1),
      held.action_tm1,
    )
    arch_loss = jnp.mean(
      jax.vmap(losses.log_loss)(logit, targets(held, v_t[last]))
    )
    return loss + arch_loss, {**aux, "loss": loss, "arch_log_loss": arch_loss}

  def shift_images(key, obs):
    return {
      **obs,
      "image": augment.random_shift(key, obs["image"], image_shift),
    }

  def local(key):
    """A key for this device's examples: the agent's key is replicated, so
    without this every device would draw the same CQL actions, target-CEM
    samples and image shifts for its i-th example."""
    if axis_name is None:
      return key
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))

  def update(state: QtOptState, batch: types.Transition):
    key, cem_key = jax.random.split(state.key)
    cem_key = local(cem_key)
    loss_key = None
    if conservative_weight > 0:  # the default key stream stays as it was
      key, loss_key = jax.random.split(key)
      loss_key = local(loss_key)
    if image_shift > 0:
      key, key_tm1, key_t = jax.random.split(key, 3)
      key_tm1, key_t = local(key_tm1), local(key_t)
      batch = batch._replace(
        obs_tm1=shift_images(key_tm1, batch.obs_tm1),
        obs_t=shift_images(key_t, batch.obs_t),
      )
    if target == "return":  # no bootstrapping: no target networks run
      v_t = jnp.zeros(batch.reward_t.shape, jnp.float32)
    else:
      v_t = next_value(
        state.polyak_params, state.lagged_params, batch.obs_t, cem_key
      )
    (loss, aux), grads = jax.value_and_grad(
      split_loss_fn if arch_batch_size else loss_fn, has_aux=True
    )(state.params, batch, v_t, loss_key)
    metrics = {"loss": loss, **aux}
    if axis_name is not None:  # the only multi-device line in the agent
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    polyak_params = optax.incremental_update(
      params, state.polyak_params, 1.0 - polyak_decay
    )
    step = state.step + 1
    refresh = step % lag_every == 0
    lagged_params = jax.tree.map(
      lambda new, old: jnp.where(refresh, new, old), params, state.lagged_params
    )
    metrics["grad_norm"] = optax.tree.norm(grads)
    new_state = QtOptState(
      params=params,
      polyak_params=polyak_params,
      lagged_params=lagged_params,
      opt_state=opt_state,
      key=key,
      step=step,
    )
    return new_state, metrics

  return types.Agent(init=init, act=act, update=update)
