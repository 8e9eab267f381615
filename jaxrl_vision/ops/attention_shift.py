"""RubiksShift-AQ: attention over integer temporal shifts (thesis §6.3.3).

Spec: /work/shared/specs/secant-rubiksnet.md §2.1 ("Attention quantized
shift", "Budget constraint") and §3.2. Temporal only; the spatial shift of an
AQ network stays a learnable interpolated RubiksShift.

Every channel c owns three logits W[c, k], one per tap k ∈ {0, 1, 2}. The
attention weights are a std-normalised softmax whose temperature DIVIDES
(the released code; the thesis's Eq. 6.7 writes a product, which contradicts
its own "high τ is near uniform"):

  w[c, :] = softmax( W[c, :] / ((std_k W[c, k] + 1e-6) · τ) ),

with std the unbiased (ddof = 1) std over the 3 taps. Dividing by the std
makes w invariant to the scale of W, so τ alone sets the sharpness.

Application is a depthwise temporal cross-correlation with zero padding 1,
shared over H×W:

  y[t] = w[c, 0]·x[t−1] + w[c, 1]·x[t] + w[c, 2]·x[t+1].

Tap ↔ shift: `ops.rubiks_shift` reads the input at p + θ, so tap k reads x at
t + (k − 1), i.e. tap k is the integer temporal shift θ_t = k − 1:
  tap 0 ↔ θ_t = −1 (reads the previous frame),
  tap 1 ↔ θ_t =  0,
  tap 2 ↔ θ_t = +1 (reads the next frame).
A one-hot w is therefore exactly `rubiks_shift` with the (3, C) shift
[[k_c − 1], [0], [0]] (`shift_from_attention`).

Annealing: τ(s) = τ₀·(τ₁/τ₀)^(s/S), 2.0 → 1e-3 over S steps (the thesis's 40
epochs), then held (`temperature_schedule`). Hardening takes argmax → one-hot
→ an integer shift: a gather, zero FLOPs at inference.

Budget (Eq. 6.8): with N_L attention layers and B ∈ (0, 1),

  L_budget = | (1/N_L) Σ_l (1/C_l) Σ_c (w_l[c, 0] + w_l[c, 2]) − B |,

the mean shifted mass (taps −1 and +1) over channels, then over layers. Only
the global mean is constrained, so the network chooses where to shift.
"""

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import optax

NUM_TAPS = 3  # offsets {−1, 0, +1}
CENTER_TAP = 1  # the tap of offset 0
ATTENTION_PARAM = "attention"  # leaf name of the (C, 3) logits in networks
LAYOUTS = ("NCTHW", "NTHWC")
_STD_EPS = 1e-6


def init_attention_logits(
  key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32
) -> jax.Array:
  """Thesis init: logits ~ U[1, 1.05], a near-uniform start (flax init)."""
  return jax.random.uniform(key, shape, dtype, minval=1.0, maxval=1.05)


def attention_weights(logits: jax.Array, temperature: jax.Array) -> jax.Array:
  """w = softmax(W / ((std(W) + 1e-6)·τ)) per channel.

  Args:
    logits: [C, 3] raw attention parameters W.
    temperature: scalar τ > 0; high τ → uniform, τ → 0 → one-hot.

  Returns:
    [C, 3] weights, each row summing to 1.
  """
  chex.assert_rank(logits, 2)
  chex.assert_axis_dimension(logits, 1, NUM_TAPS)
  std = jnp.std(logits, axis=1, keepdims=True, ddof=1)  # torch's unbiased std
  return jax.nn.softmax(logits / ((std + _STD_EPS) * temperature), axis=1)


def hard_attention(logits_or_weights: jax.Array) -> jax.Array:
  """Argmax → one-hot [C, 3]; the softmax is monotone, so W or w both work."""
  chex.assert_rank(logits_or_weights, 2)
  taps = jnp.argmax(logits_or_weights, axis=1)
  return jax.nn.one_hot(taps, NUM_TAPS, dtype=logits_or_weights.dtype)


def temporal_shift_from_attention(logits_or_weights: jax.Array) -> jax.Array:
  """Hardened integer temporal shift per channel: argmax tap − 1, [C] int32."""
  chex.assert_rank(logits_or_weights, 2)
  return (jnp.argmax(logits_or_weights, axis=1) - CENTER_TAP).astype(jnp.int32)


def shift_from_attention(logits_or_weights: jax.Array) -> jax.Array:
  """The (3, C) float32 shift (rows t, h, w) for `ops.rubiks_shift`.

  Row t is the hardened integer temporal shift; rows h and w are 0.
  """
  theta_t = temporal_shift_from_attention(logits_or_weights)
  zeros = jnp.zeros_like(theta_t)
  return jnp.stack([theta_t, zeros, zeros]).astype(jnp.float32)


def attention_shift(
  x: jax.Array, weights: jax.Array, *, layout: str = "NCTHW"
) -> jax.Array:
  """y[t] = w0·x[t−1] + w1·x[t] + w2·x[t+1] per channel, zero outside.

  Args:
    x: [N, C, T, H, W] (layout "NCTHW", the `rubiks_shift` layout) or
      [N, T, H, W, C] (layout "NTHWC", channels-last as inside the network).
    weights: [C, 3] attention weights (soft, or one-hot after hardening).
    layout: "NCTHW" or "NTHWC".

  Returns:
    y with the shape and dtype of x.
  """
  chex.assert_rank(x, 5)
  if layout not in LAYOUTS:
    raise ValueError(f"Unknown layout {layout!r}; valid layouts: {LAYOUTS}.")
  time_axis, channel_axis = (2, 1) if layout == "NCTHW" else (1, 4)
  chex.assert_shape(weights, (x.shape[channel_axis], NUM_TAPS))
  num_frames = x.shape[time_axis]
  pad = [(0, 0)] * 5
  pad[time_axis] = (1, 1)
  padded = jnp.pad(x, pad)  # zero frames at t = −1 and t = T
  bshape = [1] * 5
  bshape[channel_axis] = -1
  w = weights.astype(x.dtype)
  y = jnp.zeros_like(x)
  for tap in range(NUM_TAPS):
    # padded index t + tap is frame t + tap − 1, i.e. offset tap − 1.
    frames = jax.lax.slice_in_dim(padded, tap, tap + num_frames, axis=time_axis)
    y = y + w[:, tap].reshape(bshape) * frames
  return y


def temperature_schedule(
  *, steps: int, init: float = 2.0, final: float = 1e-3
) -> optax.Schedule:
  """τ(s) = init·(final/init)^(min(s, steps)/steps): exponential annealing.

  The thesis anneals 2.0 → 1e-3 over 40 epochs; `steps` is whatever unit
  the caller counts (epochs or updates). τ stays at `final` after `steps`.
  """
  if steps <= 0:
    raise ValueError(f"steps must be positive, got {steps}.")
  if init <= 0 or final <= 0:
    raise ValueError(f"Temperatures must be positive, got {init}, {final}.")
  log_ratio = jnp.log(final / init)

  def schedule(step):
    fraction = jnp.clip(jnp.asarray(step, jnp.float32) / steps, 0.0, 1.0)
    return init * jnp.exp(fraction * log_ratio)

  return schedule


def shifted_mass(weights: jax.Array) -> jax.Array:
  """(1/C) Σ_c (w[c, 0] + w[c, 2]): a layer's mean mass on taps −1, +1."""
  chex.assert_rank(weights, 2)
  chex.assert_axis_dimension(weights, 1, NUM_TAPS)
  return jnp.mean(weights[:, 0] + weights[:, 2])


def budget_loss(weights: Sequence[jax.Array], budget: float) -> jax.Array:
  """Eq. 6.8: |mean over layers of the shifted mass − B|.

  Args:
    weights: one [C_l, 3] attention-weight array per AQ layer (C_l may
      differ between layers; every layer counts equally, as in Eq. 6.8).
    budget: B ∈ (0, 1), the target fraction of shifted channels.

  Returns:
    Scalar loss; the caller chooses its weight relative to the task loss.
  """
  if not weights:
    raise ValueError("budget_loss needs at least one attention layer.")
  mass = jnp.mean(jnp.stack([shifted_mass(w) for w in weights]))
  return jnp.abs(mass - budget)


def nonzero_shift_fraction(weights: Sequence[jax.Array]) -> jax.Array:
  """Eq. 6.8's statistic on the hardened weights: the achieved budget.

  Per layer the fraction of channels whose argmax tap is not the centre
  (a non-zero integer shift after hardening), then the mean over layers.
  """
  if not weights:
    raise ValueError("nonzero_shift_fraction needs at least one layer.")
  return jnp.mean(jnp.stack([shifted_mass(hard_attention(w)) for w in weights]))


def find_attention_logits(params: chex.ArrayTree) -> list[jax.Array]:
  """Every leaf named `ATTENTION_PARAM` in `params`, in tree order."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return [leaf for path, leaf in leaves if _last_key(path) == ATTENTION_PARAM]


def _last_key(path) -> str | None:
  if not path:
    return None
  key = path[-1]
  return getattr(key, "key", getattr(key, "name", None))
