"""Scaled gradient normalisation of RubiksShift parameters (Eqs. 6.9/6.10).

Spec: /work/shared/specs/secant-rubiksnet.md §2.1 ("Stable shift training")
and §2.2 design rule 2. The shift op's VJP stays exact; the normalisation is
an optax transform on the shift leaves, placed before the optimizer, which
has the same effect as the released code's in-backward normalisation.

Shift spatial extents (H = 224) dwarf the temporal one (T = 8), so the raw
shift gradients are badly scaled across axes; both variants rescale them to
a fixed length with a temporal factor λ:

* `per_channel` (released CUDA code, `normalize_shift_grad_3d_cuda`), per
  channel c:
    (g_t, g_h, g_w) ← (λg_t, g_h, g_w) / ‖(λg_t, g_h, g_w)‖₂,
  left at 0 where that norm is 0. λ enters squared in the norm. λ < 0 means
  temporal only: (g_t, g_h, g_w) ← (g_t, 0, 0)/|g_t|, i.e. (sign g_t, 0, 0).
* `thesis` (Eq. 6.9/6.10), over the layer's whole vectors:
    Z = sqrt(‖g_h‖² + ‖g_w‖² + λ‖g_t‖²),
    g_t ← λg_t/Z,  g_h ← g_h/Z,  g_w ← g_w/Z   (unchanged if Z = 0),
  with λ (not λ²) inside Z as printed; needs λ ≥ 0.

λ is a float or "auto" = T/H (frames over input height). The released code
evaluates "auto" per layer with that layer's input height; here one λ
serves every leaf, so pass the height you want it computed with.

Which rows a shift leaf holds follows from its row count (the convention of
`networks.rubiksnet`): [3, C] = (t, h, w); [2, C] = (h, w), a 2D or AQ
spatial shift; [1, C] = (t), a temporal-only shift.

Policy (`make_rubiksnet_optimizer`, the released `get_optim_policy`): shift
leaves get the normalisation, an lr multiplier (0.01) and no weight decay;
BatchNorm scale/bias and biases get no weight decay; everything else gets
coupled L2 weight decay (torch SGD's `weight_decay`). AQ attention logits
(the released policy has no group for them) get their own lr multiplier and
no weight decay: the std normalisation makes their scale irrelevant to the
forward pass, so decay would only inflate their gradients.
"""

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from jaxrl_vision.ops import attention_shift

VARIANTS = ("per_channel", "thesis")
SHIFT_PARAM = "shift"  # leaf name of shift parameters in networks
LABELS = ("weights", "no_decay", "shift", "attention")
_NO_DECAY_NAMES = ("bias", "scale")  # biases, BatchNorm/LayerNorm affine


def temporal_factor_value(
  temporal_factor: float | str,
  num_frames: int | None = None,
  height: int | None = None,
) -> float:
  """λ as a float: the value itself, or T/H for "auto"."""
  if temporal_factor == "auto":
    if not num_frames or not height:
      raise ValueError(
        'temporal_factor="auto" (λ = T/H) needs num_frames and height, got '
        f"{num_frames} and {height}."
      )
    return num_frames / height
  if isinstance(temporal_factor, str):
    raise ValueError(
      f'temporal_factor must be a float or "auto", got {temporal_factor!r}.'
    )
  return float(temporal_factor)


def _split_rows(g: jax.Array) -> tuple[jax.Array | None, jax.Array | None]:
  """([1, C] temporal rows or None, [2, C] spatial rows or None)."""
  chex.assert_rank(g, 2)
  rows = g.shape[0]
  if rows == 3:
    return g[:1], g[1:]
  if rows == 2:
    return None, g
  if rows == 1:
    return g, None
  raise ValueError(f"A shift leaf has 1, 2 or 3 rows, got shape {g.shape}.")


def _join_rows(t: jax.Array | None, hw: jax.Array | None) -> jax.Array:
  return jnp.concatenate([r for r in (t, hw) if r is not None], axis=0)


def normalize_per_channel(g: jax.Array, temporal_factor: float) -> jax.Array:
  """Released-code variant on one [R, C] shift gradient (see module doc)."""
  t, hw = _split_rows(g)
  if temporal_factor < 0:  # temporal only: spatial rows never move
    hw = None if hw is None else jnp.zeros_like(hw)
  elif t is not None:
    t = temporal_factor * t
  v = _join_rows(t, hw)
  norm = jnp.sqrt(jnp.sum(v * v, axis=0, keepdims=True))  # [1, C]
  return v / jnp.where(norm > 0, norm, 1.0)  # v = 0 where norm = 0


def normalize_thesis(g: jax.Array, temporal_factor: float) -> jax.Array:
  """Eq. 6.9/6.10 on one [R, C] shift gradient (see module doc)."""
  if temporal_factor < 0:
    raise ValueError(f"The thesis variant needs λ ≥ 0, got {temporal_factor}.")
  t, hw = _split_rows(g)
  z2 = 0.0
  if hw is not None:
    z2 = z2 + jnp.sum(hw * hw)
  if t is not None:
    z2 = z2 + temporal_factor * jnp.sum(t * t)
    t = temporal_factor * t
  z = jnp.sqrt(z2)
  return _join_rows(t, hw) / jnp.where(z > 0, z, 1.0)


def scale_by_shift_grad_norm(
  variant: str = "per_channel",
  temporal_factor: float | str = 1.0,
  *,
  num_frames: int | None = None,
  height: int | None = None,
) -> optax.GradientTransformation:
  """Normalises every leaf it sees as a [R, C] shift gradient.

  Use it on shift leaves only: through `shift_grad_norm` (masked) or a
  `optax.multi_transform` branch, before the optimizer.

  Args:
    variant: "per_channel" (released code) or "thesis" (Eq. 6.9/6.10).
    temporal_factor: λ, a float or "auto" (= num_frames / height).
    num_frames: T, for "auto".
    height: H, for "auto".

  Returns:
    A stateless GradientTransformation.
  """
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r}; valid: {VARIANTS}.")
  lam = temporal_factor_value(temporal_factor, num_frames, height)
  if variant == "thesis" and lam < 0:
    raise ValueError(f"The thesis variant needs λ ≥ 0, got {lam}.")
  normalize = {
    "per_channel": normalize_per_channel,
    "thesis": normalize_thesis,
  }[variant]

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: normalize(g, lam), updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def _last_key(path) -> Any:
  if not path:
    return None
  key = path[-1]
  return getattr(key, "key", getattr(key, "name", None))


def is_shift_param(path) -> bool:
  """True for a leaf named `shift` (a `jax.tree_util` key path)."""
  return _last_key(path) == SHIFT_PARAM


def shift_mask(params: chex.ArrayTree) -> chex.ArrayTree:
  """Bool tree: True on shift leaves (an `optax.masked` mask)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: is_shift_param(path), params
  )


def param_labels(params: chex.ArrayTree) -> chex.ArrayTree:
  """Label tree over `LABELS` for `optax.multi_transform`, by leaf name.

  shift → "shift"; attention → "attention"; bias, scale (BN/LN affine) →
  "no_decay"; every other leaf (conv/dense kernels) → "weights".
  """

  def label(path, _):
    name = _last_key(path)
    if name == SHIFT_PARAM:
      return "shift"
    if name == attention_shift.ATTENTION_PARAM:
      return "attention"
    if name in _NO_DECAY_NAMES:
      return "no_decay"
    return "weights"

  return jax.tree_util.tree_map_with_path(label, params)


def shift_grad_norm(
  variant: str = "per_channel",
  temporal_factor: float | str = 1.0,
  *,
  num_frames: int | None = None,
  height: int | None = None,
  mask: Callable[[chex.ArrayTree], chex.ArrayTree] = shift_mask,
) -> optax.GradientTransformation:
  """`scale_by_shift_grad_norm` on the leaves `mask` selects; others pass.

  Chain it in front of any optimizer:
  `optax.chain(shift_grad_norm(), optax.sgd(0.1, momentum=0.9))`.
  """
  return optax.masked(
    scale_by_shift_grad_norm(
      variant, temporal_factor, num_frames=num_frames, height=height
    ),
    mask,
  )


def make_rubiksnet_optimizer(
  learning_rate: float | optax.Schedule,
  *,
  momentum: float = 0.9,
  nesterov: bool = False,
  weight_decay: float = 1e-4,
  shift_lr_mult: float = 0.01,
  attention_lr_mult: float = 1.0,
  grad_norm: str | None = "per_channel",
  temporal_factor: float | str = 1.0,
  num_frames: int | None = None,
  height: int | None = None,
  base: Callable[[Any], optax.GradientTransformation] | None = None,
  labels: Callable[[chex.ArrayTree], chex.ArrayTree] = param_labels,
) -> optax.GradientTransformation:
  """The released RubiksNet optimizer policy as one multi_transform.

  weights:   + weight_decay·θ (coupled L2), then base(lr)
  no_decay:  base(lr)                        (BN scale/bias, biases)
  shift:     grad norm, then base(shift_lr_mult·lr), no decay
  attention: base(attention_lr_mult·lr), no decay (AQ logits)

  Args:
    learning_rate: float or optax schedule (the multipliers scale it).
    momentum: SGD momentum of the default base (0 = plain SGD).
    nesterov: Nesterov momentum for the default base.
    weight_decay: coupled L2 coefficient on "weights" leaves.
    shift_lr_mult: lr multiplier on shift leaves (0.01 in the released code).
    attention_lr_mult: lr multiplier on AQ attention logits.
    grad_norm: "per_channel", "thesis", or None (no normalisation).
    temporal_factor: λ for the normalisation, float or "auto".
    num_frames: T, for "auto".
    height: H, for "auto".
    base: lr -> GradientTransformation; default SGD with `momentum`.
    labels: params -> label tree over `LABELS` (default by leaf name).

  Returns:
    An optax GradientTransformation over the whole param tree.
  """
  if base is None:

    def base(lr):
      return optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)

  def scaled(mult):
    if callable(learning_rate):
      return lambda count: mult * learning_rate(count)
    return mult * learning_rate

  shift_chain = [base(scaled(shift_lr_mult))]
  if grad_norm is not None:
    shift_chain.insert(
      0,
      scale_by_shift_grad_norm(
        grad_norm, temporal_factor, num_frames=num_frames, height=height
      ),
    )
  return optax.multi_transform(
    {
      "weights": optax.chain(
        optax.add_decayed_weights(weight_decay), base(learning_rate)
      ),
      "no_decay": base(learning_rate),
      "shift": optax.chain(*shift_chain),
      "attention": base(scaled(attention_lr_mult)),
    },
    labels,
  )
