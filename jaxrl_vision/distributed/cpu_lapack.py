"""Batched Cholesky and triangular solves on XLA:CPU that cannot deadlock.

jaxlib 0.10.2's LAPACK kernels split a large enough batch into chunks,
schedule them on XLA's intra-op thread pool and block until they finish
(`ParallelBatchMap`, jaxlib/cpu/lapack_kernels.cc). XLA:CPU runs independent
operations of one program, and the programs of several CPU devices, on that
same pool; when every pool thread is such a blocked caller, nothing is left to
run the chunks and the program never returns. MJX's step factorises the mass
matrix and the Newton solver's Hessian of every world (`cho_factor`,
`cho_solve`); an evaluation of 150 worlds of the 7-DoF arm or of Bimanual
Lifting hung on the 2 threads of a 2-core CPU, and `tests/distributed/
cpu_lapack_test.py` reproduces it with four independent factorisations on one
device.

`install()` gives `cholesky_p` and `triangular_solve_p` CPU lowerings that call
the same LAPACK kernels on chunks small enough for jaxlib to run inline
(batch x cost below its 2e5-FLOP threshold), one chunk after another in a
`lax.map`. Each matrix goes through the same LAPACK routine as before, so the
results are bitwise the same; only the pool's help on one huge batch is lost,
which the vmapped worlds' other operations never waited for. GPUs and TPUs keep
their own lowerings.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.mlir import ir
from jax.extend.mlir.dialects import stablehlo
from jax.interpreters import mlir
from jax.lax import linalg
from jaxlib import lapack

# jaxlib 0.10.2 GetLapackBatchChunkSize: a batch whose FLOP estimate is below
# this runs inline on the calling thread.
MIN_PARALLEL_WORK = 200_000
LAPACK_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def chunk_size(cost_per_matrix: int) -> int:
  """The most matrices one LAPACK call may get and still run inline."""
  return max(1, (MIN_PARALLEL_WORK - 1) // max(1, cost_per_matrix))


def map_chunks(fn, operands, num_matrix_dims: int, chunk: int):
  """`fn(*operands)` over the operands' shared leading batch dims, at most
  `chunk` batch elements per call, in order (a `lax.map` over whole chunks
  and one call for the remainder); `fn` takes and returns [B, ...] arrays."""
  batch_shape = operands[0].shape[: operands[0].ndim - num_matrix_dims]
  total = int(np.prod(batch_shape, dtype=np.int64))
  flat = [x.reshape((total,) + x.shape[len(batch_shape) :]) for x in operands]
  if total <= chunk:
    outs = fn(*flat)
  else:
    whole, rest = divmod(total, chunk)
    head = [
      x[: whole * chunk].reshape((whole, chunk) + x.shape[1:]) for x in flat
    ]
    outs = jax.lax.map(lambda xs: fn(*xs), head)
    outs = jax.tree.map(
      lambda y: y.reshape((whole * chunk,) + y.shape[2:]), outs
    )
    if rest:
      tail = fn(*[x[whole * chunk :] for x in flat])
      outs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outs, tail)
  return jax.tree.map(lambda y: y.reshape(batch_shape + y.shape[1:]), outs)


def _column_major(ndim: int) -> tuple[int, ...]:
  """A batch of Fortran-order matrices, major-to-minor (as LAPACK wants)."""
  return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def _is_complex(dtype) -> bool:
  return np.issubdtype(dtype, np.complexfloating)


def cholesky(x: jax.Array) -> jax.Array:
  """`cholesky_p` on CPU: the lower factor from x's lower triangle (NaN
  where x is not positive definite), as jax's own CPU lowering."""
  n = x.shape[-1]
  target = lapack.prepare_lapack_call("potrf_ffi", x.dtype)

  def potrf(a):
    factor, info = jax.ffi.ffi_call(
      target,
      (
        jax.ShapeDtypeStruct(a.shape, a.dtype),
        jax.ShapeDtypeStruct(a.shape[:1], jnp.int32),
      ),
      input_layouts=[_column_major(3)],
      output_layouts=[_column_major(3), None],
      input_output_aliases={0: 0},
    )(a, uplo=np.uint8(ord("L")))
    return jnp.where((info == 0)[:, None, None], factor, jnp.nan)

  cost = n * n * n // 3 * (3 if _is_complex(x.dtype) else 1)
  return map_chunks(potrf, [x], 2, chunk_size(cost))


def triangular_solve(
  a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal
):
  """`triangular_solve_p` on CPU through LAPACK's trsm, as jax's own CPU
  lowering (a and b share their batch dims)."""
  if conjugate_a and not transpose_a:
    a, conjugate_a = jnp.conj(a), False
  target = lapack.prepare_lapack_call("trsm_ffi", a.dtype)
  trans = ("C" if conjugate_a else "T") if transpose_a else "N"
  attrs = dict(
    side=np.uint8(ord("L" if left_side else "R")),
    uplo=np.uint8(ord("L" if lower else "U")),
    trans_x=np.uint8(ord(trans)),
    diag=np.uint8(ord("U" if unit_diagonal else "N")),
  )

  def trsm(a, b):
    return jax.ffi.ffi_call(
      target,
      jax.ShapeDtypeStruct(b.shape, b.dtype),
      input_layouts=[_column_major(3), _column_major(3)],
      output_layouts=_column_major(3),
      input_output_aliases={1: 0},
    )(a, b, **attrs)

  rows, cols = b.shape[-2:]
  cost = rows * cols * (rows if left_side else cols)
  cost *= 3 if _is_complex(b.dtype) else 1
  return map_chunks(trsm, [a, b], 2, chunk_size(cost))


def _triangular_solve_lowering(ctx, a, b, **params):
  if np.dtype(ctx.avals_in[0].dtype) in map(np.dtype, LAPACK_DTYPES):
    rule = mlir.lower_fun(
      functools.partial(triangular_solve, **params), multiple_results=False
    )
    return rule(ctx, a, b)
  # Other dtypes: XLA's own expansion, as jax does.
  if params["transpose_a"]:
    transpose = "ADJOINT" if params["conjugate_a"] else "TRANSPOSE"
  else:
    transpose = "NO_TRANSPOSE"
  return [
    stablehlo.triangular_solve(
      a,
      b,
      ir.BoolAttr.get(params["left_side"]),
      ir.BoolAttr.get(params["lower"]),
      ir.BoolAttr.get(params["unit_diagonal"]),
      stablehlo.TransposeAttr.get(transpose),
    )
  ]


_installed = False


def install() -> None:
  """Lowers every later-traced Cholesky and triangular solve on CPU through
  `cholesky` and `triangular_solve` (idempotent; programs already compiled
  or cached keep theirs)."""
  global _installed
  if _installed:
    return
  mlir.register_lowering(
    linalg.cholesky_p,
    mlir.lower_fun(cholesky, multiple_results=False),
    platform="cpu",
  )
  mlir.register_lowering(
    linalg.triangular_solve_p, _triangular_solve_lowering, platform="cpu"
  )
  _installed = True
