"""Run as a script by cpu_lapack_test.py, with NPROC=2 (a 2-thread pool).

1. Factorisations and triangular solves through jax's own CPU lowering.
2. `import jaxrl_vision` (which installs `cpu_lapack`), the same again: the
   bits must be equal, and the large batches must be split into a loop.
3. Four independent batched factorisations in one program, the deadlock of
   jaxlib 0.10.2 without the fix (it never returns): it must return.

Prints `ok` last.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)


def spd(key, shape, dtype):
  a = jax.random.normal(key, shape, dtype)
  n = shape[-1]
  return (a @ jnp.swapaxes(a, -1, -2).conj() + n * jnp.eye(n)).astype(dtype)


def cases():
  """(name, fn, args): large batches cross jaxlib's parallel threshold."""
  key = jax.random.key(0)
  out = []
  big = spd(key, (2, 700, 12, 12), jnp.float32)  # 1,400 x 576 FLOP
  big = big.at[1, 3, 0, 0].set(-1.0)  # not positive definite: NaN
  # The upper triangle is ignored (the lower one is read).
  skew = big + jnp.triu(jnp.ones((12, 12), big.dtype), 1)
  out.append(("chol_f32", jax.lax.linalg.cholesky, (skew,)))
  out.append(
    (
      "chol_f64",
      jax.lax.linalg.cholesky,
      (spd(key, (333, 18, 18), jnp.float64),),
    )
  )
  out.append(
    (
      "chol_c64",
      jax.lax.linalg.cholesky,
      (spd(key, (90, 16, 16), jnp.complex64),),
    )
  )
  out.append(
    (
      "cho_solve",
      lambda a, b: jax.scipy.linalg.cho_solve(
        jax.scipy.linalg.cho_factor(a), b
      ),
      (big[0], jnp.ones((700, 12, 3), jnp.float32)),
    )
  )
  tri = jnp.tril(spd(key, (1500, 18, 18), jnp.float32))
  tri_c = jnp.tril(spd(key, (1500, 18, 18), jnp.complex64))
  vec = jax.random.normal(jax.random.key(1), (1500, 18, 1), jnp.float32)
  wide = jax.random.normal(jax.random.key(2), (1500, 2, 18), jnp.float32)
  for left, lower, trans, conj, unit in itertools.product(
    (True, False), repeat=5
  ):
    a = tri if lower else jnp.swapaxes(tri, -1, -2)
    b = vec if left else wide
    if conj:
      a = tri_c if lower else jnp.swapaxes(tri_c, -1, -2)
      b = b.astype(jnp.complex64)
    kw = dict(
      left_side=left,
      lower=lower,
      transpose_a=trans,
      conjugate_a=conj,
      unit_diagonal=unit,
    )
    fn = functools.partial(jax.lax.linalg.triangular_solve, **kw)
    out.append((f"trsm_{left:d}{lower:d}{trans:d}{conj:d}{unit:d}", fn, (a, b)))
  return out


def fresh(fn):
  """A new function object: jit's caches must not reuse a lowering."""
  return jax.jit(lambda *args: fn(*args))


def run_all():
  return {name: np.asarray(fresh(fn)(*args)) for name, fn, args in cases()}


def main():
  before = run_all()
  import jaxrl_vision  # noqa: F401  (installs cpu_lapack)

  after = run_all()
  for name in before:
    np.testing.assert_array_equal(after[name], before[name], err_msg=name)
  assert after["chol_f32"].dtype == np.float32
  assert np.isnan(after["chol_f32"][1, 3][np.tril_indices(12)]).all()
  assert not np.isnan(after["chol_f32"][1, 4]).any()
  name, fn, args = cases()[0]
  hlo = fresh(fn).lower(*args).as_text()
  assert "lapack_spotrf_ffi" in hlo and "while" in hlo, hlo[:2000]

  a = spd(jax.random.key(3), (4, 600, 18, 18), jnp.float32)

  @jax.jit
  def four(a):
    def body(c, _):
      hs = [jax.scipy.linalg.cho_factor(a[i] + c[i])[0] for i in range(4)]
      return c + 1e-6 * jnp.stack(hs), None

    return jax.lax.scan(body, jnp.zeros_like(a), None, 20)[0]

  assert np.isfinite(np.asarray(four(a))).all()
  print("ok")


if __name__ == "__main__":
  main()
