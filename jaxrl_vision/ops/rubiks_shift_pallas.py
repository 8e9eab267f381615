"""Pallas kernels for RubiksShift: forward, input gradient, shift gradient.

The math is in `rubiks_shift.py`; this file only lays it out for a GPU.
Every kernel views one (n, c) volume as a flat row of L = T*H*W elements
(the (T, H, W) volume is contiguous in the (N, C, T, H, W) layout) and works
on power-of-two chunks of that row, because the Triton lowering requires
power-of-two tensor sizes:

  fwd       grid (N, C, L/B): chunk j of y[n, c] = sum over the 8 corners
            (k, i, j) of w_t^k w_h^i w_w^j x~[n, c, t+a_t+k, h+a_h+i, w+a_w+j].
            Each corner is a gather from the row at flat index
            ((t+a_t+k)*H + h+a_h+i)*W + w+a_w+j, masked where any coordinate
            leaves its axis (zero padding), with the index clamped so that no
            lane reads out of bounds.
  bwd_x     fwd(g, -theta) (the adjoint of a shift is the reverse shift).
  bwd_theta grid (N, C): one program per (n, c) loops over the chunks of its
            row and accumulates, in float32 vectors, g times the three
            derivative stencils of the same 8 corners
              d/dtheta_t: sum_{k,i,j} (2k-1) w_h^i w_w^j x~[...]
              (and likewise for h and w), then writes three scalars. The
            result is (N, 3, C) partials; the sum over N happens in XLA, so
            there are no atomics and the reduction is deterministic.

bf16 inputs are read as bf16 and accumulated in float32. Every function
takes `interpret`, so the CPU tests run the same kernels in the Pallas
interpreter. The kernels ask for the Triton lowering explicitly
(`pltriton.CompilerParams`; this JAX otherwise picks Mosaic GPU, which
rejects these gathers). TPU would need a different gather strategy, so the
op's `auto` backend uses XLA there. Status: on a CPU-only machine,
`jax.jit(fwd).trace(...).lower(lowering_platforms=("cuda",))` (and the same
for bwd_theta; f32 and bf16; thesis shape) lowers each kernel to one
`__gpu$xla.gpu.triton` custom call (fwd grid 8 x 72 x 49). `jax.export`
refuses to serialise that call, which has no compatibility guarantee. The
Triton IR has not yet been compiled to PTX or timed on a GPU.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

_MAX_BLOCK = 1024


def _block_size(length: int, max_block: int) -> int:
  """Largest power of two <= max_block that divides length, else max_block.

  A dividing block avoids padding the output row (an extra copy on GPU);
  shapes like the thesis layer (L = 8*56*56 = 2^9 * 49) get B = 512.
  """
  b = 1
  while b * 2 <= max_block and length % (b * 2) == 0:
    b *= 2
  return b if b >= 128 or b >= length else max_block


def _split(shift: jax.Array, dims: tuple[int, int, int], dtype):
  """Integer part a (3, C) int32 clipped so that index maths cannot
  overflow (a shift past an axis end reads only zeros either way), and the
  fraction d (3, C) in `dtype`."""
  lim = jnp.asarray(dims, dtype)[:, None]
  a = jnp.floor(shift.astype(dtype))
  d = shift.astype(dtype) - a
  a = jnp.clip(a, -lim - 1, lim).astype(jnp.int32)
  return a, d


def _corner_reads(row_ref, a, p, dims):
  """The 8 masked corner reads for flat output positions p [B].

  Returns {(k, i, j): value [B] in float32 (or wider)}.
  """
  t_size, h_size, w_size = dims
  length = t_size * h_size * w_size
  t = p // (h_size * w_size)
  h = (p // w_size) % h_size
  w = p % w_size
  in_row = p < length
  out = {}
  for k in (0, 1):
    tt = t + a[0] + k
    mt = in_row & (tt >= 0) & (tt < t_size)
    for i in (0, 1):
      hh = h + a[1] + i
      mh = mt & (hh >= 0) & (hh < h_size)
      for j in (0, 1):
        ww = w + a[2] + j
        m = mh & (ww >= 0) & (ww < w_size)
        idx = jnp.clip((tt * h_size + hh) * w_size + ww, 0, length - 1)
        out[(k, i, j)] = m, row_ref[idx]
  return out


def _fwd_kernel(a_ref, d_ref, x_ref, y_ref, *, dims, block, acc_dtype):
  c = pl.program_id(1)
  j = pl.program_id(2)
  a = [a_ref[r, c] for r in range(3)]
  d = [d_ref[r, c] for r in range(3)]
  p = j * block + jax.lax.iota(jnp.int32, block)
  acc = jnp.zeros((block,), acc_dtype)
  for (k, i, jj), (m, v) in _corner_reads(x_ref, a, p, dims).items():
    wgt = (
      (d[0] if k else 1 - d[0])
      * (d[1] if i else 1 - d[1])
      * (d[2] if jj else 1 - d[2])
    )
    acc = acc + jnp.where(m, v.astype(acc_dtype), 0) * wgt
  y_ref[...] = acc.astype(y_ref.dtype)


def _acc_dtype(dtype):
  return jnp.promote_types(dtype, jnp.float32)


@functools.partial(jax.jit, static_argnames=("interpret", "max_block"))
def fwd(
  x: jax.Array,
  shift: jax.Array,
  *,
  interpret: bool = False,
  max_block: int = _MAX_BLOCK,
) -> jax.Array:
  """y = S_shift(x): x [N, C, T, H, W], shift [3, C] -> y like x."""
  n, c, t, h, w = x.shape
  dims = (t, h, w)
  length = t * h * w
  block = _block_size(length, max_block)
  num_blocks = math.ceil(length / block)
  acc = _acc_dtype(x.dtype)
  a, d = _split(shift, dims, acc)
  y = pl.pallas_call(
    functools.partial(_fwd_kernel, dims=dims, block=block, acc_dtype=acc),
    out_shape=jax.ShapeDtypeStruct((n, c, num_blocks * block), x.dtype),
    grid=(n, c, num_blocks),
    in_specs=[
      pl.BlockSpec((3, c), lambda i, j, k: (0, 0)),
      pl.BlockSpec((3, c), lambda i, j, k: (0, 0)),
      pl.BlockSpec((None, None, length), lambda i, j, k: (i, j, 0)),
    ],
    out_specs=pl.BlockSpec((None, None, block), lambda i, j, k: (i, j, k)),
    compiler_params=pltriton.CompilerParams(num_warps=4),
    interpret=interpret,
  )(a, d, x.reshape(n, c, length))
  return y[:, :, :length].reshape(x.shape)


def bwd_x(
  g: jax.Array,
  shift: jax.Array,
  *,
  interpret: bool = False,
  max_block: int = _MAX_BLOCK,
) -> jax.Array:
  """dL/dx = S_{-shift}(g) (stride 1): the adjoint of the shift."""
  return fwd(g, -shift, interpret=interpret, max_block=max_block)


def _bwd_theta_kernel(
  a_ref, d_ref, x_ref, g_ref, pt_ref, ph_ref, pw_ref, *, dims, block, acc_dtype
):
  c = pl.program_id(1)
  a = [a_ref[r, c] for r in range(3)]
  d = [d_ref[r, c] for r in range(3)]
  wts = [(1 - d[r], d[r]) for r in range(3)]
  sign = (-1.0, 1.0)
  length = dims[0] * dims[1] * dims[2]
  num_blocks = math.ceil(length / block)

  def body(b, accs):
    p = b * block + jax.lax.iota(jnp.int32, block)
    in_row = p < length
    gv = jnp.where(
      in_row, g_ref[jnp.minimum(p, length - 1)].astype(acc_dtype), 0
    )
    st = sh = sw = jnp.zeros((block,), acc_dtype)
    for (k, i, j), (m, v) in _corner_reads(x_ref, a, p, dims).items():
      v = jnp.where(m, v.astype(acc_dtype), 0)
      st = st + v * (sign[k] * wts[1][i] * wts[2][j])
      sh = sh + v * (wts[0][k] * sign[i] * wts[2][j])
      sw = sw + v * (wts[0][k] * wts[1][i] * sign[j])
    return (accs[0] + gv * st, accs[1] + gv * sh, accs[2] + gv * sw)

  zeros = jnp.zeros((block,), acc_dtype)
  acc_t, acc_h, acc_w = jax.lax.fori_loop(
    0, num_blocks, body, (zeros, zeros, zeros)
  )
  pt_ref[...] = jnp.sum(acc_t)
  ph_ref[...] = jnp.sum(acc_h)
  pw_ref[...] = jnp.sum(acc_w)


@functools.partial(jax.jit, static_argnames=("interpret", "max_block"))
def bwd_theta(
  x: jax.Array,
  g: jax.Array,
  shift: jax.Array,
  *,
  interpret: bool = False,
  max_block: int = _MAX_BLOCK,
) -> jax.Array:
  """Per-(n, c) shift-gradient partials [N, 3, C] (float32 or wider).

  partials[n, r, c] = sum_{t,h,w} g[n,c,t,h,w] * dy[n,c,t,h,w]/dshift[r,c];
  dL/dshift = partials.sum(0).
  """
  n, c, t, h, w = x.shape
  dims = (t, h, w)
  length = t * h * w
  block = min(_block_size(length, max_block), max_block)
  acc = _acc_dtype(x.dtype)
  a, d = _split(shift, dims, acc)
  row = pl.BlockSpec((None, None, length), lambda i, j: (i, j, 0))
  scalar = pl.BlockSpec((None, None), lambda i, j: (i, j))
  pt, ph, pw = pl.pallas_call(
    functools.partial(_bwd_theta_kernel, dims=dims, block=block, acc_dtype=acc),
    out_shape=[jax.ShapeDtypeStruct((n, c), acc)] * 3,
    grid=(n, c),
    in_specs=[
      pl.BlockSpec((3, c), lambda i, j: (0, 0)),
      pl.BlockSpec((3, c), lambda i, j: (0, 0)),
      row,
      row,
    ],
    out_specs=[scalar] * 3,
    compiler_params=pltriton.CompilerParams(num_warps=4),
    interpret=interpret,
  )(a, d, x.reshape(n, c, length), g.reshape(n, c, length))
  return jnp.stack([pt, ph, pw], axis=1)
