"""Offline datasets as pure functions: collect episodes, index, sample.

Episodes store every observation once (o_0 .. o_T) and rebuild transitions
(o_t, a_t, r_t, o_t+1) when sampled, so a dataset of images costs one frame per
step, not two. Disk storage is in `episode_store.py`.
"""

import functools
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_vision import types

# policy(model, env_state, key, episode_key) -> action, for one world;
# callers vmap. `key` is fresh every step; `episode_key` is the same for all
# steps of an episode (per-episode latents: an aiming offset, a wander
# length).
Policy = Callable[
  [types.Model, types.EnvState, jax.Array, jax.Array], jax.Array
]


class Episodes(NamedTuple):
  obs: Any  # pytree, leaves [E, T+1, ...]: o_0 .. o_T, each frame once
  action: jax.Array  # [E, T, ...]
  reward: jax.Array  # [E, T] float32, reward of the step from o_t
  terminated: jax.Array  # [E, T] bool, step t ended the MDP
  length: jax.Array  # [E] int32, valid steps; later steps are padding
  success: jax.Array  # [E] float32, the env's "success" metric at the end
  policy: jax.Array  # [E] int32, index of the policy that acted


def _mix_logits(policies: Sequence[Policy], weights: Sequence[float]):
  """Log-weights of a policy mix; ValueError if malformed."""
  if len(policies) != len(weights) or not policies:
    raise ValueError("need one weight per policy, and at least one policy")
  if min(weights) < 0 or sum(weights) <= 0:
    raise ValueError(f"weights must be >= 0 with a positive sum: {weights}")
  return jnp.log(jnp.asarray(weights, jnp.float32))


def make_collector(
  env: types.Env,
  policies: Sequence[Policy],
  weights: Sequence[float],
) -> Callable[[types.Model, jax.Array, int], Episodes]:
  """Returns `collect(model, key, num_episodes) -> Episodes`.

  Each episode picks one policy with probability `weights[i]` (e.g. a noisy
  scripted expert and a random policy, mixed to reach a target success
  rate) and runs it in its own world for at most `env.spec.max_episode_steps`
  steps, all worlds vmapped. After an episode ends its world stops changing;
  those steps are padding, excluded by `length`. The env must report
  `metrics["success"]`.
  """
  logits = _mix_logits(policies, weights)
  horizon = env.spec.max_episode_steps

  def one_episode(model, key):
    choice_key, reset_key, episode_key, key = jax.random.split(key, 4)
    choice = jax.random.categorical(choice_key, logits)
    state = env.reset(model, reset_key)

    def step(carry, key):
      state, done = carry
      # Every policy acts and the episode's own is kept: scripted policies
      # are cheap next to physics, and vmap would run all branches anyway.
      actions = [p(model, state, key, episode_key) for p in policies]
      action = jnp.stack(actions)[choice]
      next_state = env.step(model, state, action)
      ended = next_state.terminated | next_state.truncated
      # A finished world keeps its last state; its steps are padding.
      kept = jax.tree.map(
        lambda new, old: jnp.where(done, old, new), next_state, state
      )
      out = (
        action,
        jnp.where(done, 0.0, next_state.reward),
        ~done & next_state.terminated,
        ~done,
        kept.obs,
      )
      return (kept, done | ended), out

    (final, _), (action, reward, terminated, valid, obs) = jax.lax.scan(
      step, (state, jnp.bool_(False)), jax.random.split(key, horizon)
    )
    obs = jax.tree.map(
      lambda first, rest: jnp.concatenate([first[None], rest]), state.obs, obs
    )
    return Episodes(
      obs=obs,
      action=action,
      reward=reward,
      terminated=terminated,
      length=jnp.sum(valid).astype(jnp.int32),
      success=final.metrics["success"].astype(jnp.float32),
      policy=choice.astype(jnp.int32),
    )

  def collect(model, key, num_episodes):
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(one_episode, in_axes=(None, 0))(model, keys)

  return collect


def _rows(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
  """`mask` [N, T] with trailing unit axes to broadcast against `like`."""
  return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def make_stepped_collector(
  policies: Sequence[Policy], weights: Sequence[float]
) -> Callable[[Any, jax.Array], Episodes]:
  """Returns `collect(programs, key) -> Episodes` (numpy, on the host).

  `make_collector`'s policy mix stepped from the host over shared env
  programs (`train.EpisodePrograms`: `start`, `advance`, `model`,
  `num_episodes`; one episode per world): the env step, most of a
  collector's compile time, is the program that evaluations already
  compiled, and only the policies' act is compiled here (once per world
  count). The episodes follow `make_collector`'s rules, with their own
  use of `key`: each picks one policy with probability `weights[i]`;
  steps after an episode's end are padding (the last observation
  repeated, zero action and reward, excluded by `length`).
  """
  logits = _mix_logits(policies, weights)

  @functools.partial(jax.jit, static_argnums=1)
  def draw(key, num):
    choice_key, episode_key = jax.random.split(key)
    choice = jax.random.categorical(choice_key, logits, shape=(num,))
    return choice.astype(jnp.int32), jax.random.split(episode_key, num)

  @jax.jit
  def act(model, env_state, key, choice, episode_keys):
    def one(state, key, episode_key, choice):
      # Every policy acts and the episode's own is kept (as make_collector).
      actions = [p(model, state, key, episode_key) for p in policies]
      return jnp.stack(actions)[choice]

    keys = jax.random.split(key, choice.shape[0])
    return jax.vmap(one)(env_state, keys, episode_keys, choice)

  def collect(programs, key: jax.Array) -> Episodes:
    draw_key, run_key = jax.random.split(key)
    choice, episode_keys = draw(draw_key, programs.num_episodes)
    carry, step_keys = programs.start(programs.model, run_key)
    first, steps = carry.env_state.obs, []
    for step_key in step_keys:  # device arrays only: no sync per step
      action = act(
        programs.model, carry.env_state, step_key, choice, episode_keys
      )
      after = programs.advance(programs.model, carry, action)
      state = after.env_state
      steps.append(
        (~carry.done, action, state.reward, state.terminated, state.obs)
      )
      carry = after
    first, steps, success = jax.device_get(
      (first, steps, carry.final["success"])
    )
    valid, action, reward, terminated, obs = (
      jax.tree.map(lambda *x: np.stack(x, 1), *part)
      for part in zip(*steps, strict=True)
    )
    # Past its end a world's frames repeat its last one (padding):
    # stored frame t is frame min(t, length).
    length = valid.sum(1)
    last = np.minimum(np.arange(valid.shape[1] + 1), length[:, None])
    rows = np.arange(len(length))[:, None]
    obs = jax.tree.map(
      lambda o0, o: np.concatenate([o0[:, None], o], 1)[rows, last], first, obs
    )
    return Episodes(
      obs=obs,
      action=np.where(_rows(valid, action), action, 0).astype(action.dtype),
      reward=np.where(valid, reward, 0.0).astype(np.float32),
      terminated=valid & terminated,
      length=length.astype(np.int32),
      success=np.asarray(success, np.float32),
      policy=np.asarray(choice),
    )

  return collect


def episodes_structure(env: types.Env) -> Episodes:
  """The abstract Episodes (ShapeDtypeStructs) that `env`'s collector
  writes, e.g. for `episode_store.read`; nothing is simulated."""
  dtype = jnp.int32 if env.spec.num_actions else jnp.float32

  def still(model, state, key, episode_key):
    del model, state, key, episode_key
    return jnp.zeros(env.spec.action_shape, dtype)

  collect = make_collector(env, [still], [1.0])
  return jax.eval_shape(
    lambda model, key: collect(model, key, 1),
    env.init_model(),
    jax.random.key(0),
  )


def transition_index(length: np.ndarray) -> np.ndarray:
  """[num_transitions, 2] int32 (episode, step) of every valid transition."""
  length = np.asarray(length)
  episode = np.repeat(np.arange(len(length)), length)
  step = np.concatenate([np.arange(n) for n in length]) if len(length) else []
  return np.stack([episode, np.asarray(step, episode.dtype)], -1).astype(
    np.int32
  )


def discounted_returns(
  reward: jax.Array, length: jax.Array, gamma: float
) -> jax.Array:
  """G[..., t] = sum_{k >= t} gamma^(k - t) r_k over each episode's valid
  steps (k < length); reward [..., T], length [...]. Padding steps get 0."""
  valid = jnp.arange(reward.shape[-1]) < length[..., None]
  reward = jnp.where(valid, reward, 0.0)

  def back(g, r):
    g = r + gamma * g
    return g, g

  _, g = jax.lax.scan(
    back,
    jnp.zeros(reward.shape[:-1], reward.dtype),
    jnp.moveaxis(reward, -1, 0),
    reverse=True,
  )
  return jnp.where(valid, jnp.moveaxis(g, 0, -1), 0.0)


def make_sampler(
  batch_size: int, gamma: float | None = None
) -> Callable[..., types.Transition]:
  """`sample(episodes, index, key, num_rows=None, first_row=0) ->
  Transition` [batch_size, ...].

  `index` is `transition_index(episodes.length)` (on device), so sampling is
  uniform over transitions and never crosses an episode's end. With
  `num_rows` (an int or a traced () int32), only the first `num_rows` rows
  of `index` are drawn: the rest is padding (a device's shard of a dataset,
  `train.offline_data_shards`); with `first_row`, only the rows from
  `first_row` on (the other episodes of one with held-out episodes, whose
  rows come first). The key is the data-stream position: keep it
  in the training state and a resumed run draws the same batches. With
  `gamma`, each transition also carries `mc_return`, the discounted return
  its episode actually collected from o_t on (`discounted_returns`; T
  rewards per sampled row, no storage).
  """

  def sample(
    episodes: Episodes,
    index: jax.Array,
    key: jax.Array,
    num_rows: int | jax.Array | None = None,
    first_row: int | jax.Array = 0,
  ):
    num_rows = index.shape[0] if num_rows is None else num_rows
    rows = jax.random.randint(key, (batch_size,), first_row, num_rows)
    e, t = index[rows, 0], index[rows, 1]
    mc_return = None
    if gamma is not None:
      returns = discounted_returns(
        episodes.reward[e], episodes.length[e], gamma
      )  # [B, T]
      mc_return = jnp.take_along_axis(returns, t[:, None], axis=1)[:, 0]
    return types.Transition(
      obs_tm1=jax.tree.map(lambda o: o[e, t], episodes.obs),
      action_tm1=episodes.action[e, t],
      reward_t=episodes.reward[e, t],
      discount_t=1.0 - episodes.terminated[e, t].astype(jnp.float32),
      obs_t=jax.tree.map(lambda o: o[e, t + 1], episodes.obs),
      mc_return=mc_return,
    )

  return sample
