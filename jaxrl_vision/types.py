"""The project's interfaces: NamedTuples of pure functions, and type aliases.

Every component is built by a `make_*` factory that returns one of these.
Nothing here holds state: state is a pytree that the functions take and return.
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import chex
import jax

Params = chex.ArrayTree
Metrics = dict[str, jax.Array]  # flat, scalar leaves
Model = Any  # an env's model pytree (an mjx.Model for MJX tasks)


class Network(NamedTuple):
  """A network as two pure functions (the brax `FeedForwardNetwork` shape)."""

  init: Callable[..., Params]  # init(key, *inputs) -> params
  apply: Callable[..., Any]  # apply(params, *inputs) -> outputs


class Agent(NamedTuple):
  """A learning agent (acme `ActorCore` + learner, as pure functions).

  init(key, obs) -> state                  obs: one example batch [B, ...]
  act(state, obs, key, deterministic=False) -> (action, info)   batched [N, ...]
  update(state, batch) -> (state, metrics)
  """

  init: Callable[..., Any]
  act: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  update: Callable[..., tuple[Any, Metrics]]


class EnvState(NamedTuple):
  """One world's state; batched envs carry a leading [N] axis on every leaf."""

  physics: Any  # the simulator's state (mjx.Data for MJX tasks)
  obs: Any  # [H, W, C] uint8 pixels, or a dict of arrays (image + proprio)
  reward: jax.Array  # () float32, reward for the step that led here
  terminated: jax.Array  # () bool, the MDP ended (no bootstrapping)
  truncated: jax.Array  # () bool, time limit hit (bootstrap, from final obs)
  metrics: dict[str, jax.Array]  # per-step scalars, fixed keys per env
  info: dict[str, Any]  # fixed keys per env and wrapper stack


class EnvSpec(NamedTuple):
  """Static facts about an env, used to build networks and buffers."""

  obs_shape: tuple[int, ...]
  obs_dtype: Any
  num_actions: int  # discrete action count; 0 for continuous actions
  action_shape: tuple[int, ...]  # () for discrete actions
  max_episode_steps: int


class Env(NamedTuple):
  """A functional env: the model is an argument, so randomisation is vmap.

  reset(model, key) -> EnvState
  step(model, state, action) -> EnvState
  init_model() -> Model      the default (unrandomised) model
  """

  reset: Callable[[Model, jax.Array], EnvState]
  step: Callable[[Model, EnvState, jax.Array], EnvState]
  init_model: Callable[[], Model]
  spec: EnvSpec


class Transition(NamedTuple):
  """One env step for off-policy learners; batched with a leading [B] axis."""

  obs_tm1: Any  # [H, W, C] uint8, or the env's obs pytree
  action_tm1: jax.Array  # () int32 or [A] float32
  reward_t: jax.Array  # () float32
  discount_t: jax.Array  # () float32: 0 where the episode terminated, else 1
  obs_t: Any  # like obs_tm1: the true successor (pre-reset)
  # () float32 discounted return from obs_tm1 to the episode's end, where
  # the data knows it (offline datasets, `offline.make_sampler(gamma=...)`);
  # None elsewhere.
  mc_return: Any = None


class Buffer(NamedTuple):
  """A replay buffer over a state pytree (flashbax-like, as pure functions)."""

  init: Callable[[chex.ArrayTree], Any]  # init(example_item) -> state
  add: Callable[[Any, chex.ArrayTree], Any]  # add(state, items [B, ...])
  sample: Callable[[Any, jax.Array], chex.ArrayTree]  # sample(state, key)
  can_sample: Callable[[Any], jax.Array]  # () bool
