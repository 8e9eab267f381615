"""Surreal-PPO's actor-critic (spec surreal.md §1.2.3), as pure functions.

  pixels (optional)  uint8 [H, W, C] -> conv 8x8/16/s4 -> conv 4x4/32/s2
                     -> dense 256, ReLU
  low-dim            every other observation leaf, flattened and
                     concatenated (z-filtered by the agent)
  core               LSTM(`lstm_size`) over time (0: none), reset to zeros
                     at episode starts
  heads              actor MLP(300, 200) -> tanh mean, a state-independent
                     log-std (init -1); critic MLP(300, 200) -> value

`make_actor_critic(...)` returns `ActorCritic(init, encode, initial_carry,
unroll, step)`: `encode` maps an image (or None) and the low-dim vector,
with any leading axes, to features (the conv runs on all frames at once);
`unroll` scans the core and the heads over a time axis from a stored LSTM
carry; `step` is one time step of it.
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = tuple[jax.Array, jax.Array]  # LSTM (c, h), [B, L] each


class Gaussian(NamedTuple):
  """A diagonal Gaussian policy's output: mean and std, [..., A]."""

  mean: jax.Array
  std: jax.Array


def low_dim(obs: dict[str, jax.Array], batch_dims: int) -> jax.Array:
  """The non-image leaves of `obs`, flattened past `batch_dims` axes and
  concatenated in key order: [..., D] float32."""
  leaves = [
    v.reshape(v.shape[:batch_dims] + (-1,)).astype(jnp.float32)
    for k, v in sorted(obs.items())
    if k != "image"
  ]
  return jnp.concatenate(leaves, axis=-1)


class Encoder(nn.Module):
  """Surreal's perception: pixels (uint8) -> conv 8x8/16/s4 -> conv
  4x4/32/s2 -> dense `features`, ReLU, concatenated with the low-dim
  vector; without pixels, the low-dim vector itself."""

  pixels: bool
  features: int = 256

  @nn.compact
  def __call__(self, image, state):
    if not self.pixels:
      return state
    x = image.astype(jnp.float32) / 255.0
    x = nn.relu(nn.Conv(16, (8, 8), (4, 4), padding="VALID")(x))
    x = nn.relu(nn.Conv(32, (4, 4), (2, 2), padding="VALID")(x))
    x = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[:-3] + (-1,))))
    return jnp.concatenate([x, state], axis=-1)


class _Core(nn.Module):
  action_size: int
  lstm_size: int
  hidden_sizes: Sequence[int]
  init_log_std: float
  actor_out_scale: float | None = None

  @nn.compact
  def __call__(self, carry, features, starts):
    if self.lstm_size:
      keep = (~starts)[:, None].astype(features.dtype)
      carry = jax.tree.map(lambda x: x * keep, carry)
      carry, x = nn.OptimizedLSTMCell(self.lstm_size, name="lstm")(
        carry, features
      )
    else:
      x = features

    def mlp(name, out, out_init=nn.linear.default_kernel_init):
      h = x
      for i, size in enumerate(self.hidden_sizes):
        h = nn.relu(nn.Dense(size, name=f"{name}_{i}")(h))
      return nn.Dense(out, kernel_init=out_init, name=f"{name}_out")(h)

    if self.actor_out_scale is None:
      mean = jnp.tanh(mlp("actor", self.action_size))
    else:  # a near-zero mean at init (orthogonal, scaled)
      out_init = nn.initializers.orthogonal(self.actor_out_scale)
      mean = jnp.tanh(mlp("actor", self.action_size, out_init))
    log_std = self.param(
      "log_std",
      nn.initializers.constant(self.init_log_std),
      (self.action_size,),
    )
    value = mlp("critic", 1)[..., 0]
    return carry, (mean, jnp.broadcast_to(jnp.exp(log_std), mean.shape), value)


class ActorCritic(NamedTuple):
  """init(key, image, low) -> params (one step: [B, ...] each);
  encode(params, image | None, low [..., D]) -> features [..., F];
  initial_carry(batch) -> Carry;
  step(params, carry, features [B, F], starts [B]) ->
    (carry, Gaussian [B, A], values [B]);
  unroll(params, carry, features [T, B, F], starts [T, B]) ->
    (carry, Gaussian [T, B, A], values [T, B])."""

  init: Callable[..., Any]
  encode: Callable[..., jax.Array]
  initial_carry: Callable[[int], Carry]
  step: Callable[..., tuple[Carry, Gaussian, jax.Array]]
  unroll: Callable[..., tuple[Carry, Gaussian, jax.Array]]


def make_actor_critic(
  action_size: int,
  *,
  pixels: bool = False,
  lstm_size: int = 100,
  hidden_sizes: Sequence[int] = (300, 200),
  init_log_std: float = -1.0,
  actor_out_scale: float | None = None,
) -> ActorCritic:
  """`actor_out_scale`: None, the actor's last layer as every other
  (LeCun normal: the initial mean is a random +-0.5 or so per action);
  else an orthogonal init of that gain, e.g. 0.01 for a mean near 0 in
  every state (Andrychowicz et al. 2021, "What matters in on-policy RL")."""
  encoder = Encoder(pixels)
  core = _Core(
    action_size, lstm_size, tuple(hidden_sizes), init_log_std, actor_out_scale
  )

  def initial_carry(batch: int) -> Carry:
    zeros = jnp.zeros((batch, max(lstm_size, 1)), jnp.float32)
    return zeros, zeros

  def encode(params, image, low):
    return encoder.apply({"params": params["encoder"]}, image, low)

  def init(key, image, low):
    enc_key, core_key = jax.random.split(key)
    enc = encoder.init(enc_key, image, low)
    features = encoder.apply(enc, image, low)
    batch = features.shape[0]
    starts = jnp.ones((batch,), bool)
    params = core.init(core_key, initial_carry(batch), features, starts)
    return {"encoder": enc.get("params", {}), "core": params["params"]}

  def step(params, carry, features, starts):
    carry, (mean, std, value) = core.apply(
      {"params": params["core"]}, carry, features, starts
    )
    return carry, Gaussian(mean, std), value

  def unroll(params, carry, features, starts):
    if not lstm_size:  # no recurrence: every step at once, no scan
      t, b = starts.shape
      flat = features.reshape((t * b,) + features.shape[2:])
      _, dist, value = step(params, carry, flat, starts.reshape(-1))
      unflat = lambda x: x.reshape((t, b) + x.shape[1:])  # noqa: E731
      return carry, jax.tree.map(unflat, dist), unflat(value)

    def one(carry, inputs):
      carry, dist, value = step(params, carry, *inputs)
      return carry, (dist, value)

    carry, (dist, value) = jax.lax.scan(one, carry, (features, starts))
    return carry, dist, value

  return ActorCritic(init, encode, initial_carry, step, unroll)
