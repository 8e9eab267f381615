"""The Visionary search rule, in one place (spec B1.4).

What the one-shot search searches and how its outcome is read:

  * the space: `Architecture` (per location the candidate merge ops, the
    peer-attention mode and edges, the dilated convs), its presets (the
    search supernet, the QT-Opt baseline, Table II's ablations) and their
    JSON form;
  * its parameters: merge logits w (softmax over ops) and peer-attention
    logits h (sigmoid gates), named `ARCH_PARAM_NAMES` inside the network's
    params and found with `is_arch_param`;
  * how they learn: `make_search_optimizer` gives them their own optimizer
    and learning rate (as DARTS does; the paper uses one SGD step for both,
    which on a short search leaves them at their initial values) and can
    hold them still while the weights warm up;
  * how it ends: `arch_weights` reads them, `decisiveness` says how decided
    they are, `derive` prunes the supernet to the argmax op per location and
    the edges whose gate rose above `GATE_THRESHOLD`, and
    `architecture_agreement` compares two searches.

`networks.visionary` builds any `Architecture` into a Q-function; drawing
lives in `experiments/plots.py`. Pure host-side Python and optax; nothing
here touches files.
"""

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

OPS = ("noop", "add", "concat", "hadamard", "conv_filters")
# Merge locations, in network order. conv_b2_k: after conv round(k * n2 / 3)
# of block 2 (k = 1, 2, 3).
LOCATIONS = ("pool2", "conv_b2_1", "conv_b2_2", "conv_b2_3", "pool3")
DILATED = ("dilated2", "dilated4")
ATTENTION_MODES = ("off", "search", "fixed")
# Leaf names of the architecture logits in the network's params: merge
# logits w under "merge_<location>", gate logits h under
# "attention_<location>".
ARCH_PARAM_NAMES = ("merge_logits", "peer_logits")
# Edges kept at derivation: sigmoid(h) above this. The gates start at 0.5.
GATE_THRESHOLD = 0.6


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A point (or a whole supernet) of the search space; hashable, static.

  merge: per location in `LOCATIONS` (5 entries), the candidate ops.
  attention: "off" | "search" (learned sigmoid edge weights over every
    candidate) | "fixed" (the edges listed in `edges`, weight 1).
  edges: when attention == "fixed", per location, the kept candidate names
    ("action", a location name up to and including this one, "dilated2",
    "dilated4"); () otherwise.
  dilated: add the two dilated convs on pool2 (attention candidates only).
  """

  merge: tuple[tuple[str, ...], ...]
  attention: str
  edges: tuple[tuple[str, ...], ...] = ()
  dilated: bool = False


def search_architecture() -> Architecture:
  """The full Visionary search model: every op everywhere + attention."""
  return Architecture(
    merge=(OPS,) * len(LOCATIONS), attention="search", dilated=True
  )


def baseline_architecture() -> Architecture:
  """QT-Opt: add at pool2, nothing else."""
  return Architecture(
    merge=(("add",),) + (("noop",),) * (len(LOCATIONS) - 1), attention="off"
  )


def supernet_only_architecture() -> Architecture:
  """Table II "supernet module search only"."""
  return Architecture(merge=(OPS,) * len(LOCATIONS), attention="off")


def attention_only_architecture() -> Architecture:
  """Table II "peer-attention search only": QT-Opt merge + attention."""
  return dataclasses.replace(
    baseline_architecture(), attention="search", dilated=True
  )


def attention_candidates(location: int, dilated: bool) -> tuple[str, ...]:
  """Every peer-attention candidate of LOCATIONS[location], in order."""
  return ("action",) + LOCATIONS[: location + 1] + (DILATED if dilated else ())


def attention_edges(
  architecture: Architecture, location: int
) -> tuple[tuple[str, ...], bool]:
  """(candidates, learned weights?) of one location; () = no module."""
  if architecture.attention == "search":
    return attention_candidates(location, architecture.dilated), True
  if architecture.attention == "fixed":
    return tuple(architecture.edges[location]), False
  return (), False


def validate_architecture(architecture: Architecture) -> None:
  """Raises ValueError unless `architecture` is a well-formed point."""
  if not isinstance(architecture, Architecture):
    raise ValueError(f"Expected an Architecture, got {type(architecture)}.")
  merge = architecture.merge
  if not isinstance(merge, tuple) or len(merge) != len(LOCATIONS):
    raise ValueError(
      f"Architecture.merge needs a tuple of {len(LOCATIONS)} entries (one per "
      f"location {LOCATIONS}), got {merge!r}."
    )
  for location, ops in zip(LOCATIONS, merge, strict=True):
    if not isinstance(ops, tuple) or not ops:
      raise ValueError(
        f"Merge candidates at {location!r} must be a non-empty tuple of ops "
        f"from {OPS}, got {ops!r}."
      )
    unknown = [op for op in ops if op not in OPS]
    if unknown:
      raise ValueError(
        f"Unknown merge op(s) {unknown} at {location!r}; valid ops: {OPS}."
      )
    if len(set(ops)) != len(ops):
      raise ValueError(f"Duplicate merge ops at {location!r}: {ops}.")
  if architecture.attention not in ATTENTION_MODES:
    raise ValueError(
      f"Unknown attention mode {architecture.attention!r}; valid modes: "
      f"{ATTENTION_MODES}."
    )
  if not isinstance(architecture.dilated, bool):
    raise ValueError(
      f"Architecture.dilated must be a bool, got {architecture.dilated!r}."
    )
  edges = architecture.edges
  if architecture.attention != "fixed":
    if edges != ():
      raise ValueError(
        "Architecture.edges is only used with attention='fixed'; got "
        f"attention={architecture.attention!r} and edges={edges!r}."
      )
    return
  if not isinstance(edges, tuple) or len(edges) != len(LOCATIONS):
    raise ValueError(
      f"attention='fixed' needs edges for each of the {len(LOCATIONS)} "
      f"locations {LOCATIONS}, got {edges!r}."
    )
  for i, (location, kept) in enumerate(zip(LOCATIONS, edges, strict=True)):
    valid = attention_candidates(i, architecture.dilated)
    if not isinstance(kept, tuple):
      raise ValueError(f"Edges at {location!r} must be a tuple, got {kept!r}.")
    unknown = [v for v in kept if v not in valid]
    if unknown:
      raise ValueError(
        f"Unknown attention candidate(s) {unknown} at {location!r} "
        f"(dilated={architecture.dilated}); valid: {valid}."
      )
    if len(set(kept)) != len(kept):
      raise ValueError(f"Duplicate attention edges at {location!r}: {kept}.")


def has_arch_params(architecture: Architecture) -> bool:
  """Whether a network of `architecture` has merge or gate logits."""
  return architecture.attention == "search" or any(
    len(ops) > 1 for ops in architecture.merge
  )


PRESETS = {
  "search": search_architecture,
  "baseline": baseline_architecture,
  "supernet_only": supernet_only_architecture,
  "attention_only": attention_only_architecture,
}


def architecture(name_or_json: str) -> Architecture:
  """A preset (`search`, `baseline`, ...) or an architecture JSON string."""
  if name_or_json in PRESETS:
    return PRESETS[name_or_json]()
  try:
    data = json.loads(name_or_json)
  except json.JSONDecodeError as e:
    raise ValueError(
      f"not a preset ({', '.join(sorted(PRESETS))}) nor architecture JSON: "
      f"{name_or_json[:80]!r}"
    ) from e
  return architecture_from_json(data)


def is_arch_param(path: tuple[Any, ...]) -> bool:
  """True for merge logits w and attention logits h.

  Args:
    path: the dict keys down to a leaf, as strings (jax key-path entries such
      as `DictKey` are accepted too), e.g. ("params", "head", "merge_pool2",
      "merge_logits").
  """
  return _leaf_name(path) in ARCH_PARAM_NAMES


def _leaf_name(path: tuple[Any, ...]) -> str:
  """The last key of a leaf's path as a string ("" for the root)."""
  return str(getattr(path[-1], "key", path[-1])) if path else ""


def _head_params(params: Mapping[str, Any]) -> Mapping[str, Any]:
  return params["params"]["head"]


def arch_weights(params: Any, architecture: Architecture) -> dict:
  """Host-side, JSON-able architecture weights for logging and drawing.

  Returns:
    {"merge": {location: {op: softmax weight}}, "attention": {location:
    {candidate: sigmoid(h)}}}. Fixed choices read 1.0; locations without an
    attention module are left out of "attention".
  """
  head = _head_params(params)
  merge = {}
  for location, ops in zip(LOCATIONS, architecture.merge, strict=True):
    if len(ops) == 1:
      merge[location] = {ops[0]: 1.0}
    else:
      logits = head[f"merge_{location}"]["merge_logits"]
      weights = np.asarray(jax.nn.softmax(logits))
      merge[location] = {
        op: float(w) for op, w in zip(ops, weights, strict=True)
      }
  attention = {}
  for i, location in enumerate(LOCATIONS):
    candidates, learned = attention_edges(architecture, i)
    if not candidates:
      continue
    if learned:
      logits = head[f"attention_{location}"]["peer_logits"]
      weights = np.asarray(jax.nn.sigmoid(logits))
    else:
      weights = np.ones(len(candidates))
    attention[location] = {
      v: float(w) for v, w in zip(candidates, weights, strict=True)
    }
  return {"merge": merge, "attention": attention}


def derive(
  params: Any,
  architecture: Architecture,
  gate_threshold: float = GATE_THRESHOLD,
) -> Architecture:
  """Prunes a searched network into a fixed architecture (B1.4).

  Merge: the argmax op per location (first on ties). Attention "search":
  edges with sigmoid(h) > `gate_threshold` become attention "fixed"
  (possibly with no edges at all, which equals "off"); "fixed" and "off"
  keep their edges. `dilated` survives only if a kept edge reads a dilated
  output.

  The gates start at sigmoid(0) = 0.5, so the paper's 0.5 (Fig. 5) would
  keep every edge the search nudged up by any amount, noise included; the
  default `GATE_THRESHOLD` keeps only edges the search raised clearly.
  """
  validate_architecture(architecture)
  weights = arch_weights(params, architecture)
  merge = tuple(
    (max(weights["merge"][location].items(), key=lambda kv: kv[1])[0],)
    if len(ops) > 1
    else ops
    for location, ops in zip(LOCATIONS, architecture.merge, strict=True)
  )
  if architecture.attention == "off":
    return Architecture(merge=merge, attention="off")
  edges = tuple(
    tuple(
      v
      for v, w in weights["attention"].get(location, {}).items()
      if architecture.attention == "fixed" or w > gate_threshold
    )
    for location in LOCATIONS
  )
  dilated = any(v in DILATED for kept in edges for v in kept)
  return Architecture(
    merge=merge, attention="fixed", edges=edges, dilated=dilated
  )


def architecture_to_json(
  architecture: Architecture, weights: dict | None = None
) -> dict:
  """JSON-able dict; `weights` (from `arch_weights`) is stored alongside."""
  d = {
    "locations": list(LOCATIONS),
    "merge": [list(ops) for ops in architecture.merge],
    "attention": architecture.attention,
    "edges": [list(kept) for kept in architecture.edges],
    "dilated": architecture.dilated,
  }
  if weights is not None:
    d["weights"] = weights
  return d


def architecture_from_json(d: Mapping[str, Any]) -> Architecture:
  """Inverse of `architecture_to_json`; ValueError on malformed input."""
  if not isinstance(d, Mapping):
    raise ValueError(f"Expected a dict, got {type(d)}.")
  if "locations" in d and list(d["locations"]) != list(LOCATIONS):
    raise ValueError(
      f"Locations {d['locations']} do not match this module's {LOCATIONS}."
    )

  def tuples(value, what):
    if not isinstance(value, list | tuple) or not all(
      isinstance(v, list | tuple) and all(isinstance(s, str) for s in v)
      for v in value
    ):
      raise ValueError(f"{what} must be a list of lists of str, got {value!r}.")
    return tuple(tuple(v) for v in value)

  try:
    architecture = Architecture(
      merge=tuples(d["merge"], "merge"),
      attention=d["attention"],
      edges=tuples(d.get("edges", []), "edges"),
      dilated=d.get("dilated", False),
    )
  except KeyError as e:
    raise ValueError(f"Architecture JSON is missing key {e}.") from e
  validate_architecture(architecture)
  return architecture


def decisiveness(weights: Mapping[str, Any]) -> dict[str, Any]:
  """How decided a search's `arch_weights` are.

  Per searched merge location: `top` (the largest softmax weight, 1/J when
  undecided) and `entropy` (of the softmax, divided by log J: 1 undecided,
  0 decided). Per attention location: the gates' `min`, `max` and `spread`.
  Overall: `locations_top_ge_0.5` (merge locations whose top weight is at
  least 0.5), and the gates' overall `gate_min` / `gate_max`.
  """
  merge = {}
  for location, ops in weights["merge"].items():
    w = np.asarray(list(ops.values()), np.float64)
    if len(w) < 2:
      continue
    entropy = -np.sum(w * np.log(np.maximum(w, 1e-12))) / math.log(len(w))
    merge[location] = {
      "top_op": list(ops)[int(np.argmax(w))],
      "top": round(float(w.max()), 4),
      "entropy": round(float(entropy), 4),
    }
  attention = {}
  gates = []
  for location, edges in weights["attention"].items():
    g = np.asarray(list(edges.values()), np.float64)
    gates.extend(g)
    attention[location] = {
      "min": round(float(g.min()), 4),
      "max": round(float(g.max()), 4),
      "spread": round(float(g.max() - g.min()), 4),
    }
  return {
    "merge": merge,
    "attention": attention,
    "locations_top_ge_0.5": sum(m["top"] >= 0.5 for m in merge.values()),
    "gate_min": round(float(min(gates)), 4) if gates else None,
    "gate_max": round(float(max(gates)), 4) if gates else None,
  }


def architecture_agreement(a: Architecture, b: Architecture) -> dict:
  """Where two derived architectures agree: merge ops (count and per
  location) and attention edges (Jaccard index of the kept edge sets)."""
  same = [x == y for x, y in zip(a.merge, b.merge, strict=True)]
  edges_a = {(i, v) for i, kept in enumerate(a.edges) for v in kept}
  edges_b = {(i, v) for i, kept in enumerate(b.edges) for v in kept}
  union = edges_a | edges_b
  return {
    "merge_ops_agree": int(sum(same)),
    "merge_locations": len(same),
    "per_location": dict(zip(LOCATIONS, same, strict=True)),
    "edges_jaccard": (
      round(len(edges_a & edges_b) / len(union), 4) if union else 1.0
    ),
  }


def arch_entropy(name: str, logits: jax.Array) -> jax.Array:
  """() entropy of one module's architecture weights, in [0, 1].

  Merge logits w: the softmax's entropy over the ops, divided by log(#ops).
  Gate logits h: the mean Bernoulli entropy of sigmoid(h), in bits. 1 is
  undecided (uniform merge, gates at 0.5), 0 a one-hot merge and gates at 0
  or 1.
  """
  if name == "merge_logits":
    log_p = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_p) * log_p) / jnp.log(logits.shape[-1])
  if name == "peer_logits":
    p, log_p, log_q = (
      jax.nn.sigmoid(logits),
      jax.nn.log_sigmoid(logits),
      jax.nn.log_sigmoid(-logits),
    )
    return -jnp.mean(p * log_p + (1 - p) * log_q) / jnp.log(2.0)
  raise ValueError(f"not an architecture parameter: {name!r}")


def add_entropy_gradient(weight: float) -> optax.GradientTransformation:
  """Adds `weight` x the gradient of every module's `arch_entropy` to the
  updates of the architecture logits: a pull towards decided weights, as
  Fair DARTS' zero-one loss pushes its sigmoid gates from 0.5 and SNAS/GDAS
  sharpen their softmaxes. Placed before the logits' optimizer (like
  `optax.add_decayed_weights`); other leaves pass through unchanged.

  At the undecided start the pull is zero (uniform weights are the
  entropy's maximum); it grows as the RL gradient moves a module off it, so
  the loss picks the leader and the entropy makes it decided.
  """
  if weight < 0:
    raise ValueError(f"entropy weight must be >= 0, got {weight}")

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("add_entropy_gradient needs params")

    def add(path, u, p):
      if not is_arch_param(path):
        return u
      entropy = functools.partial(arch_entropy, _leaf_name(path))
      return u + weight * jax.grad(entropy)(p)

    return jax.tree_util.tree_map_with_path(add, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def add_cost_gradient(
  op_costs: Mapping[str, Any], weight: float
) -> optax.GradientTransformation:
  """Adds `weight` x the gradient of each supernet's expected op cost,
  sum_j softmax(w)_j c_j, to the updates of its merge logits w: a
  resource-aware search, as FBNet's and ProxylessNAS's expected latency.

  Where the RL loss tells the ops apart it outweighs the pull; where it
  cannot, the search settles on the cheaper op instead of on whichever op
  noise favoured first (which the entropy pull then makes decided).

  Args:
    op_costs: location -> one cost per candidate op (in the candidates'
      order), e.g. `networks.visionary.merge_flops`. Each location's costs
      are divided by its largest, so every location weighs alike: the
      dearest op costs 1, "noop" 0.
    weight: >= 0.
  """
  if weight < 0:
    raise ValueError(f"cost weight must be >= 0, got {weight}")
  relative = {}
  for location, costs in op_costs.items():
    c = np.asarray(costs, np.float64)
    if c.ndim != 1 or np.any(c < 0) or not np.max(c, initial=0) > 0:
      raise ValueError(
        f"op costs at {location!r} must be >= 0 with one > 0, got {costs!r}"
      )
    relative[f"merge_{location}"] = c / c.max()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("add_cost_gradient needs params")

    def add(path, u, p):
      if _leaf_name(path) != "merge_logits":
        return u
      module = str(getattr(path[-2], "key", path[-2]))
      if module not in relative:
        raise ValueError(f"no op costs for {module!r}")
      c = jnp.asarray(relative[module], p.dtype)
      return u + weight * jax.grad(lambda w: jax.nn.softmax(w) @ c)(p)

    return jax.tree_util.tree_map_with_path(add, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_search_optimizer(
  weights: optax.GradientTransformation,
  arch: optax.GradientTransformation,
  *,
  warmup_steps: int = 0,
  entropy_weight: float = 0.0,
  cost_weight: float = 0.0,
  op_costs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
  """Weights and architecture logits, each with its own optimizer.

  `weights` updates every leaf that `is_arch_param` rejects, `arch` the
  merge and gate logits; during the first `warmup_steps` updates the logits
  stay where they are (their optimizer sees no gradient and emits zero
  updates), so the ops are judged once their weights have learned
  something (DARTS-style warm-up; the logits' optimizer then starts
  fresh). Both step on the same gradient of the
  RL loss (no bi-level split, as in the paper). With `entropy_weight` > 0
  the logits also descend `entropy_weight` x their `arch_entropy`
  (`add_entropy_gradient`); with `cost_weight` > 0, `cost_weight` x their
  expected relative `op_costs` (`add_cost_gradient`).
  """
  if warmup_steps < 0:
    raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
  if cost_weight:
    if op_costs is None:
      raise ValueError("cost_weight > 0 needs op_costs")
    arch = optax.chain(add_cost_gradient(op_costs, cost_weight), arch)
  if entropy_weight:
    arch = optax.chain(add_entropy_gradient(entropy_weight), arch)
  if warmup_steps:
    arch = _after(warmup_steps, arch)

  def labels(params):
    return jax.tree_util.tree_map_with_path(
      lambda path, _: "arch" if is_arch_param(path) else "weights", params
    )

  return optax.multi_transform({"weights": weights, "arch": arch}, labels)


class AfterState(NamedTuple):
  count: jax.Array  # () int32, updates seen
  inner: optax.OptState  # the held optimizer's state, untouched until live


def _after(steps: int, inner: optax.GradientTransformation):
  """`inner`, live from its `steps`-th update on: before, it emits zero
  updates and its state (moments, step count) does not change, so it
  starts as if fresh when the warm-up ends."""

  def init(params):
    return AfterState(count=jnp.zeros((), jnp.int32), inner=inner.init(params))

  def update(updates, state, params=None):
    def live(_):
      return inner.update(updates, state.inner, params)

    def hold(_):
      return jax.tree.map(jnp.zeros_like, updates), state.inner

    updates, inner_state = jax.lax.cond(state.count >= steps, live, hold, None)
    return updates, AfterState(
      count=optax.safe_increment(state.count), inner=inner_state
    )

  return optax.GradientTransformation(init, update)
