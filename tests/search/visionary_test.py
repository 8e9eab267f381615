"""The search rule: decisiveness, agreement, the architecture optimizer,
the gate threshold, presets (hand-computed cases)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest

from jaxrl_vision.search import visionary as space


def _weights(merge_top):
  """arch_weights-shaped dict: per location one op at `top`, the other four
  sharing the rest; two gates per attention location."""
  merge = {}
  for location, (op, top) in zip(space.LOCATIONS, merge_top, strict=True):
    rest = (1.0 - top) / (len(space.OPS) - 1)
    merge[location] = {o: (top if o == op else rest) for o in space.OPS}
  attention = {
    "pool2": {"action": 0.2, "pool2": 0.9},
    "pool3": {"action": 0.5, "dilated2": 0.55},
  }
  return {"merge": merge, "attention": attention}


class DecisivenessTest(absltest.TestCase):
  def test_uniform_and_decided_locations(self):
    weights = _weights(
      [("add", 0.2), ("noop", 0.96), ("concat", 0.5), ("add", 0.4), ("add", 1)]
    )
    d = space.decisiveness(weights)
    self.assertAlmostEqual(d["merge"]["pool2"]["top"], 0.2)
    # Uniform over 5 ops: entropy log 5, normalised to 1.
    self.assertAlmostEqual(d["merge"]["pool2"]["entropy"], 1.0, places=4)
    # Top 0.96, four at 0.01: -(0.96 ln 0.96 + 4 * 0.01 ln 0.01) / ln 5.
    expected = -(0.96 * math.log(0.96) + 4 * 0.01 * math.log(0.01)) / math.log(
      5
    )
    self.assertAlmostEqual(
      d["merge"]["conv_b2_1"]["entropy"], expected, places=4
    )
    self.assertEqual(d["merge"]["conv_b2_1"]["top_op"], "noop")
    self.assertAlmostEqual(d["merge"]["pool3"]["entropy"], 0.0, places=4)
    # Top >= 0.5 at conv_b2_1, conv_b2_2 (0.5 exactly) and pool3.
    self.assertEqual(d["locations_top_ge_0.5"], 3)
    self.assertEqual(d["gate_min"], 0.2)
    self.assertEqual(d["gate_max"], 0.9)
    self.assertAlmostEqual(d["attention"]["pool2"]["spread"], 0.7)

  def test_fixed_locations_are_not_counted(self):
    weights = _weights([("add", 1.0)] * 5)
    weights["merge"]["pool2"] = {"add": 1.0}  # a single candidate
    weights["attention"] = {}
    d = space.decisiveness(weights)
    self.assertNotIn("pool2", d["merge"])
    self.assertEqual(d["locations_top_ge_0.5"], 4)
    self.assertIsNone(d["gate_min"])


class AgreementTest(absltest.TestCase):
  def test_counts_equal_ops_and_edge_overlap(self):
    a = space.Architecture(
      merge=(("add",), ("noop",), ("concat",), ("add",), ("noop",)),
      attention="fixed",
      edges=(("action",), (), ("pool2", "conv_b2_2"), (), ()),
    )
    b = space.Architecture(
      merge=(("add",), ("hadamard",), ("concat",), ("noop",), ("noop",)),
      attention="fixed",
      edges=(("action",), (), ("pool2",), (), ("pool3",)),
    )
    agreement = space.architecture_agreement(a, b)
    self.assertEqual(agreement["merge_ops_agree"], 3)
    self.assertFalse(agreement["per_location"]["conv_b2_1"])
    # Edges {pool2:action, b2_2:pool2, b2_2:b2_2} vs {pool2:action,
    # b2_2:pool2, pool3:pool3}: 2 shared of 4.
    self.assertEqual(agreement["edges_jaccard"], 0.5)


def _params():
  return {
    "params": {
      "head": {
        "merge_pool2": {"merge_logits": jnp.zeros(5)},
        "attention_pool2": {"peer_logits": jnp.zeros(3)},
        "b2_conv1": {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)},
      }
    }
  }


class SearchOptimizerTest(absltest.TestCase):
  def test_each_part_takes_its_own_step(self):
    opt = space.make_search_optimizer(optax.sgd(0.1), optax.sgd(2.0))
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    head = updates["params"]["head"]
    np.testing.assert_allclose(head["merge_pool2"]["merge_logits"], -2.0)
    np.testing.assert_allclose(head["attention_pool2"]["peer_logits"], -2.0)
    np.testing.assert_allclose(head["b2_conv1"]["kernel"], -0.1)
    np.testing.assert_allclose(head["b2_conv1"]["bias"], -0.1)

  def test_warmup_holds_only_the_arch_params(self):
    opt = space.make_search_optimizer(
      optax.sgd(0.1), optax.adam(0.5), warmup_steps=3
    )
    params = _params()
    grads = jax.tree.map(jnp.ones_like, params)
    state = opt.init(params)
    for step in range(5):
      updates, state = opt.update(grads, state, params)
      head = updates["params"]["head"]
      arch = head["merge_pool2"]["merge_logits"]
      # Adam's first step is -lr * sign(g): 0.5 once the warm-up is over.
      np.testing.assert_allclose(arch, 0.0 if step < 3 else -0.5, atol=1e-4)
      np.testing.assert_allclose(head["b2_conv1"]["kernel"], -0.1)

  def test_entropy_gradient_by_hand(self):
    opt = space.make_search_optimizer(
      optax.sgd(0.1), optax.sgd(1.0), entropy_weight=0.5
    )
    params = _params()
    w = jnp.array([1.0, 0.0, 0.0, 0.0, -1.0])
    h = jnp.array([0.0, 2.0])
    head = params["params"]["head"]
    head["merge_pool2"]["merge_logits"] = w
    head["attention_pool2"]["peer_logits"] = h
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, opt.init(params), params)
    up = updates["params"]["head"]
    # Softmax entropy / log 5: dH/dw_i = -p_i (log p_i + H).
    p = np.exp(w) / np.exp(w).sum()
    entropy = -(p * np.log(p)).sum()
    grad_w = -p * (np.log(p) + entropy) / np.log(5)
    np.testing.assert_allclose(
      up["merge_pool2"]["merge_logits"], -0.5 * grad_w, rtol=1e-5
    )
    # Mean Bernoulli entropy in bits: dH/dh = -s(1 - s) h / (2 log 2).
    sig = 1 / (1 + np.exp(-np.asarray(h)))
    grad_h = -sig * (1 - sig) * np.asarray(h) / (2 * np.log(2))
    np.testing.assert_allclose(
      up["attention_pool2"]["peer_logits"], -0.5 * grad_h, rtol=1e-5
    )
    # The pull moves a leaning gate and merge further their way; gates at
    # 0.5 and the weights stay put.
    self.assertGreater(float(up["attention_pool2"]["peer_logits"][1]), 0)
    self.assertEqual(float(up["attention_pool2"]["peer_logits"][0]), 0)
    self.assertGreater(float(jnp.dot(up["merge_pool2"]["merge_logits"], w)), 0)
    np.testing.assert_array_equal(up["b2_conv1"]["kernel"], 0.0)

  def test_arch_entropy_bounds(self):
    uniform = space.arch_entropy("merge_logits", jnp.zeros(5))
    decided = space.arch_entropy("merge_logits", jnp.array([30.0, 0, 0, 0, 0]))
    np.testing.assert_allclose(uniform, 1.0, rtol=1e-6)
    np.testing.assert_allclose(decided, 0.0, atol=1e-6)
    gates = space.arch_entropy("peer_logits", jnp.array([0.0, 0.0]))
    np.testing.assert_allclose(gates, 1.0, rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "kernel"):
      space.arch_entropy("kernel", jnp.zeros(2))

  def test_cost_gradient_by_hand(self):
    # Costs 0..4 at pool2, relative 0, 0.25, ..., 1: d/dw_i sum_j p_j c_j
    # = p_i (c_i - p.c). With a zero RL gradient and SGD at lr 1 the update
    # is -weight x that: the dear ops' logits fall, the cheap ones' rise.
    opt = space.make_search_optimizer(
      optax.sgd(0.1),
      optax.sgd(1.0),
      cost_weight=0.5,
      op_costs={"pool2": [0, 10, 20, 30, 40]},
    )
    params = _params()
    w = jnp.array([1.0, 0.0, 0.0, 0.0, -1.0])
    params["params"]["head"]["merge_pool2"]["merge_logits"] = w
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zeros, opt.init(params), params)
    up = updates["params"]["head"]
    p = np.exp(w) / np.exp(w).sum()
    c = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(
      up["merge_pool2"]["merge_logits"], -0.5 * p * (c - p @ c), rtol=1e-5
    )
    # Only merge logits feel it.
    np.testing.assert_array_equal(up["attention_pool2"]["peer_logits"], 0.0)
    np.testing.assert_array_equal(up["b2_conv1"]["kernel"], 0.0)

  def test_cost_gradient_bad_input_raises(self):
    sgd = optax.sgd(1.0)
    with self.assertRaisesRegex(ValueError, "cost weight"):
      space.add_cost_gradient({"pool2": [0, 1]}, -1.0)
    with self.assertRaisesRegex(ValueError, "op costs at 'pool2'"):
      space.add_cost_gradient({"pool2": [0, 0]}, 1.0)
    with self.assertRaisesRegex(ValueError, "needs op_costs"):
      space.make_search_optimizer(sgd, sgd, cost_weight=1.0)
    # A supernet without costs is an error, not a silently free op.
    opt = space.make_search_optimizer(
      sgd, sgd, cost_weight=1.0, op_costs={"pool3": [0, 1, 2, 3, 4]}
    )
    params = _params()
    with self.assertRaisesRegex(ValueError, "merge_pool2"):
      opt.update(params, opt.init(params), params)

  def test_negative_warmup_raises(self):
    with self.assertRaisesRegex(ValueError, "warmup"):
      space.make_search_optimizer(optax.sgd(1), optax.sgd(1), warmup_steps=-1)


class PresetsTest(absltest.TestCase):
  def test_presets_and_json(self):
    self.assertEqual(space.architecture("baseline").attention, "off")
    self.assertFalse(space.has_arch_params(space.architecture("baseline")))
    for name in ("search", "supernet_only", "attention_only"):
      self.assertTrue(space.has_arch_params(space.architecture(name)))
    found = space.architecture_to_json(space.baseline_architecture())
    import json  # noqa: PLC0415

    self.assertEqual(
      space.architecture(json.dumps(found)), space.baseline_architecture()
    )
    with self.assertRaisesRegex(ValueError, "preset"):
      space.architecture("{not json")


if __name__ == "__main__":
  absltest.main()
