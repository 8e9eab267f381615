"""QT-Opt losses over one example; callers vmap (the rlax convention).

Q(s, a) = sigmoid(logit) is a success probability, trained with the log loss
against a Bellman target clipped to [0, 1] (spec B1.3).
"""

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import optax

from jaxrl_vision import types


def qtopt_target(
  r_t: jax.Array, discount_t: jax.Array, v_t: jax.Array, gamma: float
) -> jax.Array:
  """Bellman target clip(r_t + gamma * discount_t * v_t, 0, 1).

  The clip is a [D] choice of spec B1.3: with a per-step penalty the target
  can leave [0, 1], where the log loss against a probability is undefined.

  Args:
    r_t: () reward.
    discount_t: () 0 where the episode terminated, else 1.
    v_t: () value of the next state, in [0, 1]; held fixed by the caller.
    gamma: the discount factor.

  Returns:
    () float32 target in [0, 1].
  """
  chex.assert_rank([r_t, discount_t, v_t], 0)
  return jnp.clip(r_t + gamma * discount_t * v_t, 0.0, 1.0)


def lower_bounded_target(target: jax.Array, mc_return: jax.Array) -> jax.Array:
  """max(target, clip(G, 0, 1)): the Bellman target raised to the return
  the data actually collected from this (s, a).

  In a deterministic MDP the return G that a trajectory collected after
  taking a in s is a lower bound of Q*(s, a) (He et al., 2017, "optimality
  tightening"; Oh et al., 2018, self-imitation learning), so raising the
  target to it is consistent with Q* and propagates a terminal reward to
  the first step of a successful episode at once, where Bellman backups
  alone need one sweep per step. Not in the paper; an option for short,
  small-data runs (our MJX worlds are deterministic given their state).

  Args:
    target: () Bellman target in [0, 1].
    mc_return: () discounted return from (s, a) in the dataset.

  Returns:
    () float32 target in [0, 1].
  """
  chex.assert_rank([target, mc_return], 0)
  return jnp.maximum(target, jnp.clip(mc_return, 0.0, 1.0))


def conservative_penalty(q_data: jax.Array, q_sampled: jax.Array) -> jax.Array:
  """CQL(H)'s regulariser (Kumar et al., 2020) for one state, on Q in [0, 1].

  log mean_k exp Q(s, a_k) - Q(s, a_data), with a_k drawn uniformly from the
  action space: its gradient pushes down the soft maximum of Q over all
  actions and pushes up Q of the action the data took. On a small fixed
  dataset this stops the CEM from finding actions whose Q is pure
  extrapolation (e.g. "close now" wherever the expert closed with small
  moves). Taken on probabilities, not logits: on logits the data term's
  constant push beats the log loss's bounded pull and the logit diverges
  (measured). Not in the paper; an option.

  Args:
    q_data: () Q of the dataset's action.
    q_sampled: [K] Q of uniformly sampled actions.

  Returns:
    () penalty (can be negative).
  """
  chex.assert_rank([q_data, q_sampled], [0, 1])
  k = q_sampled.shape[0]
  return jax.nn.logsumexp(q_sampled) - jnp.log(k) - q_data


def log_loss(logit: jax.Array, target: jax.Array) -> jax.Array:
  """Binary cross-entropy between sigmoid(logit) and a target in [0, 1].

  loss = -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed from the
  logit in the log-sigmoid form, so it stays finite for any |x|.

  Args:
    logit: () the Q-function's logit.
    target: () the target probability.

  Returns:
    () loss.
  """
  chex.assert_rank([logit, target], 0)
  return optax.sigmoid_binary_cross_entropy(logit, target)


def path_names(path) -> tuple[str, ...]:
  """A jax key path as a tuple of strings, e.g. ("params", "Dense_0", "kernel")."""
  names = []
  for entry in path:
    if isinstance(entry, jax.tree_util.DictKey):
      names.append(str(entry.key))
    elif isinstance(entry, jax.tree_util.GetAttrKey):
      names.append(entry.name)
    elif isinstance(entry, jax.tree_util.SequenceKey):
      names.append(str(entry.idx))
    else:
      names.append(str(entry))
  return tuple(names)


def l2_penalty(
  params: types.Params,
  scale: float,
  is_arch_param: Callable[[tuple[str, ...]], bool] = lambda path: False,
) -> jax.Array:
  """slim-style L2: scale * sum(w^2) / 2 over kernels (spec B1.2, B1.5).

  Only leaves named "kernel" count (no biases, BN scales or batch stats), and
  leaves for which `is_arch_param(path)` holds are left out, so architecture
  logits are not pulled towards a uniform choice (spec B1.5 [D]).

  Args:
    params: the parameter pytree (a flax variables dict).
    scale: the L2 coefficient.
    is_arch_param: predicate on a leaf's path, a tuple of key names.

  Returns:
    () float32 penalty.
  """
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = path_names(path)
    if names and names[-1] == "kernel" and not is_arch_param(names):
      total += jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return scale * total / 2.0
