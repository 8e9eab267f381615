"""Tests for the QT-Opt / Visionary Q-function."""

import functools
import json
import os
import tempfile

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from experiments import plots
from jaxrl_vision.networks import visionary as vis
from jaxrl_vision.search import visionary as space

B = 2  # batch
H, W, C = 3, 4, 5  # a non-square map, so reshapes of H*W are checked
A = vis.ACTION_SIZE + vis.STATE_SIZE  # action (7) + state (3)


def _x_a(seed=0):
  kx, ka = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, (B, H, W, C)), jax.random.normal(ka, (B, A))


def _random_params(module, *args, seed=1, scale=0.5):
  """Random weights *and* biases of `module.init`'s shapes.

  Non-zero biases make a dropped bias show. numpy draws on `eval_shape`
  skip compiling an initializer per weight shape (the slow part on CPU).
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda s: jnp.asarray(scale * rng.normal(size=s.shape), s.dtype),
    shapes.get("params", {}),
  )


def _init_apply(module, *args):
  params = _random_params(module, *args)
  return params, module.apply({"params": params}, *args)


def _dense(p, x):
  return x @ p["kernel"] + p["bias"]


def _obs(image_size, batch=B, seed=0):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  image = jax.random.randint(k1, (batch, image_size, image_size, 3), 0, 256)
  return {
    "image": image.astype(jnp.uint8),
    "gripper_closed": (jax.random.uniform(k2, (batch,)) > 0.5).astype(
      jnp.float32
    ),
    "height": jax.random.uniform(k3, (batch,), maxval=0.25),  # metres
    "aperture": jax.random.uniform(jax.random.fold_in(k3, 1), (batch,)),
  }


def _action(batch=B, seed=0):
  return jax.random.uniform(
    jax.random.key(seed + 100), (batch, 7), minval=-1.0, maxval=1.0
  )


@functools.cache
def _search_tiny():
  """(q, params) of the tiny search net, built once for the whole file.

  The params are numpy draws of the `init` shapes (LeCun scale, non-zero
  biases and logits): on CPU, running `init` itself compiles one program per
  weight shape (~10 s), and its values are flax's business, not ours.
  `PruningTest` runs a real `init` on a derived net.
  """
  size = vis.TRUNKS["grasping_tiny"].image_size
  q = vis.make_q_function("grasping_tiny", space.search_architecture(), size)
  shapes = jax.eval_shape(q.init, jax.random.key(0), _obs(size), _action())
  rng = np.random.default_rng(0)

  def draw(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 10
    return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(fan_in), s.dtype)

  return q, jax.tree.map(draw, shapes)


def _str_path(path):
  return tuple(str(getattr(k, "key", k)) for k in path)


def _arch_leaves(params):
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {_str_path(p): x for p, x in flat if space.is_arch_param(_str_path(p))}


def _set(params, path, value):
  """A copy of `params` with the leaf at `path` replaced."""
  params = jax.tree.map(lambda x: x, params)
  node = params
  for k in path[:-1]:
    node = node[k]
  node[path[-1]] = jnp.asarray(value, jnp.float32)
  return params


class MergeOpsTest(chex.TestCase):
  @parameterized.parameters(*space.OPS)
  def test_output_shape_equals_input_shape(self, op):
    x, a = _x_a()
    _, y = _init_apply(vis.Supernet((op,)), x, a)
    chex.assert_shape(y, (B, H, W, C))
    chex.assert_tree_all_finite(y)

  def test_noop_is_identity_without_params(self):
    x, a = _x_a()
    variables = vis.Supernet(("noop",)).init(jax.random.key(0), x, a)
    self.assertEmpty(jax.tree.leaves(variables))
    np.testing.assert_array_equal(
      vis.Supernet(("noop",)).apply(variables, x, a), x
    )

  def test_add_hand_computed(self):
    x, a = _x_a()
    p, y = _init_apply(vis.AddMerge(), x, a)
    # T(a) = relu(relu(a W1 + b1) W2 + b2), one C-vector per sample.
    t = jax.nn.relu(_dense(p["out"], jax.nn.relu(_dense(p["hidden"], a))))
    chex.assert_shape(t, (B, C))
    np.testing.assert_allclose(y, x + t[:, None, None, :], rtol=1e-5)

  def test_concat_hand_computed(self):
    x, a = _x_a()
    p, y = _init_apply(vis.ConcatMerge(), x, a)
    e = jax.nn.relu(_dense(p["embed"], a))  # [B, 64]
    kernel = p["project"]["kernel"][0, 0]  # 1x1 conv = [C + 64, C] matmul
    expected = np.zeros((B, H, W, C), np.float32)
    for i in range(H):
      for j in range(W):
        z = jnp.concatenate([x[:, i, j], e], -1)
        expected[:, i, j] = jax.nn.relu(z @ kernel + p["project"]["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)

  def test_concat_has_the_params_and_init_of_a_conv_on_the_concatenation(
    self,
  ):
    class ConcatReference(nn.Module):  # the B1.4 form, tiled then conv'd
      @nn.compact
      def __call__(self, x, a):
        t = nn.relu(
          nn.Dense(64, kernel_init=vis.INIT_SCHEMES["fan_in"], name="embed")(a)
        )
        t = jnp.broadcast_to(t[:, None, None, :], x.shape[:3] + (64,))
        project = nn.Conv(
          x.shape[-1],
          (1, 1),
          kernel_init=vis.INIT_SCHEMES["fan_in"],
          name="project",
        )
        return nn.relu(project(jnp.concatenate([x, t], -1)))

    x, a = _x_a()
    key = jax.random.key(3)
    ours = vis.ConcatMerge().init(key, x, a)
    reference = ConcatReference().init(key, x, a)
    chex.assert_trees_all_equal(ours, reference)
    # Non-zero biases so that the per-example term is exercised.
    ours = _random_params(vis.ConcatMerge(), x, a)
    np.testing.assert_allclose(
      vis.ConcatMerge().apply({"params": ours}, x, a),
      ConcatReference().apply({"params": ours}, x, a),
      rtol=1e-5,
      atol=1e-6,
    )

  def test_hadamard_matches_reference(self):
    x, a = _x_a()
    p, y = _init_apply(vis.HadamardMerge(), x, a)
    g = np.asarray(_dense(p["gate"], a))  # [B, H*W], row-major over (i, j)
    expected = np.zeros((B, H, W, C), np.float32)
    for i in range(H):
      for j in range(W):
        expected[:, i, j, :] = x[:, i, j, :] * g[:, i * W + j, None]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)

  def test_conv_filters_matches_reference(self):
    x, a = _x_a()
    p, y = _init_apply(vis.ConvFiltersMerge(), x, a)
    k = np.asarray(_dense(p["filters"], a))  # [B, C*C], k[b, c*C + d]
    expected = np.zeros((B, H, W, C), np.float32)
    for b in range(B):
      for d in range(C):
        for c in range(C):
          expected[b, ..., d] += x[b, ..., c] * k[b, c * C + d]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


class MergeFlopsTest(chex.TestCase):
  def test_hand_computed(self):
    # 4 x 4 x 32 map, 10-vector: add = 2 (10 * 256 + 256 * 32) + 16 * 32.
    self.assertEqual(vis.merge_op_flops("add", 4, 4, 32, 10), 22016)
    self.assertEqual(vis.merge_op_flops("hadamard", 4, 4, 32, 10), 832)
    self.assertEqual(vis.merge_op_flops("noop", 4, 4, 32, 10), 0)
    with self.assertRaisesRegex(ValueError, "Unknown merge op"):
      vis.merge_op_flops("sum", 4, 4, 32, 10)

  @parameterized.parameters("add", "concat", "hadamard", "conv_filters")
  def test_within_5_percent_of_xla(self, op):
    # XLA's own count for the module (biases and activations included).
    x, a = jnp.zeros((1, 4, 4, 32)), jnp.zeros((1, 10))
    module = vis.MERGE_MODULES[op]()
    params = module.init(jax.random.key(0), x, a)
    cost = jax.jit(module.apply).lower(params, x, a).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ours = vis.merge_op_flops(op, 4, 4, 32, 10)
    np.testing.assert_allclose(ours, cost["flops"], rtol=0.05)

  def test_q_function_lists_every_supernet(self):
    q = vis.make_q_function(
      "grasping_small", space.search_architecture(), 32, coord_channels=True
    )
    self.assertEqual(tuple(q.merge_flops), space.LOCATIONS)
    vector = vis.ACTION_SIZE + vis.STATE_SIZE
    # pool2 is 4 x 4 with the 2 coordinate channels, pool3 2 x 2.
    expected = {
      "pool2": (4, 4, 34),
      "conv_b2_2": (4, 4, 32),
      "pool3": (2, 2, 32),
    }
    for location, shape in expected.items():
      self.assertEqual(
        q.merge_flops[location],
        tuple(vis.merge_op_flops(op, *shape, vector) for op in space.OPS),
      )
    baseline = vis.make_q_function(
      "grasping_small", space.baseline_architecture(), 32
    )
    self.assertEqual(baseline.merge_flops, {})


class SupernetTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.x, self.a = _x_a()
    self.module = vis.Supernet(space.OPS)
    self.params = _random_params(self.module, self.x, self.a)
    # Each op alone, on the same sub-params.
    self.single = {"noop": self.x}
    for op in space.OPS[1:]:
      self.single[op] = vis.MERGE_MODULES[op]().apply(
        {"params": self.params[op]}, self.x, self.a
      )

  def _apply(self, logits):
    params = _set(self.params, ("merge_logits",), logits)
    return self.module.apply({"params": params}, self.x, self.a)

  @parameterized.parameters(*range(len(space.OPS)))
  def test_one_hot_logits_select_one_op(self, j):
    # softmax([.., 50, ..]) puts e^-50 ~ 2e-22 on the others.
    y = self._apply(50.0 * jax.nn.one_hot(j, len(space.OPS)))
    np.testing.assert_allclose(
      y, self.single[space.OPS[j]], rtol=1e-5, atol=1e-6
    )

  def test_zero_logits_average_the_ops(self):
    # softmax(0) = 1/5 each.
    y = self._apply(jnp.zeros(len(space.OPS)))
    expected = sum(self.single.values()) / len(space.OPS)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


class PeerAttentionTest(chex.TestCase):
  def setUp(self):
    super().setUp()
    self.x, a = _x_a()
    keys = jax.random.split(jax.random.key(3), 2)
    self.pooled = {
      "action": a,  # [B, A]: GAP(a) = a
      "pool2": jax.random.normal(keys[0], (B, C)),
      "dilated2": jax.random.normal(keys[1], (B, C)),
    }
    self.width = 6  # C_max != C, so the two Dense layers are told apart

  def _params(self, module):
    return _random_params(module, self.x, self.pooled)

  def test_learned_weights_select_one_candidate(self):
    module = vis.PeerAttention(tuple(self.pooled), True, self.width)
    # sigmoid(-50) ~ 2e-22, sigmoid(50) = 1: only "pool2" contributes.
    params = _set(self._params(module), ("peer_logits",), [-50.0, 50.0, -50])
    y = module.apply({"params": params}, self.x, self.pooled)
    m = _dense(params["proj_pool2"], self.pooled["pool2"])  # [B, 6]
    attention = jax.nn.sigmoid(_dense(params["attention"], m))  # [B, C]
    np.testing.assert_allclose(
      y, self.x * attention[:, None, None, :], rtol=1e-5, atol=1e-6
    )

  def test_zero_logits_weight_each_candidate_by_half(self):
    module = vis.PeerAttention(tuple(self.pooled), True, self.width)
    params = self._params(module)
    params = _set(params, ("peer_logits",), jnp.zeros(3))
    y = module.apply({"params": params}, self.x, self.pooled)
    m = sum(
      0.5 * _dense(params[f"proj_{v}"], u) for v, u in self.pooled.items()
    )
    attention = jax.nn.sigmoid(_dense(params["attention"], m))
    np.testing.assert_allclose(
      y, self.x * attention[:, None, None, :], rtol=1e-5, atol=1e-6
    )

  def test_fixed_edges_are_a_plain_sum(self):
    module = vis.PeerAttention(("action", "pool2"), False, self.width)
    params = self._params(module)
    self.assertNotIn("peer_logits", params)
    y = module.apply({"params": params}, self.x, self.pooled)
    m = _dense(params["proj_action"], self.pooled["action"]) + _dense(
      params["proj_pool2"], self.pooled["pool2"]
    )
    attention = jax.nn.sigmoid(_dense(params["attention"], m))
    np.testing.assert_allclose(
      y, self.x * attention[:, None, None, :], rtol=1e-5, atol=1e-6
    )

  def _mean_gate_at_init(self, module):
    params = module.init(jax.random.key(0), self.x, self.pooled)
    y = module.apply(params, self.x, self.pooled)
    return float(jnp.sum(y * self.x) / jnp.sum(self.x * self.x))

  def test_fixed_edges_start_near_the_identity(self):
    # Gates sigmoid(2 + small) ~ 0.88 at init (ATTENTION_BIAS), not 0.5:
    # five modules in a row keep half the signal, not 1/32.
    fixed = vis.PeerAttention(("action", "pool2"), False, self.width)
    self.assertBetween(self._mean_gate_at_init(fixed), 0.75, 0.95)
    # The search's modules start at the sigmoid's steepest point.
    searched = vis.PeerAttention(("action", "pool2"), True, self.width)
    self.assertBetween(self._mean_gate_at_init(searched), 0.35, 0.65)


def _shapes(trunk_name, architecture, image_size=None, batch=B):
  """(param shapes, feature shapes) with no compute."""
  s = image_size or vis.TRUNKS[trunk_name].image_size
  q = vis.make_q_function(trunk_name, architecture, s)
  obs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _obs(s))
  action = jax.ShapeDtypeStruct((batch, 7), jnp.float32)
  params = jax.eval_shape(q.init, jax.random.key(0), obs, action)
  features = jax.eval_shape(q.trunk, params, obs["image"])
  return params, features


class TrunkShapesTest(chex.TestCase):
  @parameterized.named_parameters(
    # (trunk, pool2 side = merge map, final side, width); SAME pools: ceil.
    # 472 -> 236 -> 79 -> 27 -> 14 -> 12, 10, 8 (3 VALID 3x3 convs).
    ("grasping44", "grasping44", 27, 8, 64),
    ("grasping44_128", "grasping44_128", 8, 4, 64),  # 128 -> 64 -> 22 -> 8 -> 4
    ("grasping44_64", "grasping44_64", 8, 4, 64),  # 64 -> 32 -> 16 -> 8 -> 4
    ("grasping_small", "grasping_small", 8, 4, 32),  # 64 -> 32 -> 16 -> 8 -> 4
    ("grasping_tiny", "grasping_tiny", 4, 2, 16),  # 32 -> 16 -> 8 -> 4 -> 2
  )
  def test_shapes(self, trunk_name, merge_side, final_side, width):
    params, features = _shapes(trunk_name, space.search_architecture())
    chex.assert_shape(features["pool2"], (B, merge_side, merge_side, width))
    chex.assert_shape([features["dilated2"], features["dilated4"]], (B, width))
    head = params["params"]["head"]
    chex.assert_shape(head["fc1"]["kernel"], (final_side**2 * width, 64))
    chex.assert_shape(
      head["merge_pool2"]["hadamard"]["gate"]["kernel"], (A, merge_side**2)
    )

  def test_grasping44_stage_table(self):
    self.assertEqual(
      tuple(vis.feature_shapes("grasping44", 472)), (236, 79, 27, 14, 8)
    )

  def test_baseline_trunk_is_pool2_only_and_faithful_size(self):
    params, features = _shapes("grasping44", space.baseline_architecture())
    self.assertEqual(set(features), {"pool2"})
    # B1.2: 1.238 M with BN; without BN (and its ~2 k params) 1.240 M.
    num_params = sum(x.size for x in jax.tree.leaves(params))
    self.assertBetween(num_params, 1.23e6, 1.25e6)


class QFunctionTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.size = vis.TRUNKS["grasping_tiny"].image_size
    cls.q, cls.params = _search_tiny()
    cls.obs, cls.action = _obs(cls.size), _action()

  def test_apply_equals_head_of_trunk(self):
    logits = self.q.apply(self.params, self.obs, self.action)
    chex.assert_shape(logits, (B,))
    chex.assert_tree_all_finite(logits)
    state = vis.state_vector(self.obs)
    chex.assert_shape(state, (B, 3))
    features = self.q.trunk(self.params, self.obs["image"])
    split = self.q.head(self.params, features, state, self.action)
    np.testing.assert_array_equal(logits, split)  # the same ops, eagerly
    self.assertGreater(float(jnp.abs(logits[0] - logits[1])), 0.0)

  def test_head_on_tiled_features_matches_repeated_obs(self):
    num_samples = B  # CEM: one image, N actions (N = B reuses eager caches)
    obs = jax.tree.map(lambda x: x[:1], self.obs)
    actions = _action(num_samples, seed=7)
    features = self.q.trunk(self.params, obs["image"])
    tiled = jax.tree.map(lambda f: jnp.repeat(f, num_samples, 0), features)
    state = jnp.tile(vis.state_vector(obs), (num_samples, 1))
    logits = self.q.head(self.params, tiled, state, actions)
    repeated = jax.tree.map(lambda x: jnp.repeat(x, num_samples, 0), obs)
    expected = self.q.apply(self.params, repeated, actions)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    # The actions matter (the merge is live), so this compared something.
    self.assertGreater(float(jnp.ptp(logits)), 0.0)

  def test_every_arch_param_is_live(self):
    # A cheap stand-in for a non-zero gradient: nudging an entry of a logit
    # vector must move the output. Every entry at pool3 (which sees every
    # earlier location), entry 0 elsewhere. Attention weights are scaled up
    # from their N(0, 0.01) init so that the effect is well above rounding.
    def scale_attention(path, x):
      keys = _str_path(path)
      if any(k.startswith("attention_") for k in keys):
        return x if space.is_arch_param(keys) else 30.0 * x
      return x

    params = jax.tree_util.tree_map_with_path(scale_attention, self.params)
    # A batch of 8: with 2 a tiny net can have a whole layer's ReLUs off, and
    # an edge from a zero GAP then moves nothing.
    obs, action = _obs(self.size, batch=8), _action(batch=8)
    logits = self.q.apply(params, obs, action)
    arch = _arch_leaves(params)
    self.assertLen(arch, 10)
    for path, value in arch.items():
      pool3 = path[-2] == "attention_pool3"
      for j in range(value.shape[0] if pool3 else 1):
        nudged = _set(params, path, value.at[j].add(1.0))
        moved = self.q.apply(nudged, obs, action)
        self.assertGreater(
          float(jnp.abs(moved - logits).max()), 1e-5, msg=f"{path} [{j}]"
        )

  def test_attention_candidates_are_wired(self):
    head = self.params["params"]["head"]
    pool3 = head["attention_pool3"]
    expected = ("action",) + space.LOCATIONS + space.DILATED
    self.assertEqual(
      set(pool3), {f"proj_{v}" for v in expected} | {"attention", "peer_logits"}
    )
    chex.assert_shape(pool3["peer_logits"], (len(expected),))
    chex.assert_shape(head["attention_pool2"]["peer_logits"], (4,))

  def test_state_vector_scales_the_height_to_decimetres(self):
    obs = {
      "gripper_closed": jnp.array([0.0, 1.0]),
      "height": jnp.array([0.10, 0.012]),
      "aperture": jnp.array([1.0, 0.4]),
    }
    np.testing.assert_allclose(
      vis.state_vector(obs), [[0.0, 1.0, 1.0], [1.0, 0.12, 0.4]], rtol=1e-6
    )

  def test_coord_channels(self):
    x = jnp.zeros((2, 3, 4, 1))
    y = vis.add_coordinates(x)
    chex.assert_shape(y, (2, 3, 4, 3))
    # Rows -1, 0, 1 down channel 1; columns -1, -1/3, 1/3, 1 across 2.
    np.testing.assert_allclose(y[1, :, 0, 1], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(y[0, 2, :, 2], [-1, -1 / 3, 1 / 3, 1], rtol=1e-6)
    size = vis.TRUNKS["grasping_tiny"].image_size
    q = vis.make_q_function(
      "grasping_tiny", space.baseline_architecture(), size, coord_channels=True
    )
    params = q.init(jax.random.key(0), _obs(size), jnp.zeros((B, 7)))
    kernel = params["params"]["trunk"]["conv1"]["kernel"]
    chex.assert_shape(kernel, (6, 6, 5, 16))  # RGB + 2 coordinates
    # A blank image still tells positions apart: the map varies over space.
    features = q.trunk(params, jnp.zeros((1, size, size, 3), jnp.uint8))
    self.assertGreater(float(jnp.std(features["pool2"][0, ..., :].mean(-1))), 0)

  def test_wrong_image_size_raises(self):
    with self.assertRaisesRegex(ValueError, "Expected images"):
      self.q.trunk(self.params, jnp.zeros((B, 16, 16, 3), jnp.uint8))


class ArchParamsTest(chex.TestCase):
  @parameterized.named_parameters(
    # (architecture, number of merge logits, number of attention logits)
    ("baseline", space.baseline_architecture(), 0, 0),
    ("search", space.search_architecture(), 5, 5),
    ("supernet_only", space.supernet_only_architecture(), 5, 0),
    ("attention_only", space.attention_only_architecture(), 0, 5),
  )
  def test_is_arch_param(self, architecture, num_merge, num_attention):
    params, _ = _shapes("grasping_tiny", architecture)
    arch = _arch_leaves(params)
    names = [path[-1] for path in arch]
    self.assertEqual(names.count("merge_logits"), num_merge)
    self.assertEqual(names.count("peer_logits"), num_attention)
    self.assertLen(arch, num_merge + num_attention)

  def test_is_arch_param_paths(self):
    self.assertTrue(
      space.is_arch_param(("params", "head", "merge_pool2", "merge_logits"))
    )
    self.assertTrue(space.is_arch_param(("attention_pool3", "peer_logits")))
    self.assertFalse(
      space.is_arch_param(("params", "head", "merge_pool2", "add", "kernel"))
    )
    self.assertFalse(space.is_arch_param(()))

  def test_baseline_has_no_search_modules(self):
    params, _ = _shapes("grasping_tiny", space.baseline_architecture())
    head = params["params"]["head"]
    self.assertEqual(set(head["merge_pool2"]), {"add"})
    self.assertEmpty([k for k in head if k.startswith("attention_")])
    self.assertEmpty([k for k in head if "conv_b2" in k or "pool3" in k])


class PruningTest(chex.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.size = vis.TRUNKS["grasping_tiny"].image_size
    cls.search = space.search_architecture()
    _, cls.params = _search_tiny()

  def _hand_set(self, dilated_kept):
    params = self.params
    hot = {  # argmax per location
      "pool2": "add",
      "conv_b2_1": "noop",
      "conv_b2_2": "hadamard",
      "conv_b2_3": "conv_filters",
      "pool3": "concat",
    }
    for location, op in hot.items():
      logits = 2.0 * jax.nn.one_hot(space.OPS.index(op), len(space.OPS)) - 1.0
      path = ("params", "head", f"merge_{location}", "merge_logits")
      params = _set(params, path, logits)
    # Candidates: action, locations up to here, dilated2, dilated4. Kept iff
    # h > 0 (sigmoid(h) > 0.5); h = 0 (sigmoid 0.5) is dropped.
    h = {
      "pool2": [1.0, -1.0, -1.0, 3.0 if dilated_kept else -3.0],
      "conv_b2_1": [-1.0, -1.0, 0.0, -1.0, -1.0],
      "conv_b2_2": [-1.0, 0.5, -1.0, 2.0, -1.0, -1.0],
      "conv_b2_3": [-1.0] * 7,
      "pool3": [-1.0, -1.0, -1.0, 0.1, -1.0, 0.2, -1.0, -1.0],
    }
    for location, logits in h.items():
      path = ("params", "head", f"attention_{location}", "peer_logits")
      params = _set(params, path, logits)
    return params

  @parameterized.named_parameters(("with_dilated", True), ("without", False))
  def test_derive_hand_set(self, dilated_kept):
    # The paper's threshold (Fig. 5): edges with sigmoid(h) > 0.5.
    derived = space.derive(self._hand_set(dilated_kept), self.search, 0.5)
    expected = space.Architecture(
      merge=(
        ("add",),
        ("noop",),
        ("hadamard",),
        ("conv_filters",),
        ("concat",),
      ),
      attention="fixed",
      edges=(
        ("action", "dilated4") if dilated_kept else ("action",),
        (),
        ("pool2", "conv_b2_2"),
        (),
        ("conv_b2_2", "pool3"),
      ),
      dilated=dilated_kept,
    )
    self.assertEqual(derived, expected)

  def test_dilated_stride_samples_the_dense_conv(self):
    # With dilated_stride s the dilated convs' GAP averages the stride-1
    # conv's outputs on a regular subgrid (same params): GAP stays unbiased.
    spec = vis.TRUNKS["grasping_tiny"]._replace(dilated_stride=2)
    trunk = vis._Trunk(spec, True, vis.INIT_SCHEMES["fan_in"])
    image = _obs(32, batch=2)["image"]
    params = trunk.init(jax.random.key(3), image)
    strided = trunk.apply(params, image)
    dense = trunk.clone(spec=spec._replace(dilated_stride=1))
    x = dense.apply(params, image)["pool2"]  # [2, n, n, C]
    n, s = x.shape[1], 2
    for name, rate in (("dilated2", 2), ("dilated4", 4)):
      kernel = params["params"][name]
      y = jax.nn.relu(
        jax.lax.conv_general_dilated(
          x,
          kernel["kernel"],
          (1, 1),
          "SAME",
          rhs_dilation=(rate, rate),
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        + kernel["bias"]
      )
      k_eff = 2 * rate + 1
      out = -(-n // s)
      lo_s = max((out - 1) * s + k_eff - n, 0) // 2
      first = (k_eff - 1) // 2 - lo_s
      rows = first + s * np.arange(out)
      self.assertTrue(np.all((rows >= 0) & (rows < n)))
      expected = y[:, rows][:, :, rows].mean(axis=(1, 2))
      np.testing.assert_allclose(strided[name], expected, rtol=1e-5, atol=1e-6)
      self.assertGreater(
        float(jnp.abs(strided[name] - y.mean(axis=(1, 2))).max()), 0.0
      )

  def test_derived_network_runs_without_arch_params(self):
    derived = space.derive(self._hand_set(True), self.search)
    q = vis.make_q_function("grasping_tiny", derived, self.size)
    # A real init. "rbg" keys compile ~2x faster than threefry on CPU.
    key = jax.random.key(1, impl="rbg")
    params = jax.jit(q.init)(key, _obs(self.size), _action())
    self.assertEmpty(_arch_leaves(params))
    head = params["params"]["head"]
    self.assertNotIn("merge_conv_b2_1", head)  # argmax noop: no module
    self.assertNotIn("attention_conv_b2_1", head)  # no kept edge: no module
    self.assertEqual(
      set(head["attention_pool2"]),
      {"proj_action", "proj_dilated4", "attention"},
    )
    logits = q.apply(params, _obs(self.size), _action())
    chex.assert_shape(logits, (B,))
    chex.assert_tree_all_finite(logits)
    # Jittable, one trace for new values of the same shapes.
    apply = jax.jit(chex.assert_max_traces(q.apply, n=1))
    for seed in (0, 1):
      jitted = apply(params, _obs(self.size, seed=seed), _action(seed=seed))
    np.testing.assert_allclose(
      jitted,
      q.apply(params, _obs(self.size, seed=1), _action(seed=1)),
      rtol=1e-5,
      atol=1e-5,
    )
    self.assertEqual(space.derive(params, derived), derived)  # a fixed point

  def test_derive_keeps_off_and_baseline(self):
    baseline = space.baseline_architecture()
    params, _ = _shapes("grasping_tiny", baseline)
    self.assertEqual(space.derive(params, baseline), baseline)
    params, _ = _shapes("grasping_tiny", space.supernet_only_architecture())
    params = jax.tree.map(jnp.zeros_like, params)
    params = _set(
      params, ("params", "head", "merge_pool3", "merge_logits"), [0, 0, 0, 1, 0]
    )
    derived = space.derive(params, space.supernet_only_architecture())
    # Zero logits tie: the first op, noop, wins.
    self.assertEqual(derived.merge, (("noop",),) * 4 + (("hadamard",),))
    self.assertEqual(derived.attention, "off")

  def test_default_threshold_keeps_only_raised_gates(self):
    # GATE_THRESHOLD 0.6: sigmoid(0.5) = 0.62 stays, sigmoid(0.1) = 0.52
    # and sigmoid(0.2) = 0.55 go (both kept at 0.5).
    self.assertEqual(space.GATE_THRESHOLD, 0.6)
    derived = space.derive(self._hand_set(True), self.search)
    self.assertEqual(
      derived.edges,
      (("action", "dilated4"), (), ("pool2", "conv_b2_2"), (), ()),
    )

  def test_arch_weights_and_json_round_trip(self):
    params = self._hand_set(True)
    weights = space.arch_weights(params, self.search)
    np.testing.assert_allclose(sum(weights["merge"]["pool2"].values()), 1.0)
    self.assertAlmostEqual(
      weights["attention"]["pool2"]["dilated4"], float(jax.nn.sigmoid(3.0)), 6
    )
    for architecture in (
      self.search,
      space.baseline_architecture(),
      space.derive(params, self.search, 0.5),
    ):
      d = json.loads(
        json.dumps(space.architecture_to_json(architecture, weights))
      )
      self.assertEqual(space.architecture_from_json(d), architecture)
      self.assertEqual(
        hash(space.architecture_from_json(d)), hash(architecture)
      )

  def test_draw_writes_png(self):
    params = self._hand_set(True)
    weights = space.arch_weights(params, self.search)
    derived = space.derive(params, self.search)
    tmp = self.enter_context(tempfile.TemporaryDirectory())
    drawn = {}
    for name, architecture in (("search", self.search), ("derived", derived)):
      path = os.path.join(tmp, f"{name}.png")
      drawn[name] = plots.draw_architecture(architecture, weights, path)
      with open(path, "rb") as f:
        data = f.read()
      self.assertGreater(len(data), 1000)
      self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
    # The action's attention box only where an attention edge leaves it.
    self.assertIn("action_attn", drawn["search"])
    self.assertIn("dilated2", drawn["search"])
    baseline = space.baseline_architecture()
    path = os.path.join(tmp, "baseline.png")
    drawn = plots.draw_architecture(baseline, None, path)
    self.assertIn("action", drawn)
    self.assertNotIn("action_attn", drawn)
    self.assertNotIn("dilated2", drawn)


class ValidationTest(parameterized.TestCase):
  def test_unknown_trunk(self):
    with self.assertRaisesRegex(ValueError, "Unknown trunk 'nope'.*grasping"):
      vis.make_q_function("nope", space.baseline_architecture(), 32)

  @parameterized.parameters(
    ("grasping44", 64),  # 64 -> 32 -> 11 -> 4 -> 2 -> 3 VALID convs: 0
    ("grasping_tiny", 0),
  )
  def test_bad_image_size(self, trunk_name, image_size):
    with self.assertRaises(ValueError):
      vis.make_q_function(trunk_name, space.baseline_architecture(), image_size)

  def test_unknown_init_scheme(self):
    with self.assertRaisesRegex(ValueError, "init_scheme"):
      vis.make_q_function(
        "grasping_tiny", space.baseline_architecture(), 32, init_scheme="x"
      )

  @parameterized.named_parameters(
    ("four_locations", {"merge": (("add",),) * 4, "attention": "off"}),
    ("unknown_op", {"merge": (("add", "mul"),) * 5, "attention": "off"}),
    ("empty_ops", {"merge": ((),) * 5, "attention": "off"}),
    ("duplicate_ops", {"merge": (("add", "add"),) * 5, "attention": "off"}),
    ("unknown_mode", {"merge": (("add",),) * 5, "attention": "maybe"}),
    (
      "edges_without_fixed",
      {"merge": (("add",),) * 5, "attention": "search", "edges": ((),) * 5},
    ),
    (
      "fixed_wrong_edge_count",
      {"merge": (("add",),) * 5, "attention": "fixed", "edges": ((),) * 4},
    ),
    (
      "later_location_edge",  # pool2 cannot attend to pool3
      {
        "merge": (("add",),) * 5,
        "attention": "fixed",
        "edges": (("pool3",),) + ((),) * 4,
      },
    ),
    (
      "dilated_edge_without_dilated",
      {
        "merge": (("add",),) * 5,
        "attention": "fixed",
        "edges": (("dilated2",),) + ((),) * 4,
      },
    ),
    (
      "dilated_not_bool",
      {"merge": (("add",),) * 5, "attention": "off", "dilated": 1},
    ),
  )
  def test_malformed_architecture(self, fields):
    architecture = space.Architecture(**fields)
    with self.assertRaises(ValueError):
      vis.make_q_function("grasping_tiny", architecture, 32)
    with self.assertRaises(ValueError):
      space.architecture_from_json(space.architecture_to_json(architecture))

  def test_unhashable_architecture(self):
    architecture = space.Architecture(merge=[("add",)] * 5, attention="off")
    with self.assertRaisesRegex(ValueError, "tuple"):
      vis.make_q_function("grasping_tiny", architecture, 32)

  @parameterized.named_parameters(
    ("unknown_op", {"merge": [["add", "mul"]] * 5, "attention": "off"}),
    ("four_locations", {"merge": [["add"]] * 4, "attention": "off"}),
    ("missing_attention", {"merge": [["add"]] * 5}),
    ("string_ops", {"merge": ["add"] * 5, "attention": "off"}),
    (
      "other_locations",
      {"locations": ["a"] * 5, "merge": [["add"]] * 5, "attention": "off"},
    ),
  )
  def test_malformed_json(self, d):
    with self.assertRaises(ValueError):
      space.architecture_from_json(d)


if __name__ == "__main__":
  absltest.main()
