"""Tests for RubiksNet (spec §3.1, R9): counts, layout, inflation, training.

Big tiers are only traced (`jax.eval_shape`); forwards run on `nano` with
numpy-drawn params, which skips compiling a PRNG kernel per weight.
"""

from fractions import Fraction

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest
from absl.testing import parameterized

from jaxrl_vision.networks import rubiksnet as rn
from jaxrl_vision.ops import attention_shift as aq
from jaxrl_vision.optim import shift_grad_norm as sgn

NUM_CLASSES = 4
VIDEO = (2, 4, 32, 32, 3)  # N, T, H, W, 3: 32 → 16 → 16 → 8 → 4 → 2 → 1
_FULL = jax.ShapeDtypeStruct((1, 8, 224, 224, 3), jnp.float32)


def _video(seed=0, shape=VIDEO):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, size=shape), jnp.uint8)


def _random_variables(module, video, seed=1):
  """Random params (shifts U(−1.5, 1.5)) and positive BN statistics."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), video)
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if name.endswith("['shift']"):
      value = rng.uniform(-1.5, 1.5, size=s.shape)
    elif name.endswith("['var']"):
      value = rng.uniform(0.5, 1.5, size=s.shape)
    elif name.endswith("['scale']"):
      value = rng.uniform(0.5, 1.5, size=s.shape)
    else:
      value = 0.3 * rng.normal(size=s.shape)
    return jnp.asarray(value, s.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _num_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


class CountsTest(parameterized.TestCase):
  # R9. Thesis Table 6.1: 1.9 / 3.6 / 6.2 / 8.5 M and 3.9 / 6.8 / 11.2 /
  # 15.8 G; the spec's 3-significant-figure params and its TSM-protocol
  # FLOPs (stem + 1×1 + SE + FC MACs) 3.70 / 6.51 / 10.93 / 15.35 G.
  @parameterized.named_parameters(
    ("tiny", "tiny", 1.90, 3.70, 3.9),
    ("small", "small", 3.60, 6.51, 6.8),
    ("medium", "medium", 6.19, 10.93, 11.2),
    ("large", "large", 8.54, 15.35, 15.8),
  )
  def test_tier(self, tier, params_m, tsm_protocol_g, reported_g):
    module = rn.make_rubiksnet_module(tier, 174)
    variables = jax.eval_shape(module.init, jax.random.key(0), _FULL)
    num_params = _num_params(variables["params"])
    self.assertEqual(round(num_params / 1e6, 2), params_m)
    self.assertEqual(rn.count_params(module), num_params)
    flops = rn.count_flops(module, num_frames=8, image_size=224)
    self.assertEqual(round(flops["tsm_protocol"] / 1e9, 2), tsm_protocol_g)
    self.assertLess(abs(flops["total"] / 1e9 - reported_g) / reported_g, 0.05)

  def test_flop_rules(self):
    # Shift ops: 3 per output element for RS, 0 for IQ (integer gather).
    rs_flops = rn.count_flops(rn.make_rubiksnet_module("tiny", 174))
    iq_flops = rn.count_flops(
      rn.make_rubiksnet_module("tiny", 174, shift_mode="quantize")
    )
    self.assertGreater(rs_flops["shift"], 0)
    self.assertEqual(iq_flops["shift"], 0)
    self.assertEqual(rs_flops["total"] - iq_flops["total"], rs_flops["shift"])
    # AQ: 2 spatial axes + 3 soft taps; hardened taps cost nothing.
    aq_module = rn.make_rubiksnet_module(
      "large", 174, temporal_shift="attention"
    )
    soft = rn.count_flops(aq_module)
    hard = rn.count_flops(aq_module, hard_attention=True)
    self.assertEqual(hard["attention"], 0)
    self.assertEqual(soft["total"] - hard["total"], soft["attention"])

  def test_nano_hand_computed(self):
    # nano, w = 8, 4 frames at 32²: stem → 16², blocks (in→out, stride,
    # side in → out): 8→8 s1 16→16; 8→8 s2 16→8; 8→16 s2 8→4;
    # 16→32 s2 4→2; 32→64 s2 2→1.
    # stem 27·8·256 = 55,296
    # 1×1 convs in·out·px_in + out·out·px_out (+ shortcut in·out·px_out):
    #   8·8·256 + 8·8·256                  = 32,768
    #   8·8·256 + 8·8·64 + 8·8·64          = 24,576
    #   8·16·64 + 16·16·16 + 8·16·16       = 14,336
    #   16·32·16 + 32·32·4 + 16·32·4       = 14,336
    #   32·64·4 + 64·64·1 + 32·64·1        = 14,336   (sum 100,352)
    # fc 64·4 = 256. Per frame 155,904; × 4 frames = 623,616.
    # Shift: 3 per output element: 3·(8·256 + 8·64 + 16·16 + 32·4 + 64·1)
    # = 3·3,008 = 9,024 per frame; × 4 = 36,096.
    module = rn.make_rubiksnet_module("nano", 4)
    flops = rn.count_flops(module, num_frames=4, image_size=32)
    self.assertEqual(flops["stem"], 4 * 55_296)
    self.assertEqual(flops["conv1x1"], 4 * 100_352)
    self.assertEqual(flops["tsm_protocol"], 623_616)
    self.assertEqual(flops["shift"], 36_096)

  def test_layer_ratios(self):
    # 72 → 72 channels at (T, H, W) = (8, 112, 112): 3×3×3 conv 72·72·27 =
    # 139,968; TSM 3×3 conv 72·72·9 = 46,656; RubiksShift 72·72 + 3·72 =
    # 5,400 → 25.92x and 8.64x, for params and FLOPs alike.
    costs = rn.layer_costs(channels=72, num_frames=8, height=112, width=112)
    self.assertEqual(costs["conv3d"].params, 139_968)
    self.assertEqual(costs["tsm"].params, 46_656)
    self.assertEqual(costs["rubiks_shift"].params, 5_400)
    self.assertEqual(costs["rubiks_shift"].flops, 5_400 * 8 * 112 * 112)
    ratios = rn.layer_ratios(channels=72, num_frames=8, height=112, width=112)
    self.assertEqual(ratios["conv3d"], Fraction("25.92"))
    self.assertEqual(ratios["tsm"], Fraction("8.64"))
    flop_ratio = Fraction(costs["conv3d"].flops, costs["rubiks_shift"].flops)
    self.assertEqual(flop_ratio, Fraction("25.92"))

  @parameterized.named_parameters(
    # (temporal, spatial, rows of each block's `shift` leaf or 0 for none).
    ("rs", "learned", "learned", 3),
    ("aq", "attention", "learned", 2),
    ("tsm_fixed", "fixed", "learned", 2),
    ("per_frame", "zero", "learned", 2),
    ("shiftnet_fixed", "learned", "fixed", 1),
    ("all_fixed", "fixed", "fixed", 0),
  )
  def test_variant_param_trees(self, temporal, spatial, rows):
    module = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift=temporal, spatial_shift=spatial
    )
    params = jax.eval_shape(module.init, jax.random.key(0), _video())["params"]
    self.assertEqual(rn.count_params(module), _num_params(params))
    blocks = [params[s.name] for s in rn.block_specs(8, (1, 1, 1, 1))]
    for block, spec in zip(
      blocks, rn.block_specs(8, (1, 1, 1, 1)), strict=True
    ):
      if rows:
        self.assertEqual(
          block["rubiks_shift"]["shift"].shape, (rows, spec.out_channels)
        )
      else:
        self.assertNotIn("rubiks_shift", block)
      if temporal == "attention":
        self.assertEqual(
          block["attention_shift"]["attention"].shape, (spec.in_channels, 3)
        )
      else:
        self.assertNotIn("attention_shift", block)

  def test_bad_config_raises(self):
    with self.assertRaises(ValueError):
      rn.make_rubiksnet_module("huge", 10)
    with self.assertRaises(ValueError):
      rn.make_rubiksnet_module("nano", 10, temporal_shift="learnt")
    with self.assertRaises(ValueError):
      rn.make_rubiksnet_module("nano", 10, temporal_init="gauss")


class ShiftLayerTest(chex.TestCase):
  @parameterized.parameters(1, 2)
  def test_fixed_shifts_match_numpy_gather(self, stride):
    # TSM temporal + ShiftNet spatial, checked against direct indexing of
    # the folded [N·T, H, W, C] frames: y[n,t,h,w,c] = x[n, t+θt, s·h+θh,
    # s·w+θw, c], zero outside. Exercises the fold/unfold transposes.
    n, t, h, w, c = 2, 3, 5, 6, 18  # 18 ch: 2 per ShiftNet offset
    x = np.random.default_rng(0).normal(size=(n * t, h, w, c))
    layer = rn.RubiksShift(
      stride=stride, temporal_shift="fixed", spatial_shift="fixed"
    )
    y = layer.apply({}, jnp.asarray(x, jnp.float32), t)
    theta_t = np.asarray(rn.tsm_temporal_shift(c)).astype(int)
    theta_hw = np.asarray(rn.shiftnet_spatial_shift(c)).astype(int)
    np.testing.assert_array_equal(theta_t[:4], [1, 1, -1, -1])  # C/8 = 2
    np.testing.assert_array_equal(
      theta_hw[:, :4], [[-1, -1, -1, -1], [-1, -1, 0, 0]]
    )
    video = x.reshape(n, t, h, w, c)
    expected = np.zeros((n, t, -(-h // stride), -(-w // stride), c))
    for ci in range(c):
      for ti in range(t):
        for hi in range(0, h, stride):
          for wi in range(0, w, stride):
            src = (ti + theta_t[ci], hi + theta_hw[0, ci], wi + theta_hw[1, ci])
            if 0 <= src[0] < t and 0 <= src[1] < h and 0 <= src[2] < w:
              expected[:, ti, hi // stride, wi // stride, ci] = video[
                :, src[0], src[1], src[2], ci
              ]
    np.testing.assert_allclose(
      np.asarray(y).reshape(expected.shape), expected, atol=1e-6
    )

  def test_learned_rows_are_the_op_shift(self):
    # A learned [3, C] shift is the op's (t, h, w) rows.
    n, t, h, w, c = 1, 4, 4, 4, 3
    x = jnp.asarray(np.random.default_rng(1).normal(size=(n * t, h, w, c)))
    shift = jnp.array([[0.5, -1.0, 0.25], [0.0, 1.0, -0.5], [1.5, 0.0, 0.75]])
    y = rn.RubiksShift().apply({"params": {"shift": shift}}, x, t)
    video = x.reshape(n, t, h, w, c).transpose(0, 4, 1, 2, 3)
    from jaxrl_vision.ops import rubiks_shift as rs

    expected = rs.rubiks_shift(video, shift).transpose(0, 2, 3, 4, 1)
    np.testing.assert_allclose(y, expected.reshape(y.shape), atol=1e-6)

  def test_temporal_init_modes(self):
    key = jax.random.key(0)
    np.testing.assert_array_equal(
      rn.temporal_shift_init("tsm", None, 16), [1, 1, -1, -1] + [0] * 12
    )
    np.testing.assert_array_equal(rn.temporal_shift_init("zero", None, 5), 0)
    noisy = rn.temporal_shift_init("tsm-g0.1", key, 16)
    self.assertLess(
      float(jnp.max(jnp.abs(noisy - rn.tsm_temporal_shift(16)))), 0.6
    )
    self.assertGreater(float(jnp.std(noisy[4:])), 0.03)
    uni = rn.temporal_shift_init("uni3", key, 256)
    self.assertLessEqual(float(jnp.max(jnp.abs(uni))), 3.0)
    self.assertGreater(float(jnp.max(jnp.abs(uni))), 2.5)
    with self.assertRaises(ValueError):
      rn.temporal_shift_init("uni3", None, 4)  # random modes need a key
    with self.assertRaises(ValueError):
      rn.temporal_shift_init("uni0", key, 4)


class InflationTest(absltest.TestCase):
  def _trees(self, temporal_shift="learned"):
    net_2d = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift="zero"
    )
    net_3d = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift=temporal_shift
    )
    params_2d = _random_variables(net_2d, _video())["params"]
    template = _random_variables(net_3d, _video(), seed=2)["params"]
    return params_2d, template

  def test_spatial_rows_and_other_params_copied(self):
    params_2d, template = self._trees()
    inflated = rn.inflate_2d_to_3d(params_2d, template, "tsm")
    chex.assert_trees_all_equal_shapes(inflated, template)
    for spec in rn.block_specs(8, (1, 1, 1, 1)):
      shift_3d = inflated[spec.name]["rubiks_shift"]["shift"]
      shift_2d = params_2d[spec.name]["rubiks_shift"]["shift"]
      np.testing.assert_array_equal(shift_3d[1:], shift_2d)  # (h, w) rows
      np.testing.assert_array_equal(
        shift_3d[0], rn.tsm_temporal_shift(spec.out_channels)
      )
      np.testing.assert_array_equal(
        inflated[spec.name]["conv_in"]["kernel"],
        params_2d[spec.name]["conv_in"]["kernel"],
      )
    np.testing.assert_array_equal(
      inflated["fc"]["kernel"], params_2d["fc"]["kernel"]
    )

  def test_random_modes_and_aq_template(self):
    params_2d, template = self._trees()
    inflated = rn.inflate_2d_to_3d(
      params_2d, template, "uni0.5", jax.random.key(3)
    )
    t_rows = [
      inflated[s.name]["rubiks_shift"]["shift"][0]
      for s in rn.block_specs(8, (1, 1, 1, 1))
    ]
    self.assertLessEqual(max(float(jnp.max(jnp.abs(r))) for r in t_rows), 0.5)
    # AQ: spatial [2, C] shifts copied as is; attention logits kept.
    params_2d, template_aq = self._trees("attention")
    inflated = rn.inflate_2d_to_3d(params_2d, template_aq)
    block = inflated["layer2_0"]
    np.testing.assert_array_equal(
      block["rubiks_shift"]["shift"],
      params_2d["layer2_0"]["rubiks_shift"]["shift"],
    )
    np.testing.assert_array_equal(
      block["attention_shift"]["attention"],
      template_aq["layer2_0"]["attention_shift"]["attention"],
    )

  def test_mismatch_raises(self):
    params_2d, template = self._trees()
    wider = rn.make_rubiksnet_module("nano", NUM_CLASSES, width=12)
    with self.assertRaises(ValueError):
      rn.inflate_2d_to_3d(
        params_2d, _random_variables(wider, _video())["params"]
      )


class NanoForwardTest(chex.TestCase):
  def test_shapes_and_features(self):
    module = rn.make_rubiksnet_module("nano", NUM_CLASSES)
    variables = _random_variables(module, _video())
    logits = jax.jit(module.apply)(variables, _video())
    chex.assert_shape(logits, (VIDEO[0], NUM_CLASSES))
    chex.assert_tree_all_finite(logits)
    encoder = rn.make_rubiksnet_module("nano", None, width=12)
    feats = jax.eval_shape(
      encoder.apply, _random_variables(encoder, _video()), _video()
    )
    chex.assert_shape(feats, (VIDEO[0], 8 * 12))

  def test_per_frame_baseline_ignores_frame_order(self):
    # temporal_shift="zero": frames never mix and logits are averaged over
    # T, so a clip and its time reversal give the same logits. A learned
    # temporal shift (the same weights otherwise) tells them apart.
    video = _video(seed=3)
    reverse = video[:, ::-1]
    per_frame = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift="zero"
    )
    variables = _random_variables(per_frame, video)
    apply = jax.jit(per_frame.apply)
    np.testing.assert_allclose(
      apply(variables, video), apply(variables, reverse), rtol=1e-5, atol=1e-6
    )
    learned = rn.make_rubiksnet_module("nano", NUM_CLASSES)
    variables = _random_variables(learned, video)
    apply = jax.jit(learned.apply)
    diff = jnp.max(jnp.abs(apply(variables, video) - apply(variables, reverse)))
    self.assertGreater(float(diff), 1e-3)

  def test_hardened_aq_matches_annealed(self):
    # At the end of annealing (τ = 1e-3) the soft attention is one-hot, so
    # the argmax-hardened network (integer shifts) gives the same logits.
    module = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift="attention"
    )
    video = _video(seed=5)
    variables = _random_variables(module, video)
    hard = jax.jit(module.apply, static_argnames="hard_attention")(
      variables, video, hard_attention=True
    )
    soft = jax.jit(module.apply)  # τ is traced: one compile for both
    np.testing.assert_allclose(
      hard, soft(variables, video, temperature=1e-3), rtol=1e-5, atol=1e-5
    )
    warm = soft(variables, video, temperature=2.0)
    self.assertGreater(float(jnp.max(jnp.abs(warm - hard))), 1e-3)

  def test_gradient_step(self):
    # One SGD step of the RubiksNet optimizer on an AQ nano in train mode:
    # finite loss, BN statistics updated, and every shift leaf moved by
    # lr·0.01 times per-channel unit vectors.
    module = rn.make_rubiksnet_module(
      "nano", NUM_CLASSES, temporal_shift="attention"
    )
    video = _video(seed=4)
    labels = jnp.array([0, 3])
    variables = _random_variables(module, video)
    lr = 0.5
    opt = sgn.make_rubiksnet_optimizer(lr, momentum=0.9)
    tau = aq.temperature_schedule(steps=10)(3)

    def loss_fn(params, batch_stats):
      logits, updates = module.apply(
        {"params": params, "batch_stats": batch_stats},
        video,
        train=True,
        temperature=tau,
        mutable=["batch_stats"],
      )
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      budget = aq.budget_loss(rn.attention_weights(params, tau), 0.25)
      return jnp.mean(ce) + 0.1 * budget, updates["batch_stats"]

    @jax.jit
    def step(params, batch_stats, opt_state):
      (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats
      )
      updates, opt_state = opt.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), batch_stats, loss, grads

    params = variables["params"]
    new_params, new_stats, loss, grads = jax.device_get(
      step(params, variables["batch_stats"], opt.init(params))
    )  # numpy from here: no eager op compiles per shape
    self.assertTrue(np.isfinite(loss))
    chex.assert_tree_all_finite(new_params)
    self.assertFalse(
      np.allclose(
        new_stats["bn_last"]["mean"],
        variables["batch_stats"]["bn_last"]["mean"],
      )
    )
    for spec in rn.block_specs(8, (1, 1, 1, 1)):
      before = np.asarray(params[spec.name]["rubiks_shift"]["shift"])
      after = new_params[spec.name]["rubiks_shift"]["shift"]
      self.assertEqual(before.shape, (2, spec.out_channels))  # AQ: (h, w)
      norms = np.linalg.norm(after - before, axis=0) / (lr * 0.01)
      g = grads[spec.name]["rubiks_shift"]["shift"]
      nonzero = np.linalg.norm(g, axis=0) > 0
      self.assertTrue(np.any(nonzero))
      np.testing.assert_allclose(norms[nonzero], 1.0, rtol=1e-4)
      att = grads[spec.name]["attention_shift"]["attention"]
      self.assertGreater(np.max(np.abs(att)), 0.0)
    self.assertLen(rn.attention_weights(params, tau), 5)


if __name__ == "__main__":
  absltest.main()
