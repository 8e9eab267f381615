"""Surreal-DDPG's actor and critic (spec surreal.md §1.3.2-1.3.3).

  perception (phi)  pixels (optional): uint8 [H, W, C] -> conv 8x8/16/s4
                    -> conv 4x4/32/s2 -> dense 200, ReLU; concatenated with
                    the low-dim vector (every other observation leaf)
  actor             phi -> MLP(300, 200) -> tanh, one action in [-1, 1]
  critic            phi -> 400 -> concat action -> 300 -> Q (ReLU; with
                    `layer_norm`, LayerNorm before each hidden ReLU)

phi is shared, and trained only by the critic: the actor reads
stop_gradient(phi(s)) (the seed: "the convolution parameters are updated
only by gradient descent on the critic loss"). Parameters are one dict
{"encoder", "actor", "critic"} so each optimizer can mask its share.
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl_vision.networks import policies


def _hidden(x, size, layer_norm, name):
  x = nn.Dense(size, name=name)(x)
  if layer_norm:
    x = nn.LayerNorm(name=f"{name}_ln")(x)
  return nn.relu(x)


class _Actor(nn.Module):
  action_size: int
  hidden_sizes: Sequence[int]
  layer_norm: bool

  @nn.compact
  def __call__(self, phi):
    x = phi
    for i, size in enumerate(self.hidden_sizes):
      x = _hidden(x, size, self.layer_norm, f"hidden_{i}")
    return jnp.tanh(nn.Dense(self.action_size, name="out")(x))


class _Critic(nn.Module):
  state_size: int
  hidden_sizes: Sequence[int]
  layer_norm: bool

  @nn.compact
  def __call__(self, phi, action):
    x = _hidden(phi, self.state_size, self.layer_norm, "state")
    x = jnp.concatenate([x, action], axis=-1)
    for i, size in enumerate(self.hidden_sizes):
      x = _hidden(x, size, self.layer_norm, f"hidden_{i}")
    return nn.Dense(1, name="out")(x)[..., 0]


class DDPGNetworks(NamedTuple):
  """init(key, image | None, low [B, D]) -> params;
  perceive(params, image | None, low) -> phi [B, F];
  actor(params, phi) -> actions [B, A] in [-1, 1];
  critic(params, phi, actions) -> Q [B]."""

  init: Callable[..., Any]
  perceive: Callable[..., jax.Array]
  actor: Callable[..., jax.Array]
  critic: Callable[..., jax.Array]


def make_ddpg_networks(
  action_size: int,
  *,
  pixels: bool = False,
  actor_hidden_sizes: Sequence[int] = (300, 200),
  critic_state_size: int = 400,
  critic_hidden_sizes: Sequence[int] = (300,),
  conv_features: int = 200,
  layer_norm: bool = False,
) -> DDPGNetworks:
  perception = policies.Encoder(pixels, conv_features)  # PPO's, 200 wide
  actor = _Actor(action_size, tuple(actor_hidden_sizes), layer_norm)
  critic = _Critic(critic_state_size, tuple(critic_hidden_sizes), layer_norm)

  def init(key, image, low):
    k_enc, k_actor, k_critic = jax.random.split(key, 3)
    enc = perception.init(k_enc, image, low).get("params", {})
    phi = perception.apply({"params": enc}, image, low)
    act = actor.init(k_actor, phi)["params"]
    a = jnp.zeros(phi.shape[:-1] + (action_size,), jnp.float32)
    return {
      "encoder": enc,
      "actor": act,
      "critic": critic.init(k_critic, phi, a)["params"],
    }

  def perceive(params, image, low):
    return perception.apply({"params": params["encoder"]}, image, low)

  def actor_fn(params, phi):
    return actor.apply({"params": params["actor"]}, phi)

  def critic_fn(params, phi, actions):
    return critic.apply({"params": params["critic"]}, phi, actions)

  return DDPGNetworks(init, perceive, actor_fn, critic_fn)
