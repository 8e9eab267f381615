"""QT-Opt grasping Q-function with the Visionary search space, one code path.

Spec: /work/shared/specs/visionary-arm-igibson-hadsell.md, B1.2 (network),
B1.4 (search space), B1.7 (JAX notes). The baseline QT-Opt network, the
Visionary search supernet and every pruned network are the same `_Head`,
configured by a static `search.visionary.Architecture`:

  image [B, S, S, 3] uint8 -> /255
    conv1 (width, 6x6, stride 2) -> maxpool p1 -> n1 x conv 5x5
    -> maxpool p2 = "pool2"                        (end of `trunk`)
  ----------------------------------------------- (start of `head`)
    [merge + attention @ pool2]
    n2 x conv 3x3, with [merge + attention] after conv round(k * n2 / 3),
      k = 1, 2, 3 (locations "conv_b2_1", "conv_b2_2", "conv_b2_3"; conv9,
      conv11, conv13 of the faithful net)
    -> maxpool 2 = "pool3" [merge + attention @ pool3]
    -> n3 x conv 3x3 (VALID in `grasping44`, else SAME)
    -> flatten -> FC 64 -> FC 64 -> FC 1 logit      (Q = sigmoid(logit))

Every conv / FC has a ReLU except the logit. All five merge locations
(`LOCATIONS` of `search.visionary`) are at or after pool2, so `trunk` is action-independent: a CEM
selector runs it once per image and tiles its features over the samples.

The action/state vector is a = concat(action [B, 7], state [B, 3]) = [B, 10]
with state = (gripper_closed, height in decimetres, aperture) (`state_vector`).
Merge ops (B1.4 table), x in R^{HxWxC}:
  noop          x
  add           x + T(a), T = Dense 256 -> ReLU -> Dense C -> ReLU, tiled over
                HxW. One Dense on the concatenated blocks equals the sum of
                per-block FC 256 layers of the reference (`add_n`).
  concat        ReLU(Conv1x1_C(x || tile(ReLU(Dense 64 (a)))))
  hadamard      x * g(a), g = Dense H*W reshaped [H, W, 1]
  conv_filters  einsum("bhwc,bcd->bhwd", x, c(a)), c = Dense C*C -> [C, C]
A location with several candidate ops is a supernet,
F(x, a) = sum_j softmax(w)_j f_j(x, a), with logits `merge_logits` (init 0).
A single candidate is applied directly (no logits); ("noop",) makes no params.

Peer attention (B1.4 (2), AssembleNet++ form) after a location i:
p_v = Dense_v(GAP(v)) -> C_max units for every candidate v in {action,
earlier location outputs (after their attention), x_i, dilated2, dilated4},
m_i = sum_v sigmoid(h_iv) p_v with logits `peer_logits` (init 0),
G_i(x_i) = x_i * sigmoid(Dense_C(m_i)) broadcast over HxW; both Dense layers
init LeCun normal, Dense_C's bias 0 in the search and 2 with fixed edges
(see deviations). Fixed architectures list the kept edges and sum them with
weight 1 (h is no longer a parameter). The dilated convs (3x3, dilation 2 and
4, on pool2; on a stride-3 grid in `grasping44`, see `TrunkSpec`) only feed
attention; they are action-independent, so `trunk` computes them and returns
their GAPs [B, C].

Deviations from the spec, on purpose:
  * No batch norm anywhere (B1.2 has BN after every conv / FC). This keeps
    the Q-function a pure function of `params` with no batch statistics.
  * Default kernel init is fan-in scaled (He) truncated normal
    (`init_scheme="fan_in"`). The spec's truncated normal std 0.01
    (`init_scheme="qtopt"`) relies on BN: without it the signal shrinks 3-6x
    per layer (init logits ~1e-15 on grasping44_64, gradients ~1e-14). Biases are 0.
    Attention Dense layers are LeCun normal, not the spec's N(0, 0.01):
    at 0.01 the gates' gradients are ~1e-7 (issue #13's reading) and the
    search cannot move them.
    A derived network's (fixed-edge) attention layer's bias starts at 2
    (`ATTENTION_BIAS`), not 0: its modules start near the identity (gates
    0.88, not 0.5), so a network retrained from scratch with several does
    not start with its features halved by each. The search's modules keep
    bias 0, where the gates' sigmoid is steepest for their logits.
  * Architecture logits live in the "params" collection (B1.7 suggests a
    separate "arch" collection) so one gradient step updates both; they are
    recognised by name with `is_arch_param` (to skip L2 and to log them).
  * `grasping_small` uses (n1, n2, n3) = (2, 3, 1), `grasping_tiny` (1, 3, 1)
    (spec: n2 = 2 and 1) so that the five merge locations are distinct.
  * Max-pools use window = stride = p with SAME padding (the faithful net's
    3x3 / stride 3 is the same thing); shapes match the B1.2 table.
"""

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl_vision.search import visionary as space

ACTION_SIZE = 7  # T[3], sin, cos, open, close
# The state vector: QT-Opt's gripper status and height (spec B1.1), the
# status as the commanded flag and the measured finger aperture (a closed
# gripper holding something stops part-open).
STATE_KEYS = ("gripper_closed", "height", "aperture")
STATE_SIZE = len(STATE_KEYS)
# Each state entry's scale into the network: the height in metres spans
# 0-0.25 and the close decision turns on centimetres of it, so it enters in
# decimetres (0-2.5), like the flags and the action's [-1, 1] entries.
STATE_SCALE = (1.0, 10.0, 1.0)

Initializer = Callable[..., jax.Array]
INIT_SCHEMES: dict[str, Initializer] = {
  "fan_in": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
  "qtopt": nn.initializers.truncated_normal(0.01),
}
# LeCun (fan-in, unit variance): with the spec's N(0, 0.01) the projections
# and the attention layer each shrink the signal ~100x, so a gate's gradient
# is their product (issue #13 read 1e-7..1e-6 against 1e-4..1e-2 for the
# merge logits) and a search never moves the gates.
_ATTENTION_INIT = nn.initializers.variance_scaling(
  1.0, "fan_in", "truncated_normal"
)
# A fixed-edge (derived) module's attention bias starts here, so its gates
# start at sigmoid(2) = 0.88, near the identity, not 0.5: at 0.5 each
# module halves its location's features and a derived network with five,
# retrained from scratch, starts 1/32 as loud. Measured (issue #13, CPU
# default data, 5 seeds, same worlds; baseline 53.0 +- 10.0 %): the
# baseline merge plus the found network's fixed edges 40.4 +- 10.3 % with
# bias 0, 56.4 +- 11.5 % with bias 2; the whole found network 40.2 +- 6.6 %
# and 47.8 +- 9.5 %. In the search (learned edge weights) bias 2 as well
# left its two seeds agreeing on 1 of 5 merge ops instead of 3, so search
# modules start at 0.
ATTENTION_BIAS = 2.0


class TrunkSpec(NamedTuple):
  image_size: int  # nominal input side S (the network accepts others)
  pools: tuple[int, int, int]  # (p1, p2, p3): max-pool window = stride
  num_convs: tuple[int, int, int]  # (n1, n2, n3) convs in blocks 1, 2, 3
  width: int  # channels of every conv
  valid_block3: bool  # block-3 convs VALID (faithful) instead of SAME
  # The dilated convs are evaluated on every `dilated_stride`-th position of
  # pool2. Attention reads them only through GAP, which a regular subgrid
  # samples without bias; 3 on the 27x27 map of `grasping44` keeps the
  # search net within 1% of the base net's FLOPs (at stride 1 these two
  # convs alone add 1.3%).
  dilated_stride: int = 1


TRUNKS: Mapping[str, TrunkSpec] = {
  "grasping44": TrunkSpec(472, (3, 3, 2), (6, 6, 3), 64, True, 3),
  "grasping44_128": TrunkSpec(128, (3, 3, 2), (6, 6, 3), 64, False),
  "grasping44_64": TrunkSpec(64, (2, 2, 2), (6, 6, 3), 64, False),
  "grasping_small": TrunkSpec(64, (2, 2, 2), (2, 3, 1), 32, False),
  "grasping_tiny": TrunkSpec(32, (2, 2, 2), (1, 3, 1), 16, False),
}


# ---------------------------------------------------------------- shapes


class FeatureShapes(NamedTuple):
  """Spatial side of each stage for one trunk and image size."""

  conv1: int
  pool1: int
  pool2: int  # the merge map of block 2 (and the trunk output)
  pool3: int
  final: int  # after block 3, flattened into FC 64


def _trunk_spec(trunk_name: str) -> TrunkSpec:
  if trunk_name not in TRUNKS:
    raise ValueError(
      f"Unknown trunk {trunk_name!r}; valid trunks: {sorted(TRUNKS)}."
    )
  return TRUNKS[trunk_name]


def _block2_positions(num_convs: int) -> dict[int, str]:
  """Conv index (1-based) in block 2 -> merge location after it."""
  positions = [round(k * num_convs / 3) for k in (1, 2, 3)]
  if len(set(positions)) != 3 or min(positions) < 1:
    raise ValueError(
      f"Block 2 needs >= 3 convs for three distinct merge locations, got "
      f"n2 = {num_convs}."
    )
  return dict(zip(positions, space.LOCATIONS[1:4], strict=True))


def feature_shapes(trunk_name: str, image_size: int) -> FeatureShapes:
  """Stage sizes for an S x S input; ValueError if a map collapses to < 1."""
  spec = _trunk_spec(trunk_name)
  if not isinstance(image_size, int) or image_size < 1:
    raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
  _block2_positions(spec.num_convs[1])

  def ceil_div(n, k):  # SAME padding: ceil(n / stride)
    return -(-n // k)

  p1, p2, p3 = spec.pools
  conv1 = ceil_div(image_size, 2)
  pool1 = ceil_div(conv1, p1)
  pool2 = ceil_div(pool1, p2)
  pool3 = ceil_div(pool2, p3)
  final = pool3 - 2 * spec.num_convs[2] if spec.valid_block3 else pool3
  if final < 1:
    raise ValueError(
      f"Image size {image_size} is too small for trunk {trunk_name!r}: "
      f"{image_size} -> conv1 {conv1} -> pool1 {pool1} -> pool2 {pool2} -> "
      f"pool3 {pool3} -> {spec.num_convs[2]} VALID 3x3 convs -> {final} < 1 "
      f"pixel (nominal input {spec.image_size})."
    )
  return FeatureShapes(conv1, pool1, pool2, pool3, final)


# ------------------------------------------------------------ merge ops


class AddMerge(nn.Module):
  """x + T(a), T = Dense 256 -> ReLU -> Dense C -> ReLU (the QT-Opt branch).

  x: [B, H, W, C]; a: [B, A] -> [B, H, W, C].
  """

  kernel_init: Initializer = INIT_SCHEMES["fan_in"]
  hidden_size: int = 256

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
    t = nn.Dense(self.hidden_size, kernel_init=self.kernel_init, name="hidden")
    t_hidden = nn.relu(t(a))
    t = nn.Dense(x.shape[-1], kernel_init=self.kernel_init, name="out")
    t = nn.relu(t(t_hidden))
    return x + t[:, None, None, :]


class _Conv1x1(nn.Module):
  """nn.Conv(C, (1, 1)) on x || tile(t), without building the tiled input.

  The kernel [1, 1, C + E, C] splits into its x rows and its t rows, so
  y = x @ K_x + (t @ K_t + bias) broadcast over H x W: the same function
  and the same parameters (names, shapes, init) as the conv on the
  concatenation, with the t rows applied once per example instead of once
  per pixel (a 1x1 conv's cost halves when E = C).
  """

  features: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
    c = x.shape[-1]
    kernel = self.param(
      "kernel", self.kernel_init, (1, 1, c + t.shape[-1], self.features)
    )
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    per_example = t @ kernel[0, 0, c:] + bias  # [B, C]
    return x @ kernel[0, 0, :c] + per_example[:, None, None, :]


class ConcatMerge(nn.Module):
  """ReLU(Conv1x1_C(x || tile(ReLU(Dense 64 (a))))).

  x: [B, H, W, C]; a: [B, A] -> [B, H, W, C]. The conv is evaluated in its
  split form (`_Conv1x1`), never on the tiled concatenation.
  """

  kernel_init: Initializer = INIT_SCHEMES["fan_in"]
  embed_size: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
    t = nn.Dense(self.embed_size, kernel_init=self.kernel_init, name="embed")
    t = nn.relu(t(a))  # [B, E]
    project = _Conv1x1(x.shape[-1], self.kernel_init, name="project")
    return nn.relu(project(x, t))


class HadamardMerge(nn.Module):
  """x * g(a), g = Dense H*W reshaped [H, W, 1], broadcast over channels.

  x: [B, H, W, C]; a: [B, A] -> [B, H, W, C].
  """

  kernel_init: Initializer = INIT_SCHEMES["fan_in"]

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
    b, h, w, _ = x.shape
    g = nn.Dense(h * w, kernel_init=self.kernel_init, name="gate")(a)
    return x * g.reshape(b, h, w, 1)


class ConvFiltersMerge(nn.Module):
  """Per-sample 1x1 conv with kernel c(a) = Dense C*C reshaped [C, C].

  x: [B, H, W, C]; a: [B, A] -> [B, H, W, C].
  """

  kernel_init: Initializer = INIT_SCHEMES["fan_in"]

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
    b, c = x.shape[0], x.shape[-1]
    filters = nn.Dense(c * c, kernel_init=self.kernel_init, name="filters")
    return jnp.einsum("bhwc,bcd->bhwd", x, filters(a).reshape(b, c, c))


MERGE_MODULES: Mapping[str, type[nn.Module]] = {
  "add": AddMerge,
  "concat": ConcatMerge,
  "hadamard": HadamardMerge,
  "conv_filters": ConvFiltersMerge,
}


def merge_op_flops(
  op: str, height: int, width: int, channels: int, vector_size: int
) -> int:
  """FLOPs per example of one merge op on an [H, W, C] map with an
  action/state vector of `vector_size` (the modules above): 2 per
  multiply-add, 1 per elementwise combine; biases and activations left
  out. A CEM selector pays them once per sampled action."""
  hw, c, a = height * width, channels, vector_size
  if op == "noop":
    return 0
  if op == "add":  # Dense a -> 256 -> C, then x + t
    hidden = AddMerge.hidden_size
    return 2 * (a * hidden + hidden * c) + hw * c
  if op == "concat":  # Dense a -> 64, then the split 1x1 conv
    embed = ConcatMerge.embed_size
    return 2 * (a * embed + embed * c + hw * c * c)
  if op == "hadamard":  # Dense a -> H*W, then x * g
    return 2 * a * hw + hw * c
  if op == "conv_filters":  # Dense a -> C*C, then a per-example 1x1 conv
    return 2 * (a * c * c + hw * c * c)
  raise ValueError(f"Unknown merge op {op!r}; valid: {space.OPS}.")


def merge_flops(
  trunk_name: str,
  architecture: space.Architecture,
  image_size: int,
  coord_channels: bool = False,
) -> dict[str, tuple[int, ...]]:
  """location -> `merge_op_flops` of each candidate op there, in the
  candidates' order, for every supernet location (two or more ops)."""
  spec, shapes = _trunk_spec(trunk_name), feature_shapes(trunk_name, image_size)
  pool2 = (shapes.pool2, shapes.pool2)
  maps = {space.LOCATIONS[0]: (*pool2, spec.width + 2 * coord_channels)}
  maps.update({loc: (*pool2, spec.width) for loc in space.LOCATIONS[1:4]})
  maps[space.LOCATIONS[4]] = (shapes.pool3, shapes.pool3, spec.width)
  vector = ACTION_SIZE + STATE_SIZE
  return {
    location: tuple(merge_op_flops(op, *maps[location], vector) for op in ops)
    for location, ops in zip(space.LOCATIONS, architecture.merge, strict=True)
    if len(ops) > 1
  }


class Supernet(nn.Module):
  """F(x, a) = sum_j softmax(merge_logits)_j f_j(x, a) over `ops`.

  One op: f(x, a) with no logits. Each op's params sit under its name.
  x: [B, H, W, C]; a: [B, A] -> [B, H, W, C].
  """

  ops: tuple[str, ...]
  kernel_init: Initializer = INIT_SCHEMES["fan_in"]

  @nn.compact
  def __call__(self, x: jax.Array, a: jax.Array) -> jax.Array:
    outputs = []
    for op in self.ops:
      if op == "noop":
        outputs.append(x)
      else:
        module = MERGE_MODULES[op](kernel_init=self.kernel_init, name=op)
        outputs.append(module(x, a))
    chex.assert_equal_shape([x, *outputs])
    if len(outputs) == 1:
      return outputs[0]
    logits = self.param(
      "merge_logits", nn.initializers.zeros_init(), (len(self.ops),)
    )
    weights = jax.nn.softmax(logits)  # [J]
    # A sum of scaled maps (one fused elementwise pass), not a stacked
    # [J, B, H, W, C] tensor contracted with the weights.
    return sum(weights[j] * y for j, y in enumerate(outputs))


class PeerAttention(nn.Module):
  """G(x) = x * sigmoid(Dense_C(sum_v s_v Dense_v(pooled[v]))).

  s_v = sigmoid(peer_logits)_v when `learn_weights`, else 1 (fixed edges).
  x: [B, H, W, C]; pooled: name -> [B, D_v] (GAP of maps; the action vector
  as is) for every name in `candidates` -> [B, H, W, C].
  """

  candidates: tuple[str, ...]
  learn_weights: bool
  width: int  # C_max, the size of the projected candidates

  @nn.compact
  def __call__(
    self, x: jax.Array, pooled: Mapping[str, jax.Array]
  ) -> jax.Array:
    projected = jnp.stack(
      [
        nn.Dense(self.width, kernel_init=_ATTENTION_INIT, name=f"proj_{v}")(
          pooled[v]
        )
        for v in self.candidates
      ],
      axis=1,
    )  # [B, V, C_max]
    if self.learn_weights:
      logits = self.param(
        "peer_logits", nn.initializers.zeros_init(), (len(self.candidates),)
      )
      mixed = jnp.einsum("v,bvc->bc", jax.nn.sigmoid(logits), projected)
    else:
      mixed = projected.sum(axis=1)
    attention = nn.Dense(
      x.shape[-1],
      kernel_init=_ATTENTION_INIT,
      bias_init=nn.initializers.constant(
        0.0 if self.learn_weights else ATTENTION_BIAS
      ),
      name="attention",
    )(mixed)
    return x * jax.nn.sigmoid(attention)[:, None, None, :]


# --------------------------------------------------------------- network


def _max_pool(x: jax.Array, size: int) -> jax.Array:
  return nn.max_pool(x, (size, size), (size, size), padding="SAME")


def add_coordinates(x: jax.Array) -> jax.Array:
  """CoordConv (Liu et al., 2018): x [B, H, W, C] -> [B, H, W, C + 2] with
  each pixel's row and column, scaled to [-1, 1], as two more channels.

  Convolutions are translation-equivariant, so without these a network
  must infer where in the image a feature sits from the borders' padding;
  the grasp's x-y skill is a question of where (the fingers relative to
  the objects).
  """
  b, h, w, _ = x.shape
  rows = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, h)[:, None], (h, w))
  cols = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, w)[None, :], (h, w))
  grid = jnp.stack([rows, cols], axis=-1).astype(x.dtype)
  return jnp.concatenate([x, jnp.broadcast_to(grid, (b, h, w, 2))], axis=-1)


def _gap(x: jax.Array) -> jax.Array:
  return x.mean(axis=(1, 2))  # [B, H, W, C] -> [B, C]


class _Trunk(nn.Module):
  """image [B, S, S, 3] uint8 -> {"pool2": [B, h, h, C], "dilated2|4": [B, C]}."""

  spec: TrunkSpec
  dilated: bool
  kernel_init: Initializer
  coord_channels: bool = False

  @nn.compact
  def __call__(self, image: jax.Array) -> dict[str, jax.Array]:
    width, init = self.spec.width, self.kernel_init
    x = image.astype(jnp.float32) / 255.0
    if self.coord_channels:
      x = add_coordinates(x)
    x = nn.Conv(width, (6, 6), (2, 2), kernel_init=init, name="conv1")(x)
    x = _max_pool(nn.relu(x), self.spec.pools[0])
    for j in range(1, self.spec.num_convs[0] + 1):
      x = nn.relu(
        nn.Conv(width, (5, 5), kernel_init=init, name=f"b1_conv{j}")(x)
      )
    x = _max_pool(x, self.spec.pools[1])
    if self.coord_channels:  # again where the action merges
      x = add_coordinates(x)
    features = {"pool2": x}
    if self.dilated:
      for name, rate in zip(space.DILATED, (2, 4), strict=True):
        stride = self.spec.dilated_stride
        conv = nn.Conv(
          width,
          (3, 3),
          (stride, stride),
          kernel_dilation=rate,
          kernel_init=init,
          name=name,
        )
        # Only attention reads these, through GAP: pool now, tile less.
        features[name] = _gap(nn.relu(conv(x)))
    return features


class _Head(nn.Module):
  """(features, state [B, 3], action [B, 7]) -> logits [B]."""

  spec: TrunkSpec
  architecture: space.Architecture
  kernel_init: Initializer

  @nn.compact
  def __call__(
    self,
    features: Mapping[str, jax.Array],
    state: jax.Array,
    action: jax.Array,
  ) -> jax.Array:
    arch, width, init = self.architecture, self.spec.width, self.kernel_init
    x = features["pool2"]
    batch = x.shape[0]
    chex.assert_shape(state, (batch, STATE_SIZE))
    chex.assert_shape(action, (batch, ACTION_SIZE))
    a = jnp.concatenate([action, state], axis=-1)  # [B, 10]
    pooled = {"action": a}
    pooled.update({v: features[v] for v in space.DILATED if v in features})

    def merge_and_attend(i: int, x: jax.Array) -> jax.Array:
      location = space.LOCATIONS[i]
      if arch.merge[i] != ("noop",):
        x = Supernet(arch.merge[i], init, name=f"merge_{location}")(x, a)
      candidates, learned = space.attention_edges(arch, i)
      if candidates:
        pooled[location] = _gap(x)  # x_i itself is a candidate
        x = PeerAttention(
          candidates, learned, width, name=f"attention_{location}"
        )(x, pooled)
      pooled[location] = _gap(x)  # later modules see it after attention
      return x

    x = merge_and_attend(0, x)
    positions = _block2_positions(self.spec.num_convs[1])
    for j in range(1, self.spec.num_convs[1] + 1):
      x = nn.relu(
        nn.Conv(width, (3, 3), kernel_init=init, name=f"b2_conv{j}")(x)
      )
      if j in positions:
        x = merge_and_attend(space.LOCATIONS.index(positions[j]), x)
    x = _max_pool(x, self.spec.pools[2])
    x = merge_and_attend(len(space.LOCATIONS) - 1, x)
    padding = "VALID" if self.spec.valid_block3 else "SAME"
    for j in range(1, self.spec.num_convs[2] + 1):
      conv = nn.Conv(
        width, (3, 3), padding=padding, kernel_init=init, name=f"b3_conv{j}"
      )
      x = nn.relu(conv(x))
    x = x.reshape(batch, -1)
    x = nn.relu(nn.Dense(64, kernel_init=init, name="fc1")(x))
    x = nn.relu(nn.Dense(64, kernel_init=init, name="fc2")(x))
    return nn.Dense(1, kernel_init=init, name="logit")(x)[:, 0]


class QFunction(NamedTuple):
  """Q(s, a) logits as pure functions; Q = sigmoid(logit).

  init(key, obs, action) -> params ({"params": {"trunk": ..., "head": ...}})
  trunk(params, image [B, S, S, 3] uint8) -> features (dict, leaves [B, ...])
  head(params, features, state [B, 3], action [B, 7]) -> logits [B]
  apply(params, obs, action [B, 7]) -> logits [B]
  obs = {"image": [B, S, S, 3] uint8} and a [B] leaf per STATE_KEYS entry.
  """

  init: Callable[..., Any]
  trunk: Callable[..., Any]
  head: Callable[..., jax.Array]
  apply: Callable[..., jax.Array]
  architecture: space.Architecture
  trunk_name: str
  # location -> FLOPs of each candidate merge op (`merge_flops`).
  merge_flops: Mapping[str, tuple[int, ...]] = {}


def state_vector(obs: Mapping[str, jax.Array]) -> jax.Array:
  """[B, STATE_SIZE] float32: the obs leaves named in STATE_KEYS, each
  times its STATE_SCALE."""
  state = jnp.stack([obs[k] for k in STATE_KEYS], axis=-1).astype(jnp.float32)
  return state * jnp.asarray(STATE_SCALE, jnp.float32)


def make_q_function(
  trunk_name: str,
  architecture: space.Architecture,
  image_size: int,
  init_scheme: str = "fan_in",
  coord_channels: bool = False,
) -> QFunction:
  """Builds the Q-function of `architecture` on trunk `TRUNKS[trunk_name]`.

  Args:
    trunk_name: a key of `TRUNKS`.
    architecture: the (super)network; `baseline_architecture()` is QT-Opt.
    image_size: input side S; images are [B, S, S, 3] uint8.
    init_scheme: "fan_in" (He truncated normal, default) or "qtopt"
      (truncated normal std 0.01, the spec's; needs BN to train well).
    coord_channels: append pixel coordinates (CoordConv, `add_coordinates`)
      to the image and again to the pool2 map, where the first merge adds
      the action: a conv after the merge can then compare a position in
      the map with the move the action makes. The same for every
      architecture (not a searched choice).

  Returns:
    A `QFunction`; `apply(p, obs, a) == head(p, trunk(p, obs["image"]),
    state, a)` by construction.

  Raises:
    ValueError: unknown trunk or init scheme, an image size that collapses a
      feature map, or a malformed architecture.
  """
  spec = _trunk_spec(trunk_name)
  feature_shapes(trunk_name, image_size)
  space.validate_architecture(architecture)
  if init_scheme not in INIT_SCHEMES:
    raise ValueError(
      f"Unknown init_scheme {init_scheme!r}; valid: {sorted(INIT_SCHEMES)}."
    )
  kernel_init = INIT_SCHEMES[init_scheme]
  trunk_module = _Trunk(spec, architecture.dilated, kernel_init, coord_channels)
  head_module = _Head(spec, architecture, kernel_init)
  image_shape = (image_size, image_size, 3)

  def check_image(image):
    if tuple(image.shape[1:]) != image_shape:
      raise ValueError(
        f"Expected images [B, {image_size}, {image_size}, 3], got "
        f"{tuple(image.shape)}."
      )

  def init(key, obs, action):
    check_image(obs["image"])
    trunk_key, head_key = jax.random.split(key)
    trunk_params = trunk_module.init(trunk_key, obs["image"])["params"]
    # Only shapes matter for the head's init: skip the trunk's compute.
    features = jax.tree.map(
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(
        trunk_module.apply, {"params": trunk_params}, obs["image"]
      ),
    )
    head_params = head_module.init(
      head_key, features, state_vector(obs), action
    )
    return {"params": {"trunk": trunk_params, "head": head_params["params"]}}

  def trunk(params, image):
    check_image(image)
    return trunk_module.apply({"params": params["params"]["trunk"]}, image)

  def head(params, features, state, action):
    return head_module.apply(
      {"params": params["params"]["head"]}, features, state, action
    )

  def apply(params, obs, action):
    return head(params, trunk(params, obs["image"]), state_vector(obs), action)

  return QFunction(
    init=init,
    trunk=trunk,
    head=head,
    apply=apply,
    architecture=architecture,
    trunk_name=trunk_name,
    merge_flops=merge_flops(
      trunk_name, architecture, image_size, coord_channels
    ),
  )
