"""RubiksShift against hand-computed and independent references (spec R1-R7).

Float64 cases run inside `jax.enable_x64(True)` so x64 never leaks into
other tests.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from jax import lax
from jax import test_util

from jaxrl_vision.ops import rubiks_shift as rs
from jaxrl_vision.ops import rubiks_shift_pallas as rsp

SHAPE = (2, 4, 4, 6, 5)  # N, C, T, H, W
N, C, T, H, W = SHAPE
_DN = ("NCDHW", "OIDHW", "NCDHW")


def _x(seed=0, shape=SHAPE, dtype=np.float64):
  return np.random.RandomState(seed).randn(*shape).astype(dtype)


def _shift(seed=1, low=-3.0, high=3.0, num_channels=C):
  return np.random.RandomState(seed).uniform(low, high, (3, num_channels))


def _off_integer_shift(seed=1, num_channels=C):
  """Shifts in [-3, 3] with fractional part in [0.1, 0.9] (no kinks)."""
  rng = np.random.RandomState(seed)
  ints = rng.randint(-3, 3, (3, num_channels))
  return ints + rng.uniform(0.1, 0.9, (3, num_channels))


def _naive_shift(x, shift):
  """The 8-corner formula of spec §2.1 as a float64 Python loop."""
  n_, c_, t_, h_, w_ = x.shape
  y = np.zeros(x.shape, np.float64)
  floors = np.floor(shift).astype(int)
  deltas = shift - floors
  for n, c, t, h, w in itertools.product(*map(range, x.shape)):
    total = 0.0
    for k, i, j in itertools.product((0, 1), repeat=3):
      tt = t + floors[0, c] + k
      hh = h + floors[1, c] + i
      ww = w + floors[2, c] + j
      if 0 <= tt < t_ and 0 <= hh < h_ and 0 <= ww < w_:
        weight = (
          (deltas[0, c] if k else 1 - deltas[0, c])
          * (deltas[1, c] if i else 1 - deltas[1, c])
          * (deltas[2, c] if j else 1 - deltas[2, c])
        )
        total += weight * x[n, c, tt, hh, ww]
    y[n, c, t, h, w] = total
  return y


def _integer_roll(x, shift):
  """y[.., p] = x[.., p + s] per channel, zero-filled: a roll that drops
  what wraps around."""
  y = np.zeros_like(x)
  for c in range(x.shape[1]):
    src = [slice(None), c]
    dst = [slice(None), c]
    for axis, s in enumerate(np.asarray(shift[:, c], int)):
      length = x.shape[2 + axis]
      lo, hi = max(0, -s), min(length, length - s)
      if lo >= hi:
        break
      dst.append(slice(lo, hi))
      src.append(slice(lo + s, hi + s))
    else:
      y[tuple(dst)] = x[tuple(src)]
  return y


def _s_theta_kernel(shift):
  """S^theta [C, 3, 3, 3] from Eq. 6.6 for |theta| < 1: offset o in
  {-1, 0, 1} gets 1 - delta at floor(z) and delta at floor(z) + 1."""
  kernel = np.ones((shift.shape[1], 3, 3, 3))
  for c, axis in itertools.product(range(shift.shape[1]), range(3)):
    z = shift[axis, c]
    weights = np.zeros(3)
    weights[int(np.floor(z)) + 1] = 1 - (z - np.floor(z))
    weights[int(np.floor(z)) + 2] = z - np.floor(z)
    view = [1, 1, 1]
    view[axis] = 3
    kernel[c] *= weights.reshape(view)
  return kernel


class ForwardTest(chex.TestCase):
  """R1-R3: the forward against a loop, a roll and a convolution."""

  @parameterized.parameters("reference", "xla", "pallas")
  def test_r1_matches_naive_8_corner_loop_float64(self, impl):
    x = _x()
    shift = _shift()
    # Out-of-range reads in every axis, one far past the end, one integer.
    shift[:, 0] = [-4.5, 6.25, 5.5]
    shift[:, 1] = [2.0, -1.0, 0.0]
    expected = _naive_shift(x, shift)
    with jax.enable_x64(True):
      if impl == "reference":
        y = rs.reference_shift(jnp.asarray(x), jnp.asarray(shift))
      elif impl == "pallas":
        y = rsp.fwd(jnp.asarray(x), jnp.asarray(shift), interpret=True)
      else:
        y = rs.rubiks_shift(x, shift, backend="xla")
      self.assertEqual(y.dtype, jnp.float64)
      np.testing.assert_allclose(np.asarray(y), expected, rtol=0, atol=1e-12)

  @parameterized.parameters("xla", "pallas")
  def test_r2_integer_shift_is_zero_filled_roll_and_zero_is_identity(
    self, backend
  ):
    x = _x(dtype=np.float32)
    shift = np.random.RandomState(2).randint(-3, 4, (3, C)).astype(np.float32)
    shift[:, 0] = [0, 7, 0]  # wholly out of range: all zeros
    y = rs.rubiks_shift(x, shift, backend=backend)
    np.testing.assert_array_equal(np.asarray(y), _integer_roll(x, shift))
    identity = rs.rubiks_shift(x, np.zeros((3, C), np.float32), backend=backend)
    np.testing.assert_array_equal(np.asarray(identity), x)

  def test_r2_roll_helper_hand_case(self):
    # One channel, T=1, H=1, W=4: shift +1 along w reads w+1, zero-filled.
    x = np.arange(1.0, 5.0).reshape(1, 1, 1, 1, 4)
    y = _integer_roll(x, np.array([[0.0], [0.0], [1.0]]))
    np.testing.assert_array_equal(y.ravel(), [2.0, 3.0, 4.0, 0.0])

  def test_r3_sub_pixel_shift_is_depthwise_conv3d(self):
    x = _x()
    shift = _shift(low=-0.99, high=0.99)
    kernel = _s_theta_kernel(shift)
    pointwise = np.random.RandomState(3).randn(3, C)  # P [C', C]
    with jax.enable_x64(True):
      y = rs.rubiks_shift(x, shift, backend="xla")
      conv = lax.conv_general_dilated(
        jnp.asarray(x),
        jnp.asarray(kernel[:, None]),
        (1, 1, 1),
        [(1, 1)] * 3,
        dimension_numbers=_DN,
        feature_group_count=C,
      )
      np.testing.assert_allclose(np.asarray(y), conv, rtol=0, atol=1e-12)
      # Shift then 1x1 conv == one dense conv3d with K = P * S^theta.
      fused = lax.conv_general_dilated(
        jnp.asarray(x),
        jnp.asarray(pointwise[:, :, None, None, None] * kernel[None]),
        (1, 1, 1),
        [(1, 1)] * 3,
        dimension_numbers=_DN,
      )
      unfused = jnp.einsum("oc,ncthw->nothw", pointwise, y)
      np.testing.assert_allclose(unfused, fused, rtol=0, atol=1e-12)

  def test_r3_kernel_hand_case(self):
    # theta_t = 0.25: taps (t-1, t, t+1) = (0, 0.75, 0.25); theta = -0.25
    # puts 0.25 on t-1 and 0.75 on t.
    shift = np.array([[0.25, -0.25], [0.0, 0.0], [0.0, 0.0]])
    kernel = _s_theta_kernel(shift)
    np.testing.assert_allclose(kernel[0, :, 1, 1], [0.0, 0.75, 0.25])
    np.testing.assert_allclose(kernel[1, :, 1, 1], [0.25, 0.75, 0.0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_stride_subsamples_and_bf16_keeps_dtype(self):
    x = jnp.asarray(_x(dtype=np.float32), jnp.bfloat16)
    shift = jnp.asarray(_shift(), jnp.float32)
    fn = self.variant(lambda x, s: rs.rubiks_shift(x, s, stride=(1, 2, 2)))
    y = fn(x, shift)
    chex.assert_shape(y, (N, C, T, 3, 3))
    self.assertEqual(y.dtype, jnp.bfloat16)
    full = rs.reference_shift(x, shift)
    np.testing.assert_array_equal(
      np.asarray(y, np.float32), np.asarray(full[:, :, :, ::2, ::2], np.float32)
    )


class GradientTest(chex.TestCase):
  """R4-R5: the adjoint, the custom VJP and finite differences."""

  def test_r4_adjointness(self):
    x, g = _x(0), _x(5)
    shift = _shift()
    with jax.enable_x64(True):
      lhs = jnp.vdot(rs.reference_shift(jnp.asarray(x), jnp.asarray(shift)), g)
      rhs = jnp.vdot(x, rs.reference_bwd_x(jnp.asarray(g), jnp.asarray(shift)))
      self.assertLess(abs(float(lhs - rhs)), 1e-12)

  @parameterized.product(
    stride=[(1, 1, 1), (1, 2, 2), (2, 3, 2)], backend=["xla", "pallas"]
  )
  def test_r4_custom_vjp_matches_autodiff_of_reference(self, stride, backend):
    x = _x()
    shift = _off_integer_shift()
    st, sh, sw = stride

    def reference(x, s):
      return rs.reference_shift(x, s)[:, :, ::st, ::sh, ::sw]

    with jax.enable_x64(True):
      x, shift = jnp.asarray(x), jnp.asarray(shift)
      y, vjp = jax.vjp(
        lambda a, b: rs.rubiks_shift(a, b, stride=stride, backend=backend),
        x,
        shift,
      )
      y_ref, vjp_ref = jax.vjp(reference, x, shift)
      np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
      g = jnp.asarray(_x(7, y.shape))
      for got, want in zip(vjp(g), vjp_ref(g), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

  def test_r5_shift_gradient_vs_central_differences(self):
    x, g = _x(0), _x(6)
    shift = _off_integer_shift()
    eps = 1e-6
    with jax.enable_x64(True):
      x, g = jnp.asarray(x), jnp.asarray(g)

      @jax.jit
      def loss(s):
        return jnp.vdot(rs.rubiks_shift(x, s, backend="xla"), g)

      grad = np.asarray(jax.grad(loss)(jnp.asarray(shift)))
      numeric = np.zeros_like(shift)
      for r, c in itertools.product(range(3), range(C)):
        step = np.zeros_like(shift)
        step[r, c] = eps
        numeric[r, c] = (loss(shift + step) - loss(shift - step)) / (2 * eps)
      rel = np.abs(grad - numeric).max() / np.abs(numeric).max()
      self.assertLess(rel, 1e-6)

  @parameterized.parameters(
    ("interpolate", (1, 1, 1)),
    ("interpolate", (1, 2, 2)),
    ("quantize", (1, 1, 1)),  # dx only: dtheta is straight-through
  )
  def test_r5_check_grads(self, mode, stride):
    x = jnp.asarray(_x(0, (1, 3, 3, 4, 5)))
    shift = _off_integer_shift(num_channels=3)
    with jax.enable_x64(True):
      x, shift = jnp.asarray(x, jnp.float64), jnp.asarray(shift)
      if mode == "quantize":
        args = (x,)

        def fn(x):
          return rs.rubiks_shift(x, shift, mode=mode, stride=stride)
      else:
        args = (x, shift)

        def fn(x, s):
          return rs.rubiks_shift(x, s, mode=mode, stride=stride)

      test_util.check_grads(
        fn, args, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6
      )

  @parameterized.parameters("xla", "pallas")
  def test_gradient_is_bitwise_deterministic(self, backend):
    x, g = jnp.asarray(_x(0, dtype=np.float32)), _x(4, dtype=np.float32)
    shift = jnp.asarray(_shift(), jnp.float32)
    grad = jax.jit(
      jax.grad(
        lambda a, b: jnp.vdot(rs.rubiks_shift(a, b, backend=backend), g),
        (0, 1),
      )
    )
    first, second = grad(x, shift), grad(x, shift)
    for a, b in zip(first, second, strict=True):
      np.testing.assert_array_equal(a, b)


class PallasTest(parameterized.TestCase):
  """R6: the Pallas kernels (interpreted) against the reference."""

  @parameterized.product(dtype=["float32", "bfloat16"], max_block=[16, 1024])
  def test_r6_kernels_match_reference(self, dtype, max_block):
    # max_block=16 splits each (n, c) row (L=120) into ragged chunks.
    x = jnp.asarray(_x(0, dtype=np.float32), dtype)
    g = jnp.asarray(_x(8, dtype=np.float32), dtype)
    shift = jnp.asarray(_shift(), jnp.float32)
    kw = dict(interpret=True, max_block=max_block)
    y = rsp.fwd(x, shift, **kw)
    dx = rsp.bwd_x(g, shift, **kw)
    partials = rsp.bwd_theta(x, g, shift, **kw)
    self.assertEqual(y.dtype, x.dtype)
    chex.assert_shape(partials, (N, 3, C))
    self.assertEqual(partials.dtype, jnp.float32)
    want_partials = rs.reference_bwd_theta_partials(x, g, shift)
    scale = float(jnp.abs(want_partials).max())
    if dtype == "float32":
      tol, theta_tol = 1e-5, 1e-5 * scale
    else:  # both round one float32 sum to bf16: at most ~1 bf16 ulp apart
      tol, theta_tol = 2e-2, 1e-5 * scale
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    np.testing.assert_allclose(
      f32(y), f32(rs.reference_shift(x, shift)), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
      f32(dx), f32(rs.reference_bwd_x(g, shift)), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(partials, want_partials, rtol=0, atol=theta_tol)

  def test_block_size_divides_the_thesis_row(self):
    self.assertEqual(rsp._block_size(8 * 56 * 56, 1024), 512)
    self.assertEqual(rsp._block_size(120, 1024), 1024)  # padded, one block


class QuantizeTest(parameterized.TestCase):
  """R7: RubiksShift-IQ."""

  def test_round_half_up_hand_cases(self):
    values = jnp.array([0.5, -0.5, 1.5, -1.5, 0.49, -2.3, 2.0, -0.51])
    np.testing.assert_array_equal(
      rs.round_half_up(values), [1.0, 0.0, 2.0, -1.0, 0.0, -2.0, 2.0, -1.0]
    )

  @parameterized.parameters("xla", "pallas")
  def test_r7_forward_is_rounded_integer_shift(self, backend):
    x = _x(dtype=np.float32)
    shift = np.array(
      [[0.5, -0.5, 1.5, -2.3], [-1.5, 2.49, 0.5, 0.0], [-0.5, 0.51, -1.2, 1.5]],
      np.float32,
    )
    rounded = np.array(
      [[1.0, 0.0, 2.0, -2.0], [-1.0, 2.0, 1.0, 0.0], [0.0, 1.0, -1.0, 2.0]]
    )
    y = rs.rubiks_shift(x, shift, mode="quantize", backend=backend)
    np.testing.assert_array_equal(np.asarray(y), _integer_roll(x, rounded))

  @parameterized.product(
    backend=["xla", "pallas"], stride=[(1, 1, 1), (1, 2, 2)]
  )
  def test_r7_gradients_reverse_rounded_shift_and_continuous_theta(
    self, backend, stride
  ):
    x, shift = _x(), _shift()
    with jax.enable_x64(True):
      x, shift = jnp.asarray(x), jnp.asarray(shift)
      y, vjp = jax.vjp(
        lambda a, b: rs.rubiks_shift(
          a, b, mode="quantize", stride=stride, backend=backend
        ),
        x,
        shift,
      )
      g = jnp.asarray(_x(9, y.shape))
      dx, dshift = vjp(g)
      st, sh, sw = stride
      g_full = jnp.zeros(x.shape).at[:, :, ::st, ::sh, ::sw].set(g)
      want_dx = rs.reference_bwd_x(g_full, rs.round_half_up(shift))
      want_dshift = rs.reference_bwd_theta(x, g_full, shift)
      np.testing.assert_allclose(dx, want_dx, rtol=0, atol=1e-12)
      np.testing.assert_allclose(dshift, want_dshift, rtol=0, atol=1e-12)
      # The straight-through gradient is not the gradient at the rounded
      # shift (it would be for a true integer-shift op).
      at_rounded = rs.reference_bwd_theta(x, g_full, rs.round_half_up(shift))
      self.assertGreater(float(jnp.abs(dshift - at_rounded).max()), 1e-3)


class IntegerInitTest(absltest.TestCase):
  def test_tsm_shift(self):
    shift = np.asarray(rs.tsm_shift(16))
    np.testing.assert_array_equal(shift[0], [1, 1, -1, -1] + [0] * 12)
    np.testing.assert_array_equal(shift[1:], 0)

  def test_shiftnet_shift_covers_the_kernel_and_centres_leftovers(self):
    shift = np.asarray(rs.shiftnet_shift(20, kernel_size=3))  # 9 groups of 2
    np.testing.assert_array_equal(shift[0], 0)
    offsets = list(zip(shift[1], shift[2], strict=True))
    self.assertEqual(
      sorted(set(offsets[:18])),
      sorted(itertools.product((-1.0, 0.0, 1.0), repeat=2)),
    )
    self.assertEqual(offsets[0], offsets[1])
    self.assertEqual(offsets[0], (-1.0, -1.0))
    self.assertEqual(offsets[18:], [(0.0, 0.0), (0.0, 0.0)])

  def test_tsm_init_through_the_op_is_the_tsm_shift(self):
    x = _x(0, (1, 16, 3, 2, 2), np.float32)
    y = np.asarray(rs.rubiks_shift(x, rs.tsm_shift(16)))
    np.testing.assert_array_equal(y[:, :2, :-1], x[:, :2, 1:])  # reads t+1
    np.testing.assert_array_equal(y[:, :2, -1], 0)
    np.testing.assert_array_equal(y[:, 2:4, 1:], x[:, 2:4, :-1])  # reads t-1
    np.testing.assert_array_equal(y[:, 4:], x[:, 4:])


class ValidationTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("wrong_shift_shape", dict(shift=np.zeros((3, C + 1))), "shift must be"),
    ("shift_rank", dict(shift=np.zeros((C,))), "shift must be"),
    ("x_rank", dict(x=np.zeros((N, C, H, W))), r"x must be \[N, C"),
    ("integer_x", dict(x=np.zeros(SHAPE, np.int32)), "floating"),
    ("mode", dict(mode="nearest"), "mode must be one of"),
    ("stride_zero", dict(stride=(1, 0, 1)), "stride must be"),
    ("stride_length", dict(stride=(1, 2)), "stride must be"),
    ("backend", dict(backend="cuda"), "backend must be one of"),
  )
  def test_bad_input_raises(self, overrides, message):
    kwargs = dict(x=np.zeros(SHAPE, np.float32), shift=np.zeros((3, C)))
    kwargs.update(overrides)
    x, shift = kwargs.pop("x"), kwargs.pop("shift")
    with self.assertRaisesRegex(ValueError, message):
      rs.rubiks_shift(x, shift, **kwargs)


if __name__ == "__main__":
  absltest.main()
