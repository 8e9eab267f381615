"""RubiksNet: a pre-activation ResNet of learnable 3D shifts + 1×1 convs.

Spec: /work/shared/specs/secant-rubiksnet.md §3.1 (architecture), §3.2
(inflation), §3.4 (efficiency), §4.1 items 2–6. The layout follows the
released code (StanfordVL/RubiksNet, `backbone.py`, `models.py`).

  video [N, T, H, W, 3]  (uint8 is scaled to [0, 1]; normalise upstream)
    fold frames into the batch: [N·T, H, W, 3]
    stem   Conv3×3 stride 2, no bias, 3 → w
    layer0 1 block (w, stride 1)
    layer1 repeats[0] blocks (w, stride 2)    first block of a layer strides
    layer2 repeats[1] blocks (2w, stride 2)
    layer3 repeats[2] blocks (4w, stride 2)
    layer4 repeats[3] blocks (8w, stride 2)
    ReLU(BN) → global average pool → FC(8w → classes), per frame
    logits averaged over T (TSN/TSM consensus)   → [N, classes]

Block (pre-activation, expansion 1 so mid = out):
  a = relu(bn1(x));  sc = x if stride == 1 and in == out else conv1x1_s(a)
  [AQ: a = AttentionShift(a)]          temporal-only, before conv_in
  h = relu(bn2(conv1x1(a)))            in → mid
  h = RubiksShift(h, stride (1, s, s))  learnable (3, C) shift, `ops.rubiks_shift`
  [h = SE(h), reduction 12]             Small tier only
  return conv1x1(h) + sc               mid → out

BN is 2D over the N·T frames. Only the shift sees time: it unfolds
[N·T, H, W, C] to the op's [N, C, T, H, W] and back.

Tiers (released code; params at 174 classes verified by the tests):
  tiny   w 54, repeats (3, 4, 6, 3), no SE    1.90M
  small  w 72, repeats (3, 4, 6, 3), SE       3.60M
  medium w 72, repeats (3, 4, 23, 3)          6.19M
  large  w 72, repeats (3, 8, 36, 3)          8.54M
  nano   w 8 (8–16 via `width`), repeats (1, 1, 1, 1): CPU learning checks
         and a visual encoder of stacked frames (`num_classes=None`).
"repeats" counts layer1..layer4 blocks; layer0's one block comes on top.

Shift parameters. The `shift` leaf of a block holds only the *learned* rows,
so its row count says what it is (the convention `optim.shift_grad_norm`
reads): [3, C] = (t, h, w); [2, C] = (h, w); [1, C] = (t). Rows that are not
learned are constants:
  temporal_shift  "learned"    t row learned (RubiksNet, 'rubiks3d')
                  "attention"  RubiksShift-AQ ('rubiks3d-aq'): t row 0 in the
                               shift, an `AttentionShift` before conv_in
                  "fixed"      TSM: C/8 channels read t+1, C/8 read t−1
                  "zero"       no temporal mixing: the per-frame TSN-like
                               baseline, and the 2D-shift network that
                               `inflate_2d_to_3d` inflates (same param tree)
  spatial_shift   "learned"    (h, w) rows learned, init U(−1, 1)
                  "fixed"      ShiftNet: C/9 channels per 3×3 offset
  shift_mode      "interpolate" (RS) or "quantize" (IQ, straight-through) for
                  the learned rows; fixed rows are integers already.
From-scratch learned t rows use `temporal_init` (the released default is
"uni1" = U(−1, 1)); see `temporal_shift_init` for the modes.

Init (released code): conv N(0, sqrt(2/(k²·out))); BN scale 1, bias 0; FC
weights N(0, 0.01), bias 0 (the spec; the released `new_fc` kept torch's
default); SE Dense layers torch's default U(±1/sqrt(fan_in)).

FLOPs (`count_flops`). TSM protocol: multiply-accumulates of the stem, the
1×1 convs, the SE FCs and the FC (a fixed or integer shift is a gather: 0).
That alone gives 3.70 / 6.51 / 10.93 / 15.35 G for 8 frames at 224², 3–6%
under the reported 3.9 / 6.8 / 11.2 / 15.8 G. The rest is counted as one op
per element per elementwise step, which lands every tier within 0.5%:
  shift        1 per output element per learned interpolated axis (the
               separable form is one lerp a + δ(b − a) per axis); so 3 for
               RS, 2 for an AQ/2D spatial shift, 0 for IQ/fixed/zero
  attention    3 per element (the 3 taps) while soft; 0 once hardened
  batch_norm   2 per element (scale, shift) for bn1, bn2, bn_last
  relu         1 per element after each BN
  residual     1 per output element of each block
  se_scale     2 per element: SE's average pool and its channel scaling
  pool         global average pool, and the temporal average of the logits
The same shift rule makes the layer-level FLOP ratios of `layer_costs`
(3×3×3 conv or TSM vs RubiksShift + 1×1, 72 ch at (8, 112, 112)) equal the
param ratios 25.92 and 8.64, as the thesis's "~25x fewer FLOPs/params".
"""

import functools
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl_vision import types
from jaxrl_vision.ops import attention_shift as aq
from jaxrl_vision.ops import rubiks_shift as rs

TEMPORAL_SHIFTS = ("learned", "attention", "fixed", "zero")
SPATIAL_SHIFTS = ("learned", "fixed")
SHIFT_MODES = ("interpolate", "quantize")
SE_REDUCTION = 12
TSM_FOLD = 8  # TSM shifts C/8 channels each way
SHIFTNET_KERNEL = 3  # ShiftNet: one channel group per 3×3 offset


class TierSpec(NamedTuple):
  width: int  # w: channels of the stem, layer0 and layer1
  repeats: tuple[int, int, int, int]  # blocks of layer1..layer4
  use_se: bool  # squeeze-excitation after the shift


TIERS: dict[str, TierSpec] = {
  "tiny": TierSpec(54, (3, 4, 6, 3), False),
  "small": TierSpec(72, (3, 4, 6, 3), True),
  "medium": TierSpec(72, (3, 4, 23, 3), False),
  "large": TierSpec(72, (3, 8, 36, 3), False),
  "nano": TierSpec(8, (1, 1, 1, 1), False),
}


class BlockSpec(NamedTuple):
  name: str  # "layer{l}_{i}"
  in_channels: int
  out_channels: int  # = mid channels (expansion 1)
  stride: int  # spatial stride of the block (first block of layers 1-4)


def block_specs(width: int, repeats: Sequence[int]) -> list[BlockSpec]:
  """Every block in order: layer0 (1 block, stride 1), layer1..4."""
  layers = [(width, 1, 1)] + [
    (width * m, r, 2) for m, r in zip((1, 2, 4, 8), repeats, strict=True)
  ]
  specs, in_channels = [], width
  for index, (out_channels, repeat, stride) in enumerate(layers):
    for i in range(repeat):
      specs.append(
        BlockSpec(
          f"layer{index}_{i}",
          in_channels,
          out_channels,
          stride if i == 0 else 1,
        )
      )
      in_channels = out_channels
  return specs


# --------------------------------------------------------------- shift init


def tsm_temporal_shift(num_channels: int) -> jax.Array:
  """TSM's fixed pattern [C]: first C/8 → +1 (read t+1), next C/8 → −1."""
  fold = num_channels // TSM_FOLD
  theta = jnp.zeros((num_channels,), jnp.float32)
  return theta.at[:fold].set(1.0).at[fold : 2 * fold].set(-1.0)


def shiftnet_spatial_shift(num_channels: int) -> jax.Array:
  """ShiftNet's fixed pattern [2, C] (rows h, w): C//9 channels per offset.

  Groups take the 3×3 offsets (dh, dw) ∈ {−1, 0, 1}² in row-major order;
  the C mod 9 leftover channels are not shifted.
  """
  k = SHIFTNET_KERNEL
  group = num_channels // (k * k)
  offsets = [(dh, dw) for dh in range(-1, 2) for dw in range(-1, 2)]
  rows = [dh for dh, _ in offsets for _ in range(group)]
  cols = [dw for _, dw in offsets for _ in range(group)]
  pad = num_channels - len(rows)
  return jnp.array([rows + [0] * pad, cols + [0] * pad], jnp.float32)


def parse_temporal_init(mode: str) -> tuple[str, float]:
  """("zero" | "tsm" | "tsm-g" | "uni", parameter); raises on bad modes."""
  if mode in ("zero", "tsm"):
    return mode, 0.0
  match = re.fullmatch(r"(tsm-g|uni)(\d+(?:\.\d*)?(?:e-?\d+)?)", mode)
  if match is None:
    raise ValueError(
      f"Unknown temporal init {mode!r}; valid: 'tsm', 'tsm-g<sigma>', "
      "'uni<magnitude>', 'zero'."
    )
  kind, value = match.group(1), float(match.group(2))
  if kind == "uni" and value <= 0:
    raise ValueError(f"uni<m> needs m > 0, got {mode!r}.")
  return kind, value


def temporal_shift_init(
  mode: str, key: jax.Array | None, num_channels: int
) -> jax.Array:
  """A [C] temporal shift row for init and 2D→3D inflation (released modes).

  "tsm":       TSM pattern (C/8 at +1, C/8 at −1, rest 0)
  "tsm-g<σ>":  TSM pattern + N(0, σ²) noise (σ = 0 means 1e-2)
  "uni<m>":    U(−m, m) ("uni1" is the from-scratch default)
  "zero":      all 0
  """
  kind, value = parse_temporal_init(mode)
  if kind == "zero":
    return jnp.zeros((num_channels,), jnp.float32)
  if kind == "tsm":
    return tsm_temporal_shift(num_channels)
  if key is None:
    raise ValueError(f"Temporal init {mode!r} is random and needs a key.")
  if kind == "tsm-g":
    stddev = value or 1e-2
    noise = stddev * jax.random.normal(key, (num_channels,), jnp.float32)
    return tsm_temporal_shift(num_channels) + noise
  return jax.random.uniform(
    key, (num_channels,), jnp.float32, minval=-value, maxval=value
  )


# ------------------------------------------------------------------ modules

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_torch_linear_init = nn.initializers.variance_scaling(
  1.0 / 3.0, "fan_in", "uniform"
)
_fc_init = nn.initializers.normal(0.01)


def _conv1x1(features: int, stride: int, name: str) -> nn.Conv:
  return nn.Conv(
    features,
    (1, 1),
    strides=stride,
    padding="VALID",
    use_bias=False,
    kernel_init=_conv_init,
    name=name,
  )


def _unfold(x: jax.Array, num_frames: int) -> jax.Array:
  """[N·T, H, W, C] -> [N, C, T, H, W] (the shift op's layout)."""
  nt, h, w, c = x.shape
  return x.reshape(nt // num_frames, num_frames, h, w, c).transpose(
    0, 4, 1, 2, 3
  )


def _fold(x: jax.Array) -> jax.Array:
  """[N, C, T, H, W] -> [N·T, H, W, C]."""
  n, c, t, h, w = x.shape
  return x.transpose(0, 2, 3, 4, 1).reshape(n * t, h, w, c)


class RubiksShift(nn.Module):
  """A RubiksShift layer on folded frames; `shift` holds the learned rows."""

  stride: int = 1
  temporal_shift: str = "learned"  # "learned" | "fixed" | "zero"
  spatial_shift: str = "learned"
  shift_mode: str = "interpolate"
  temporal_init: str = "uni1"

  @nn.compact
  def __call__(self, x: jax.Array, num_frames: int) -> jax.Array:
    channels = x.shape[-1]
    learn_t = self.temporal_shift == "learned"
    learn_hw = self.spatial_shift == "learned"

    def init(key, shape, dtype=jnp.float32):
      del shape
      key_t, key_hw = jax.random.split(key)
      rows = []
      if learn_t:
        rows.append(temporal_shift_init(self.temporal_init, key_t, channels))
      if learn_hw:
        rows.extend(jax.random.uniform(key_hw, (2, channels), dtype, -1.0, 1.0))
      return jnp.stack(rows).astype(dtype)

    num_rows = int(learn_t) + 2 * int(learn_hw)
    learned = (
      self.param("shift", init, (num_rows, channels)) if num_rows else None
    )
    if learn_t:
      row_t = learned[:1]
    elif self.temporal_shift == "fixed":
      row_t = tsm_temporal_shift(channels)[None]
    else:
      row_t = jnp.zeros((1, channels), jnp.float32)
    rows_hw = learned[-2:] if learn_hw else shiftnet_spatial_shift(channels)
    shift = jnp.concatenate([row_t, rows_hw], axis=0)  # [3, C] rows t, h, w
    y = rs.rubiks_shift(
      _unfold(x, num_frames),
      shift,
      mode=self.shift_mode,
      stride=(1, self.stride, self.stride),
    )
    return _fold(y)


class AttentionShift(nn.Module):
  """RubiksShift-AQ's temporal attention shift on folded frames."""

  @nn.compact
  def __call__(
    self, x: jax.Array, num_frames: int, temperature, hard: bool
  ) -> jax.Array:
    nt, h, w, c = x.shape
    logits = self.param(aq.ATTENTION_PARAM, aq.init_attention_logits, (c, 3))
    if hard:
      weights = aq.hard_attention(logits)
    else:
      weights = aq.attention_weights(logits, temperature)
    video = x.reshape(nt // num_frames, num_frames, h, w, c)
    return aq.attention_shift(video, weights, layout="NTHWC").reshape(x.shape)


class SqueezeExcite(nn.Module):
  """x · sigmoid(W2 relu(W1 avgpool(x))), per frame, no biases."""

  reduction: int = SE_REDUCTION

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    s = jnp.mean(x, axis=(1, 2))  # [N·T, C]
    s = nn.Dense(
      channels // self.reduction,
      use_bias=False,
      kernel_init=_torch_linear_init,
      name="reduce",
    )(s)
    s = nn.Dense(
      channels, use_bias=False, kernel_init=_torch_linear_init, name="expand"
    )(nn.relu(s))
    return x * nn.sigmoid(s)[:, None, None, :]


class RubiksBlock(nn.Module):
  """The pre-activation block (module docstring)."""

  in_channels: int
  out_channels: int
  stride: int
  use_se: bool
  temporal_shift: str
  spatial_shift: str
  shift_mode: str
  temporal_init: str
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x, num_frames, *, train, temperature, hard_attention):
    batch_norm = functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=0.9,  # torch's momentum 0.1
      epsilon=1e-5,
      axis_name=self.bn_axis_name,
    )
    out = nn.relu(batch_norm(name="bn1")(x))
    if self.stride == 1 and self.in_channels == self.out_channels:
      shortcut = x
    else:
      shortcut = _conv1x1(self.out_channels, self.stride, "shortcut")(out)
    if self.temporal_shift == "attention":
      out = AttentionShift(name="attention_shift")(
        out, num_frames, temperature, hard_attention
      )
    out = _conv1x1(self.out_channels, 1, "conv_in")(out)
    out = nn.relu(batch_norm(name="bn2")(out))
    out = RubiksShift(
      stride=self.stride,
      temporal_shift=(
        "zero" if self.temporal_shift == "attention" else self.temporal_shift
      ),
      spatial_shift=self.spatial_shift,
      shift_mode=self.shift_mode,
      temporal_init=self.temporal_init,
      name="rubiks_shift",
    )(out, num_frames)
    if self.use_se:
      out = SqueezeExcite(name="se")(out)
    out = _conv1x1(self.out_channels, 1, "conv_out")(out)
    return out + shortcut


class RubiksNet(nn.Module):
  """video [N, T, H, W, 3] -> logits [N, classes] (or features [N, 8w]).

  Call with `train` (BN batch statistics; pass mutable=["batch_stats"]),
  `temperature` (AQ softmax τ, may be traced) and `hard_attention` (AQ
  argmax-hardened integer temporal shifts, static).
  """

  width: int
  repeats: tuple[int, int, int, int]
  num_classes: int | None  # None: return the T-averaged pooled features
  use_se: bool = False
  temporal_shift: str = "learned"
  spatial_shift: str = "learned"
  shift_mode: str = "interpolate"
  temporal_init: str = "uni1"
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(
    self,
    video: jax.Array,
    *,
    train: bool = False,
    temperature: float | jax.Array = 1.0,
    hard_attention: bool = False,
  ) -> jax.Array:
    chex.assert_rank(video, 5)
    n, t, h, w, c = video.shape
    x = video
    if jnp.issubdtype(x.dtype, jnp.integer):
      x = x.astype(jnp.float32) / 255.0
    x = x.reshape(n * t, h, w, c)
    x = nn.Conv(
      self.width,
      (3, 3),
      strides=2,
      padding=((1, 1), (1, 1)),
      use_bias=False,
      kernel_init=_conv_init,
      name="stem",
    )(x)
    for spec in block_specs(self.width, self.repeats):
      x = RubiksBlock(
        in_channels=spec.in_channels,
        out_channels=spec.out_channels,
        stride=spec.stride,
        use_se=self.use_se,
        temporal_shift=self.temporal_shift,
        spatial_shift=self.spatial_shift,
        shift_mode=self.shift_mode,
        temporal_init=self.temporal_init,
        bn_axis_name=self.bn_axis_name,
        name=spec.name,
      )(
        x,
        t,
        train=train,
        temperature=temperature,
        hard_attention=hard_attention,
      )
    x = nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      axis_name=self.bn_axis_name,
      name="bn_last",
    )(x)
    x = jnp.mean(nn.relu(x), axis=(1, 2))  # [N·T, 8w]
    if self.num_classes is None:
      return x.reshape(n, t, -1).mean(axis=1)
    logits = nn.Dense(self.num_classes, kernel_init=_fc_init, name="fc")(x)
    return logits.reshape(n, t, -1).mean(axis=1)  # temporal consensus


def make_rubiksnet_module(
  tier: str = "nano",
  num_classes: int | None = 174,
  *,
  width: int | None = None,
  temporal_shift: str = "learned",
  spatial_shift: str = "learned",
  shift_mode: str = "interpolate",
  temporal_init: str = "uni1",
  bn_axis_name: str | None = None,
) -> RubiksNet:
  """The linen module of a tier; `width` overrides the tier's (nano: 8-16)."""
  if tier not in TIERS:
    raise ValueError(f"Unknown tier {tier!r}; valid tiers: {tuple(TIERS)}.")
  for value, valid, what in (
    (temporal_shift, TEMPORAL_SHIFTS, "temporal_shift"),
    (spatial_shift, SPATIAL_SHIFTS, "spatial_shift"),
    (shift_mode, SHIFT_MODES, "shift_mode"),
  ):
    if value not in valid:
      raise ValueError(f"Unknown {what} {value!r}; valid: {valid}.")
  parse_temporal_init(temporal_init)  # raises on a bad mode
  spec = TIERS[tier]
  return RubiksNet(
    width=spec.width if width is None else width,
    repeats=spec.repeats,
    num_classes=num_classes,
    use_se=spec.use_se,
    temporal_shift=temporal_shift,
    spatial_shift=spatial_shift,
    shift_mode=shift_mode,
    temporal_init=temporal_init,
    bn_axis_name=bn_axis_name,
  )


def make_rubiksnet(tier: str = "nano", num_classes: int | None = 174, **kw):
  """Network(init, apply) of `make_rubiksnet_module(tier, num_classes, **kw)`.

  init(key, video) -> {"params", "batch_stats"};
  apply(variables, video, train=..., temperature=..., hard_attention=...,
        mutable=[...]) as flax's `Module.apply`.
  """
  module = make_rubiksnet_module(tier, num_classes, **kw)
  return types.Network(init=module.init, apply=module.apply)


def attention_weights(
  params: chex.ArrayTree, temperature, hard: bool = False
) -> list[jax.Array]:
  """Every AQ layer's [C, 3] weights, in tree order (for `aq.budget_loss`).

  The weights depend on the params and τ only, so the budget loss needs no
  forward pass.
  """
  logits = aq.find_attention_logits(params)
  if hard:
    return [aq.hard_attention(x) for x in logits]
  return [aq.attention_weights(x, temperature) for x in logits]


# ------------------------------------------------------------------ inflation


def inflate_2d_to_3d(
  params_2d: chex.ArrayTree,
  params_3d_template: chex.ArrayTree,
  temporal_init: str = "tsm",
  key: jax.Array | None = None,
) -> chex.ArrayTree:
  """A 3D network's params from a 2D-shift network's ("inflation", §3.2).

  The 2D network is this module with temporal_shift="zero" (shift leaves
  [2, C] = (h, w)); the template is any 3D network's init (or eval_shape)
  with the same widths. For every leaf of the template:
    * a [3, C] `shift` whose 2D twin is [2, C]: rows (h, w) are copied and
      the t row is drawn with `temporal_shift_init(temporal_init)`;
    * any other leaf present in the 2D tree is copied (shapes must match);
    * a leaf absent from the 2D tree (AQ attention logits) keeps the
      template's value.
  Works on a params tree or a whole variables dict (batch_stats too).
  """
  source = {
    jax.tree_util.keystr(path): leaf
    for path, leaf in jax.tree_util.tree_leaves_with_path(params_2d)
  }
  used = set()
  counter = [0]

  def inflate(path, template):
    name = jax.tree_util.keystr(path)
    if name not in source:
      return template
    used.add(name)
    leaf = source[name]
    if leaf.shape == template.shape:
      return jnp.asarray(leaf, template.dtype)
    last = path[-1]
    is_shift = getattr(last, "key", None) == "shift"
    if not (is_shift and leaf.shape[0] == 2 and template.shape[0] == 3):
      raise ValueError(
        f"Cannot inflate {name}: 2D shape {leaf.shape}, 3D {template.shape}."
      )
    leaf_key = None if key is None else jax.random.fold_in(key, counter[0])
    counter[0] += 1
    row_t = temporal_shift_init(temporal_init, leaf_key, template.shape[1])
    return jnp.concatenate([row_t[None], leaf], axis=0).astype(template.dtype)

  out = jax.tree_util.tree_map_with_path(inflate, params_3d_template)
  unused = sorted(set(source) - used)
  if unused:
    raise ValueError(f"2D leaves with no place in the 3D tree: {unused}.")
  return out


# ------------------------------------------------------------------ counting


def _conv_out(size: int, stride: int, kernel: int = 1, pad: int = 0) -> int:
  return (size + 2 * pad - kernel) // stride + 1


def count_params(module: RubiksNet) -> int:
  """Analytic parameter count (BN scale+bias are params; stats are not)."""
  w = module.width
  learned_rows = int(module.temporal_shift == "learned") + 2 * int(
    module.spatial_shift == "learned"
  )
  total = 27 * w  # stem
  for spec in block_specs(w, module.repeats):
    cin, cout = spec.in_channels, spec.out_channels
    total += 2 * cin + cin * cout + 2 * cout + learned_rows * cout + cout * cout
    if module.temporal_shift == "attention":
      total += 3 * cin
    if module.use_se:
      total += 2 * cout * (cout // SE_REDUCTION)
    if spec.stride != 1 or cin != cout:
      total += cin * cout
  total += 2 * 8 * w  # bn_last
  if module.num_classes is not None:
    total += 8 * w * module.num_classes + module.num_classes
  return total


def count_flops(
  module: RubiksNet,
  *,
  num_frames: int = 8,
  image_size: int = 224,
  hard_attention: bool = False,
) -> dict[str, int]:
  """Per-video FLOP breakdown for one clip (module docstring rules).

  Returns:
    {"stem", "conv1x1", "se", "fc"} (MACs, the TSM protocol), "tsm_protocol"
    (their sum), {"shift", "attention", "batch_norm", "relu", "residual",
    "se_scale", "pool"} (elementwise ops) and "total".
  """
  w = module.width
  interp_axes = 0
  if module.shift_mode == "interpolate":
    interp_axes = int(module.temporal_shift == "learned") + 2 * int(
      module.spatial_shift == "learned"
    )
  side = _conv_out(image_size, 2, kernel=3, pad=1)
  c = dict.fromkeys(
    (
      "stem conv1x1 se fc shift attention batch_norm relu residual se_scale "
      "pool"
    ).split(),
    0,
  )
  c["stem"] = 27 * w * side * side
  for spec in block_specs(w, module.repeats):
    cin, cout = spec.in_channels, spec.out_channels
    side_out = _conv_out(side, spec.stride)
    px_in, px_out = side * side, side_out * side_out
    c["conv1x1"] += cin * cout * px_in + cout * cout * px_out
    if spec.stride != 1 or cin != cout:
      c["conv1x1"] += cin * cout * px_out
    if module.use_se:
      c["se"] += 2 * cout * (cout // SE_REDUCTION)
      c["se_scale"] += 2 * cout * px_out
    if module.temporal_shift == "attention" and not hard_attention:
      c["attention"] += 3 * cin * px_in
    c["shift"] += interp_axes * cout * px_out
    c["batch_norm"] += 2 * (cin * px_in + cout * px_in)
    c["relu"] += cin * px_in + cout * px_in
    c["residual"] += cout * px_out
    side = side_out
  c["batch_norm"] += 2 * 8 * w * side * side
  c["relu"] += 8 * w * side * side
  c["pool"] += 8 * w * side * side
  if module.num_classes is not None:
    c["fc"] = 8 * w * module.num_classes
  flops = {k: v * num_frames for k, v in c.items()}
  if module.num_classes is not None:
    flops["pool"] += module.num_classes * num_frames  # logit average
  flops["tsm_protocol"] = sum(flops[k] for k in ("stem", "conv1x1", "se", "fc"))
  flops["total"] = sum(v for k, v in flops.items() if k != "tsm_protocol")
  return flops


class LayerCost(NamedTuple):
  params: int
  flops: int  # MACs + the shift's per-axis lerps (module docstring)


def layer_costs(
  channels: int = 72, num_frames: int = 8, height: int = 112, width: int = 112
) -> dict[str, LayerCost]:
  """Layer-level comparison of §3.4 (Figs. 6.7/6.8), C → C channels.

  "conv3d": 3×3×3 conv; "tsm": temporal shift (free) + 3×3 conv;
  "rubiks_shift": learnable 3D shift (3 params per channel, 3 ops per
  element) + 1×1 conv. No biases.
  """
  voxels = num_frames * height * width
  cc = channels * channels
  costs = {"conv3d": 27 * cc, "tsm": 9 * cc, "rubiks_shift": cc + 3 * channels}
  return {k: LayerCost(params=v, flops=v * voxels) for k, v in costs.items()}


def layer_ratios(**kw) -> dict[str, Fraction]:
  """Exact param (= FLOP) ratios of conv3d and tsm over rubiks_shift."""
  costs = layer_costs(**kw)
  base = costs["rubiks_shift"].params
  return {k: Fraction(costs[k].params, base) for k in ("conv3d", "tsm")}
