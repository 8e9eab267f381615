r"""RubiksShift: a learnable per-channel 3D (spatiotemporal) shift.

For x [N, C, T, H, W] and a shift theta [3, C] whose rows are the (t, h, w)
offsets of each channel, the output at position p reads the input at
p + theta_c by trilinear interpolation, with zeros outside the volume
(thesis Eqs. 6.4-6.6; spec §2.1). Per axis write a = floor(theta_c) and
delta = theta_c - a, with weights omega^0 = 1 - delta and omega^1 = delta:

  y[n,c,t,h,w] = sum_{k,i,j in {0,1}} omega_t^k omega_h^i omega_w^j
                 * x~[n, c, t+a_t+k, h+a_h+i, w+a_w+j]

where x~ is x extended by zeros. The corners are floor and floor + 1, so at
an integer shift the weight on floor + 1 is 0 and the derivative below is
the right derivative. The operator is separable, S = S_w S_h S_t, with each
factor a 1-D per-channel linear shift.

Gradients, with g = dL/dy (stride 1):
  * dL/dx = S_{-theta} g. The adjoint of a linear shift is the reverse
    shift: <S_theta x, g> = <x, S_{-theta} g>.
  * dL/dtheta_t,c = sum_{n,t,h,w} g * S_w S_h D_t x, where
    D_t x[t] = x~[t+a_t+1] - x~[t+a_t] is the forward difference at the
    shift. This is the axis difference interpolated on the other two axes;
    h and w are analogous. y is piecewise linear in theta, so this is exact
    and jumps at integer theta.

Modes:
  * "interpolate" (RubiksShift): the formulas above.
  * "quantize" (RubiksShift-IQ, §6.3.2): the forward shifts by
    round_half_up(theta) = floor(theta + 0.5) (the CUDA rule: frac < 0.5
    rounds down, else up). dL/dx is the reverse of the rounded shift.
    dL/dtheta is the continuous interpolated formula at the float theta
    (straight-through).

Stride s = (s_t, s_h, s_w) is a stride-1 shift followed by subsampling
y[..., ::s_t, ::s_h, ::s_w]. Its VJP is the stride-1 VJP applied to the
zero-dilated cotangent, which is exact and needs no scatter.

The VJP saves x and theta only and does not normalise the shift gradient.
The thesis' scaled gradient normalisation (Eqs. 6.9-6.10) belongs in an
optax transform, so `jax.test_util.check_grads` passes on this op.

Known divergence from the CUDA release, by design (spec §2.2 rule 4): at an
exactly integer shift the CUDA backward substitutes the un-halved two-sided
difference x[a+1] - x[a-1] and reads the a-1 slice for the other axes' terms.
Here the right derivative (corners a and a+1) is used everywhere.

Backends (`backend=`):
  * "xla": a `lax.fori_loop` over channels. Each iteration takes one
    channel's (N, 1, T, H, W) slab, applies the three 1-D gather/lerp passes
    (fused by XLA), and writes into the output with dynamic_update_slice.
    The backward runs the reverse shift and the three shift-gradient
    reductions in the same loop. On CPU this is the fastest correct form
    measured: all temporaries are one channel in size and stay in cache.
    Whole-array variants of the backward were 1.5-3x slower: fused gathers
    get transposed layouts and extra copies inside a larger jit, gradient
    products are materialised for the reductions, and every fresh
    full-size buffer pays for page faults. The forward is as fast as the
    fused whole-array gather. At (8, 72, 8, 56, 56) forward+backward is
    ~4.7x faster than autodiff of the gather reference, whose transpose is
    a scatter-add (experiments/benchmarks/rubiks_shift.py). The per-(n, c)
    partials are reduced in XLA, so the reduction is deterministic.
  * "pallas": the kernels in `rubiks_shift_pallas.py` (Triton on GPU). On
    CPU they run in the Pallas interpreter, which is for testing only.
  * "auto" (default): "pallas" on GPU, "xla" elsewhere (CPU, and TPU, which
    the Triton-style gather kernels do not target).

All paths accumulate in float32 (float64 for float64 inputs) and return
x.dtype. The shift gradient has theta's dtype.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrl_vision.ops import rubiks_shift_pallas

MODES = ("interpolate", "quantize")
BACKENDS = ("auto", "pallas", "xla")
_SPATIAL_AXES = (2, 3, 4)  # (T, H, W) in [N, C, T, H, W]


# ----------------------------------------------------------------------------
# Reference: the separable gather/lerp form (the oracle).
# ----------------------------------------------------------------------------


def _compute_dtype(x_dtype, shift_dtype):
  """float32 accumulation, or float64 when an input is float64."""
  return jnp.result_type(x_dtype, shift_dtype, jnp.float32)


def _axis_reads(x: jax.Array, shift: jax.Array, axis: int):
  """The two per-channel reads of a 1-D linear shift along `axis`.

  Args:
    x: [N, C, T, H, W].
    shift: [C] offsets along `axis`.
    axis: 2, 3 or 4.

  Returns:
    (lo, hi, delta): lo = x~[p + a], hi = x~[p + a + 1] along `axis`, both
    like x with zeros outside the axis, and delta = shift - a broadcast to
    [1, C, 1, 1, 1], where a = floor(shift).
  """
  length = x.shape[axis]
  floor = jnp.floor(shift)
  delta = shift - floor
  # Any |a| past the axis end reads only zeros; clipping keeps int32 safe.
  a = jnp.clip(floor, -length - 1, length).astype(jnp.int32)
  index_shape = [1] * 5
  index_shape[1] = -1
  index_shape[axis] = length
  base = jnp.arange(length, dtype=jnp.int32)[None, :] + a[:, None]  # [C, L]
  reads = []
  for k in (0, 1):
    idx = base + k
    valid = ((idx >= 0) & (idx < length)).reshape(index_shape)
    idx = jnp.clip(idx, 0, length - 1).reshape(index_shape)
    read = jnp.take_along_axis(x, idx, axis=axis)
    reads.append(jnp.where(valid, read, jnp.zeros((), x.dtype)))
  return reads[0], reads[1], delta.reshape(1, -1, 1, 1, 1)


def _lerp(x, shift, axis):
  """S along one axis. Each read is used once, so XLA fuses the chain of
  three axes into one 8-corner pass without recomputation."""
  lo, hi, delta = _axis_reads(x, shift, axis)
  return (1 - delta) * lo + delta * hi


def _diff(x, shift, axis):
  """D along one axis: d(S x)/d shift = x~[p + a + 1] - x~[p + a]."""
  lo, hi, _ = _axis_reads(x, shift, axis)
  return hi - lo


def _shift_f(x, shift):
  """S_shift x in x's (compute) dtype, no casts."""
  for row, axis in enumerate(_SPATIAL_AXES):
    x = _lerp(x, shift[row], axis)
  return x


def _theta_partials_f(x, g, shift):
  """Per-(n, c) shift-gradient partials [N, 3, C] in x's dtype."""
  t, h, w = shift[0], shift[1], shift[2]
  d_t = _lerp(_lerp(_diff(x, t, 2), h, 3), w, 4)
  d_h = _lerp(_diff(_lerp(x, t, 2), h, 3), w, 4)
  d_w = _diff(_lerp(_lerp(x, t, 2), h, 3), w, 4)
  return jnp.stack([(g * d).sum(_SPATIAL_AXES) for d in (d_t, d_h, d_w)], 1)


def reference_shift(x: jax.Array, shift: jax.Array) -> jax.Array:
  """The pure-jnp RubiksShift forward (stride 1, interpolate mode).

  Three 1-D per-channel linear shifts along T, H and W, each a pair of
  gathers at floor(shift) and floor(shift) + 1 with zeros outside the axis.

  Args:
    x: [N, C, T, H, W], float32, bfloat16 or float64.
    shift: [3, C], rows (t, h, w); output at p reads input at p + shift.

  Returns:
    y like x (accumulated in float32, or float64 for float64 inputs).
  """
  dtype = _compute_dtype(x.dtype, shift.dtype)
  return _shift_f(x.astype(dtype), shift.astype(dtype)).astype(x.dtype)


def reference_bwd_x(g: jax.Array, shift: jax.Array) -> jax.Array:
  """dL/dx = S_{-shift} g for a stride-1 shift (the adjoint)."""
  return reference_shift(g, -shift)


def reference_bwd_theta_partials(
  x: jax.Array, g: jax.Array, shift: jax.Array
) -> jax.Array:
  """Per-(n, c) partials of dL/dshift, [N, 3, C] float32 (float64 for f64).

  partials[n, 0, c] = sum_{t,h,w} g * S_w S_h D_t x (and likewise for h and
  w), i.e. the axis difference interpolated on the other two axes.
  """
  dtype = _compute_dtype(x.dtype, shift.dtype)
  return _theta_partials_f(
    x.astype(dtype), g.astype(dtype), shift.astype(dtype)
  )


def reference_bwd_theta(
  x: jax.Array, g: jax.Array, shift: jax.Array
) -> jax.Array:
  """dL/dshift [3, C] = reference_bwd_theta_partials(...).sum(0)."""
  return reference_bwd_theta_partials(x, g, shift).sum(0)


def round_half_up(shift: jax.Array) -> jax.Array:
  """RubiksShift-IQ rounding: floor(shift + 0.5) (CUDA: frac < .5 -> down)."""
  return jnp.floor(shift + 0.5)


# ----------------------------------------------------------------------------
# Integer shifts for the ablations.
# ----------------------------------------------------------------------------


def tsm_shift(num_channels: int, fold_div: int = 8) -> jax.Array:
  """TSM's fixed temporal shift as a [3, C] float32 RubiksShift init.

  The first C // fold_div channels read frame t + 1 (shift +1), the next
  C // fold_div read frame t - 1 (shift -1), the rest are not shifted
  (Lin et al. 2019; TSM's `out[:, :-1, :fold] = x[:, 1:, :fold]`).
  """
  fold = num_channels // fold_div
  t = np.zeros((num_channels,), np.float32)
  t[:fold] = 1.0
  t[fold : 2 * fold] = -1.0
  zeros = np.zeros_like(t)
  return jnp.asarray(np.stack([t, zeros, zeros]))


def shiftnet_shift(num_channels: int, kernel_size: int = 3) -> jax.Array:
  """ShiftNet's grouped spatial shift as a [3, C] float32 init.

  The channels are split into kernel_size**2 equal groups; group g shifts
  by (dh, dw) = (g // k - k // 2, g % k - k // 2), covering every offset
  of a k x k kernel (Wu et al. 2018). Channels left over when C is not a
  multiple of k**2 keep the centre (0, 0). No temporal shift.
  """
  k = kernel_size
  per_group = num_channels // (k * k)
  h = np.zeros((num_channels,), np.float32)
  w = np.zeros((num_channels,), np.float32)
  for group in range(k * k):
    sl = slice(group * per_group, (group + 1) * per_group)
    h[sl] = group // k - k // 2
    w[sl] = group % k - k // 2
  return jnp.asarray(np.stack([np.zeros_like(h), h, w]))


# ----------------------------------------------------------------------------
# XLA path: a loop over channels with one-channel temporaries.
# ----------------------------------------------------------------------------


def _out_size(length: int, stride: int) -> int:
  return math.ceil(length / stride)


def _dilate(g_sub: jax.Array, full_shape, stride) -> jax.Array:
  """Zero-dilates g [.., T', H', W'] back to [.., T, H, W] (the transpose
  of y[..., ::s_t, ::s_h, ::s_w]); lax.pad's interior padding, no scatter."""
  if tuple(stride) == (1, 1, 1):
    return g_sub
  config = [(0, 0, 0)] * (g_sub.ndim - 3)
  for length, sub, s in zip(
    full_shape[-3:], g_sub.shape[-3:], stride, strict=True
  ):
    config.append((0, length - ((sub - 1) * s + 1), s - 1))
  return lax.pad(g_sub, jnp.zeros((), g_sub.dtype), config)


def _subsample(y, stride):
  st, sh, sw = stride
  return y[:, :, ::st, ::sh, ::sw]


def _xla_forward(x, shift, stride):
  n, c, t, h, w = x.shape
  dtype = _compute_dtype(x.dtype, shift.dtype)
  out_shape = (n, c) + tuple(map(_out_size, (t, h, w), stride))
  shift = shift.astype(dtype)

  def body(ch, y):
    xs = lax.dynamic_slice_in_dim(x, ch, 1, axis=1).astype(dtype)
    ths = lax.dynamic_slice_in_dim(shift, ch, 1, axis=1)
    ys = _subsample(_shift_f(xs, ths), stride).astype(y.dtype)
    return lax.dynamic_update_slice_in_dim(y, ys, ch, axis=1)

  # Every element is overwritten. The NaN fill differs from the backward's
  # zero fill, so XLA cannot merge the two inits into one buffer and then
  # copy it into each loop.
  init = jnp.full(out_shape, jnp.nan, x.dtype)
  return lax.fori_loop(0, c, body, init)


def _xla_backward(x, g, shift_x, shift_theta, stride):
  """(dL/dx like x, partials [N, 3, C]) for cotangent g of the strided y."""
  n, c, t, h, w = x.shape
  dtype = _compute_dtype(x.dtype, shift_theta.dtype)
  neg_shift_x = -shift_x.astype(dtype)
  shift_theta = shift_theta.astype(dtype)

  def body(ch, carry):
    dx, partials = carry
    xs = lax.dynamic_slice_in_dim(x, ch, 1, axis=1).astype(dtype)
    gs = lax.dynamic_slice_in_dim(g, ch, 1, axis=1).astype(dtype)
    gs = _dilate(gs, x.shape, stride)
    ths_x = lax.dynamic_slice_in_dim(neg_shift_x, ch, 1, axis=1)
    ths = lax.dynamic_slice_in_dim(shift_theta, ch, 1, axis=1)
    dxs = _shift_f(gs, ths_x).astype(dx.dtype)
    ps = _theta_partials_f(xs, gs, ths)  # [N, 3, 1]
    return (
      lax.dynamic_update_slice_in_dim(dx, dxs, ch, axis=1),
      lax.dynamic_update_slice_in_dim(partials, ps, ch, axis=2),
    )

  init = (jnp.zeros(x.shape, x.dtype), jnp.zeros((n, 3, c), dtype))
  return lax.fori_loop(0, c, body, init)


# ----------------------------------------------------------------------------
# Pallas path.
# ----------------------------------------------------------------------------


def _interpret() -> bool:
  return jax.default_backend() == "cpu"


def _pallas_forward(x, shift, stride):
  y = rubiks_shift_pallas.fwd(x, shift, interpret=_interpret())
  return _subsample(y, stride)


def _pallas_backward(x, g, shift_x, shift_theta, stride):
  g = _dilate(g, x.shape, stride)
  dx = rubiks_shift_pallas.bwd_x(g, shift_x, interpret=_interpret())
  partials = rubiks_shift_pallas.bwd_theta(
    x, g, shift_theta, interpret=_interpret()
  )
  return dx, partials


def _resolve_backend(backend: str) -> str:
  if backend == "auto":
    return "pallas" if jax.default_backend() == "gpu" else "xla"
  if backend == "pallas" and jax.default_backend() not in ("gpu", "cpu"):
    raise ValueError(
      "backend='pallas' runs the Triton kernels on GPU or the Pallas "
      f"interpreter on CPU, not on {jax.default_backend()!r}; use 'xla'."
    )
  return backend


# ----------------------------------------------------------------------------
# The op.
# ----------------------------------------------------------------------------


def _forward(x, shift, quantize, stride, backend):
  if quantize:
    shift = round_half_up(shift)
  if backend == "pallas":
    return _pallas_forward(x, shift, stride)
  return _xla_forward(x, shift, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _shift_op(x, shift, quantize, stride, backend):
  return _forward(x, shift, quantize, stride, backend)


def _shift_op_fwd(x, shift, quantize, stride, backend):
  return _forward(x, shift, quantize, stride, backend), (x, shift)


def _shift_op_bwd(quantize, stride, backend, residuals, g):
  x, shift = residuals
  # IQ: dx reverses the rounded shift; dtheta is the continuous formula.
  shift_x = round_half_up(shift) if quantize else shift
  if backend == "pallas":
    dx, partials = _pallas_backward(x, g, shift_x, shift, stride)
  else:
    dx, partials = _xla_backward(x, g, shift_x, shift, stride)
  return dx.astype(x.dtype), partials.sum(0).astype(shift.dtype)


_shift_op.defvjp(_shift_op_fwd, _shift_op_bwd)


def _check_stride(stride) -> tuple[int, int, int]:
  try:
    stride = tuple(int(s) for s in stride)
  except TypeError:
    stride = ()
  if len(stride) != 3 or any(s < 1 for s in stride):
    raise ValueError(
      f"stride must be three positive ints (t, h, w), got {stride!r}"
    )
  return stride


def rubiks_shift(
  x: jax.Array,
  shift: jax.Array,
  *,
  mode: str = "interpolate",
  stride: tuple[int, int, int] = (1, 1, 1),
  backend: str = "auto",
) -> jax.Array:
  """RubiksShift with exact custom gradients.

  Args:
    x: [N, C, T, H, W] float32 or bfloat16 (float64 also works).
    shift: [3, C] float32, rows (t, h, w); the output at p reads the input
      at p + shift by trilinear interpolation, zero outside the volume.
    mode: "interpolate" (RubiksShift) or "quantize" (RubiksShift-IQ:
      forward by floor(shift + 0.5), straight-through shift gradient).
    stride: (s_t, s_h, s_w); the output is the stride-1 shift subsampled
      with [..., ::s_t, ::s_h, ::s_w], i.e. [N, C, ceil(T/s_t),
      ceil(H/s_h), ceil(W/s_w)].
    backend: "auto", "xla" or "pallas" (see the module docstring).

  Returns:
    y in x.dtype. Gradients flow to x and shift.
  """
  x = jnp.asarray(x)
  shift = jnp.asarray(shift)
  if x.ndim != 5:
    raise ValueError(f"x must be [N, C, T, H, W], got shape {x.shape}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be floating point, got {x.dtype}")
  if shift.shape != (3, x.shape[1]):
    raise ValueError(
      f"shift must be [3, C] = (3, {x.shape[1]}) for x of shape {x.shape}, "
      f"got {shift.shape}"
    )
  if not jnp.issubdtype(shift.dtype, jnp.floating):
    raise ValueError(f"shift must be floating point, got {shift.dtype}")
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  if backend not in BACKENDS:
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
  stride = _check_stride(stride)
  return _shift_op(
    x, shift, mode == "quantize", stride, _resolve_backend(backend)
  )
