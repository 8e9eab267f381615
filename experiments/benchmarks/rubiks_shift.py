r"""What RubiksShift costs: the op vs autodiff and vs convolutions.

  python -m experiments.benchmarks.rubiks_shift [--trials=20]
  python -m experiments.benchmarks.rubiks_shift --batch=1 --channels=4 \
      --frames=2 --size=8 --trials=2      # seconds; the smoke test's size

At the thesis layer size (N, C, T, H, W) = (8, 72, 8, 56, 56) (Table 6.6):
  * forward and forward+backward time of `rubiks_shift` (backend "auto")
    against jit(autodiff) of the pure-jnp gather reference
    (`reference_shift`) and against the equivalent depthwise 3x3x3 conv
    (`lax.conv_general_dilated`, feature_group_count=C);
  * the Table 6.6 block comparison, forward: 3D conv 3x3x3 (C -> C), TSM
    (1/8 channels shifted +1 and 1/8 by -1 in time by slicing, then a 3x3
    conv per frame) and RubiksShift + 1x1 conv;
  * on GPU, forward GB/s (read x + write y) for f32 and bf16 at x1, x4 and
    x16 the batch, as a fraction of a measured device-to-device copy of the
    same bytes.
Times are mean +- std over --trials calls after --warmup calls, in ms
(the depthwise conv gets --depthwise_trials: XLA:CPU needs ~10 s a call).
Expected on 2 shared CPU cores: ~4 min; speedup_vs_reference_fwd_bwd ~4.7,
conv3d_over_shift_block ~9.4.

The last line is one JSON object with `speedup_vs_reference_fwd_bwd`,
`speedup_vs_reference_fwd`, `conv3d_over_shift_block`,
`tsm_over_shift_block`, `deterministic` (two gradient runs bitwise equal),
`copy_bandwidth_fraction` (GPU only, else null), the per-case times and
`device`. CPU targets: speedup_vs_reference_fwd_bwd >= 3 and
conv3d_over_shift_block >= 8.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from jax import lax

from jaxrl_vision.ops import rubiks_shift as rs

_BATCH = flags.DEFINE_integer("batch", 8, "N.")
_CHANNELS = flags.DEFINE_integer("channels", 72, "C (in = out).")
_FRAMES = flags.DEFINE_integer("frames", 8, "T.")
_SIZE = flags.DEFINE_integer("size", 56, "H = W.")
_TRIALS = flags.DEFINE_integer(
  "trials", 0, "Timed calls per case; 0 = 100 on GPU, 10 elsewhere."
)
_DEPTHWISE_TRIALS = flags.DEFINE_integer(
  "depthwise_trials",
  0,
  "Timed calls for the depthwise conv3d; 0 = --trials on GPU, 2 elsewhere "
  "(XLA:CPU takes seconds per call at the thesis size).",
)
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls per case.")
_SCALES = flags.DEFINE_list(
  "scales", ["1", "4", "16"], "Batch multiples for the GPU bandwidth part."
)

_DN = ("NCDHW", "OIDHW", "NCDHW")


def _timed(fn, *args, trials: int, warmup: int) -> tuple[float, float]:
  """(mean, std) milliseconds per call of a jitted fn after warm-up."""
  for _ in range(max(warmup, 1)):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(trials):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(1e3 * (time.perf_counter() - start))
  return float(np.mean(times)), float(np.std(times))


def _conv3d(x, kernel, groups=1, padding=((1, 1), (1, 1), (1, 1))):
  return lax.conv_general_dilated(
    x,
    kernel,
    (1, 1, 1),
    padding,
    dimension_numbers=_DN,
    feature_group_count=groups,
  )


def _depthwise_kernel(shift: jax.Array) -> jax.Array:
  """S^theta as a depthwise 3x3x3 kernel [C, 1, 3, 3, 3] (Eq. 6.6), valid
  for |theta| < 1: a unit impulse at the centre, shifted by theta."""
  c = shift.shape[1]
  impulse = jnp.zeros((1, c, 3, 3, 3), shift.dtype).at[:, :, 1, 1, 1].set(1)
  return rs.reference_shift(impulse, -shift)[0][:, None]


def _tsm_shift(x: jax.Array) -> jax.Array:
  """TSM's temporal shift by slicing: 1/8 of channels read t+1, 1/8 t-1."""
  fold = x.shape[1] // 8
  pad = jnp.zeros_like(x[:, :fold, :1])
  fwd = jnp.concatenate([x[:, :fold, 1:], pad], axis=2)
  bwd = jnp.concatenate([pad, x[:, fold : 2 * fold, :-1]], axis=2)
  return jnp.concatenate([fwd, bwd, x[:, 2 * fold :]], axis=1)


def _ms(mean_std):
  return {"mean": round(mean_std[0], 3), "std": round(mean_std[1], 3)}


def _layer_cases(x, shift, trials, depthwise_trials, warmup):
  """Forward and forward+backward of the op, the reference and the conv."""
  c = x.shape[1]
  kernel = _depthwise_kernel(jnp.clip(shift, -0.99, 0.99))
  cot = jax.random.normal(jax.random.key(3), x.shape, x.dtype)

  def op(x, s):
    return rs.rubiks_shift(x, s)

  def conv(x, k):
    return _conv3d(x, k, groups=c)

  def fwd_bwd(f):
    return jax.jit(jax.grad(lambda a, b: jnp.vdot(f(a, b), cot), (0, 1)))

  cases = {
    "shift": (op, shift),
    "reference": (rs.reference_shift, shift),
    "depthwise_conv3d": (conv, kernel),
  }
  out = {}
  for name, (f, param) in cases.items():
    n = depthwise_trials if name == "depthwise_conv3d" else trials
    wu = min(warmup, 1) if name == "depthwise_conv3d" else warmup
    fwd = _timed(jax.jit(f), x, param, trials=n, warmup=wu)
    both = _timed(fwd_bwd(f), x, param, trials=n, warmup=wu)
    out[name] = {"fwd_ms": _ms(fwd), "fwd_bwd_ms": _ms(both)}
    print(
      f"{name:17s} fwd {fwd[0]:9.2f} +- {fwd[1]:6.2f} ms   fwd+bwd "
      f"{both[0]:9.2f} +- {both[1]:6.2f} ms",
      flush=True,
    )
  grad = fwd_bwd(op)
  first, second = grad(x, shift), grad(x, shift)
  deterministic = all(
    bool(jnp.array_equal(a, b)) for a, b in zip(first, second, strict=True)
  )
  return out, deterministic


def _block_cases(x, shift, trials, warmup):
  """Table 6.6: forward latency of three channel-controlled blocks."""
  c = x.shape[1]
  keys = jax.random.split(jax.random.key(4), 3)
  k3 = jax.random.normal(keys[0], (c, c, 3, 3, 3), x.dtype) / (27 * c) ** 0.5
  k2 = jax.random.normal(keys[1], (c, c, 1, 3, 3), x.dtype) / (9 * c) ** 0.5
  k1 = jax.random.normal(keys[2], (c, c), x.dtype) / c**0.5

  def conv3d_block(x):
    return _conv3d(x, k3)

  def tsm_block(x):  # a 1x3x3 conv3d == a 3x3 conv2d on every frame
    return _conv3d(_tsm_shift(x), k2, padding=((0, 0), (1, 1), (1, 1)))

  def shift_block(x):  # the 1x1 conv as one [C, C] @ [C, T*H*W] per clip
    y = rs.rubiks_shift(x, shift)
    return jnp.matmul(k1, y.reshape(y.shape[0], c, -1)).reshape(y.shape)

  out = {}
  for name, f in (
    ("conv3d", conv3d_block),
    ("tsm", tsm_block),
    ("rubiks_shift", shift_block),
  ):
    t = _timed(jax.jit(f), x, trials=trials, warmup=warmup)
    out[name] = _ms(t)
    print(f"block {name:13s} {t[0]:9.2f} +- {t[1]:6.2f} ms", flush=True)
  return out


def _bandwidth_cases(shape, shift, scales, trials, warmup):
  """GPU: forward GB/s vs a device-to-device copy of the same bytes."""
  rows = []
  for dtype in (jnp.float32, jnp.bfloat16):
    for scale in scales:
      full = (shape[0] * scale,) + tuple(shape[1:])
      x = jax.random.normal(jax.random.key(5), full, dtype)
      op = _timed(
        jax.jit(lambda x: rs.rubiks_shift(x, shift)),
        x,
        trials=trials,
        warmup=warmup,
      )
      copy = _timed(
        jax.jit(lambda x: jnp.array(x, copy=True)),
        x,
        trials=trials,
        warmup=warmup,
      )
      moved = 2 * x.size * x.dtype.itemsize
      row = {
        "dtype": jnp.dtype(dtype).name,
        "shape": list(full),
        "fwd_ms": round(op[0], 4),
        "copy_ms": round(copy[0], 4),
        "fwd_gb_s": round(moved / op[0] / 1e6, 1),
        "copy_gb_s": round(moved / copy[0] / 1e6, 1),
        "fraction": round(copy[0] / op[0], 3),
      }
      rows.append(row)
      print(
        f"bandwidth {row['dtype']:8s} x{scale:<3d} {row['fwd_gb_s']:8.1f} "
        f"GB/s = {row['fraction']:.3f} of copy",
        flush=True,
      )
  return rows


def main(argv):
  del argv
  on_gpu = jax.default_backend() == "gpu"
  trials = _TRIALS.value or (100 if on_gpu else 10)
  depthwise_trials = _DEPTHWISE_TRIALS.value or (trials if on_gpu else 2)
  warmup = _WARMUP.value
  shape = (
    _BATCH.value,
    _CHANNELS.value,
    _FRAMES.value,
    _SIZE.value,
    _SIZE.value,
  )
  x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
  # Sub-pixel shifts so the depthwise 3x3x3 conv is the same operator.
  shift = jax.random.uniform(
    jax.random.key(1), (3, shape[1]), minval=-0.9, maxval=0.9
  )
  print(f"shape {shape}, {trials} trials, {jax.devices()[0]}", flush=True)
  layer, deterministic = _layer_cases(
    x, shift, trials, depthwise_trials, warmup
  )
  blocks = _block_cases(x, shift, trials, warmup)
  bandwidth = None
  if on_gpu:
    scales = [int(s) for s in _SCALES.value]
    bandwidth = _bandwidth_cases(shape, shift, scales, trials, warmup)

  def ratio(a, b):
    return round(a["mean"] / b["mean"], 3)

  summary = {
    "speedup_vs_reference_fwd_bwd": ratio(
      layer["reference"]["fwd_bwd_ms"], layer["shift"]["fwd_bwd_ms"]
    ),
    "speedup_vs_reference_fwd": ratio(
      layer["reference"]["fwd_ms"], layer["shift"]["fwd_ms"]
    ),
    "speedup_vs_depthwise_conv_fwd_bwd": ratio(
      layer["depthwise_conv3d"]["fwd_bwd_ms"], layer["shift"]["fwd_bwd_ms"]
    ),
    "conv3d_over_shift_block": ratio(blocks["conv3d"], blocks["rubiks_shift"]),
    "tsm_over_shift_block": ratio(blocks["tsm"], blocks["rubiks_shift"]),
    "deterministic": deterministic,
    "copy_bandwidth_fraction": (
      None if bandwidth is None else bandwidth[0]["fraction"]
    ),
    "layer_ms": layer,
    "block_ms": blocks,
    "bandwidth": bandwidth,
    "shape": list(shape),
    "trials": trials,
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
  }
  print(json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
