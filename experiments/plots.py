"""Plots of host programs: the Visionary architecture and learning curves.

Host only (matplotlib, Agg); the library (`jaxrl_vision/`) draws nothing.
"""

import numpy as np
from matplotlib import figure
from matplotlib import patches

from jaxrl_vision.networks import visionary as network
from jaxrl_vision.search import visionary as space


def draw_architecture(
  architecture: space.Architecture, weights: dict | None, path: str
) -> tuple[str, ...]:
  """Draws the network (Fig. 5 style) to an image file at `path`.

  The layer chain runs left to right; each merge location shows its op(s)
  (ranked by softmax weight when `weights`, from `arch_weights`, is given).
  Blue arrows bring the action/state vector to the merges. Red arcs are
  peer-attention edges into a location, labelled with sigmoid(h); sources
  off the chain (action, dilated convs) sit in a lane above it, "self" edges
  are noted beside the node. With learned weights only edges > 0.5 are drawn
  (as Fig. 5). Host only (matplotlib, Agg).

  Returns:
    the names of the boxes drawn ("layer:<name>" for chain layers, the
    location names for merges, "action", "action_attn" when an attention
    edge leaves the action, the dilated convs when present).
  """
  # A bare Figure renders with Agg and leaves pyplot's global state alone.
  space.validate_architecture(architecture)
  weights = weights or {}
  layers = {
    "start": ("image", "conv1\n6x6 /2", "pool1", "block 1\n5x5 convs", "pool2"),
    space.LOCATIONS[0]: ("block 2\n1/3 convs",),
    space.LOCATIONS[1]: ("block 2\n2/3 convs",),
    space.LOCATIONS[2]: ("block 2\n3/3 convs",),
    space.LOCATIONS[3]: ("pool3",),
    space.LOCATIONS[4]: ("block 3\n3x3 convs", "FC 64\nFC 64\nFC 1", "Q"),
  }
  chain = [(name, "layer") for name in layers["start"]]
  for location in space.LOCATIONS:
    chain.append((location, "merge"))
    chain.extend((name, "layer") for name in layers[location])
  step, box_w, box_h = 1.5, 1.25, 1.1
  fig = figure.Figure(figsize=(len(chain) * 1.25, 8.0))
  ax = fig.subplots()
  pos = {}  # node -> centre

  def box(name, text, x, y, face, h=box_h, fontsize=8.0):
    pos[name] = (x, y)
    ax.add_patch(
      patches.Rectangle((x - box_w / 2, y - h / 2), box_w, h, fc=face, ec="k")
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)

  def arrow(start, end, color="black", **kw):
    ax.annotate(
      "",
      xy=end,
      xytext=start,
      arrowprops={"arrowstyle": "->", "color": color, **kw},
    )

  for k, (name, kind) in enumerate(chain):
    x = k * step
    if kind == "merge":
      ops = architecture.merge[space.LOCATIONS.index(name)]
      merge_w = weights.get("merge", {}).get(name, {})
      ranked = sorted(ops, key=lambda op: -merge_w.get(op, 0.0))
      lines = [
        f"{op} {merge_w[op]:.2f}" if op in merge_w and len(ops) > 1 else op
        for op in ranked
      ]
      face = "#eeeeee" if ops == ("noop",) else "#cfe2ff"
      small = len(ops) > 1
      box(
        name,
        "\n".join([f"@{name}", *lines]),
        x,
        0.0,
        face,
        fontsize=6.5 if small else 8.0,
      )
    else:  # keyed apart from the merge location of the same name
      box(f"layer:{name}", name, x, 0.0, "#fff4d6")
    if k:
      arrow((x - step + box_w / 2, 0.0), (x - box_w / 2, 0.0))

  # Action/state into the merges (below the chain).
  box(
    "action",
    f"action+state\n({network.ACTION_SIZE + network.STATE_SIZE})",
    pos[space.LOCATIONS[2]][0],
    -3.0,
    "#d9f2d9",
    h=0.75,
  )
  for location, ops in zip(space.LOCATIONS, architecture.merge, strict=True):
    if ops != ("noop",):
      arrow(
        pos["action"], (pos[location][0], -box_h / 2), "tab:blue", alpha=0.7
      )

  # The attention edges drawn into each location: all candidates before
  # search, those with sigmoid(h) > 0.5 once learned (Fig. 5).
  attention = weights.get("attention", {})
  edges = {}
  for i, location in enumerate(space.LOCATIONS):
    candidates, learned = space.attention_edges(architecture, i)
    edges[location] = []
    for v in candidates:
      w = attention.get(location, {}).get(v)
      if not (learned and w is not None and w <= 0.5):
        edges[location].append((v, w))

  # Attention sources off the chain, in a lane above it (the action only
  # when an edge leaves it).
  lane_y = 3.2
  if any(v == "action" for shown in edges.values() for v, _ in shown):
    box(
      "action_attn",
      "action+state\n(attention)",
      pos["layer:conv1\n6x6 /2"][0],
      lane_y,
      "#d9f2d9",
      h=0.75,
    )
  if architecture.dilated:
    pool2_x = pos["layer:pool2"][0]
    for name, anchor in zip(
      space.DILATED, ("layer:pool1", "layer:block 1\n5x5 convs"), strict=True
    ):
      box(
        name,
        f"3x3 conv\ndilation {name[-1]}",
        pos[anchor][0],
        lane_y,
        "#f2d9f2",
        h=0.75,
      )
      arrow((pool2_x, box_h / 2), (pos[name][0], lane_y - 0.375), "gray")

  def bezier(p0, p1, rad, t):  # the curve of matplotlib's "arc3,rad=..."
    (x1, y1), (x2, y2) = p0, p1
    cx = (x1 + x2) / 2 + rad * (y2 - y1)
    cy = (y1 + y2) / 2 - rad * (x2 - x1)
    return (
      (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2,
      (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2,
    )

  for location, shown in edges.items():
    tx, _ = pos[location]
    for n, (v, w) in enumerate(shown):
      label = "" if w is None else f"{w:.2f}"
      if v == location:
        ax.text(
          tx + box_w / 2 + 0.05,
          box_h / 2 + 0.05,
          f"self {label}",
          color="tab:red",
          fontsize=7,
          ha="left",
          va="bottom",
        )
        continue
      # Spread arrival points over the top edge of the target.
      end = (tx - 0.45 + 0.9 * (n + 0.5) / len(shown), box_h / 2)
      if v in space.LOCATIONS:
        start, rad, t = (pos[v][0] + 0.3, box_h / 2), -0.35, 0.5
      else:
        source = "action_attn" if v == "action" else v
        start, rad, t = (pos[source][0] + 0.3, lane_y - 0.375), -0.15, 0.8
      ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
          "arrowstyle": "->",
          "color": "tab:red",
          "lw": 0.6 + 1.5 * (w if w is not None else 0.5),
          "connectionstyle": f"arc3,rad={rad}",
          "alpha": 0.8,
        },
      )
      if label:
        lx, ly = bezier(start, end, rad, t)
        ax.text(
          lx,
          ly + 0.08,
          label,
          color="tab:red",
          ha="center",
          va="bottom",
          fontsize=7,
        )
  ax.set_xlim(-1.0, (len(chain) - 1) * step + 1.0)
  # The lane above the chain only when something sits in it or an arc
  # rises into it: a network without attention draws no empty half.
  arcs = any(v != location for location, s in edges.items() for v, _ in s)
  ax.set_ylim(-3.8, 5.0 if arcs or architecture.dilated else box_h / 2 + 0.6)
  ax.set_aspect("equal")
  ax.axis("off")
  ax.set_title(
    f"attention={architecture.attention}, dilated={architecture.dilated}   "
    "(blue: action merge, red: peer attention)",
    fontsize=10,
  )
  fig.savefig(path, dpi=110, bbox_inches="tight")
  return tuple(pos)


def plot_group_curves(path, curves, references) -> None:
  """Eval success over iterations: each group's mean +- std over its seeds
  (Fig. 6 style), the scripted references as horizontal lines.

  Args:
    path: the PNG to write.
    curves: {group: (iterations [K], success [S, K] in [0, 1])}.
    references: {label: success in [0, 1]}.
  """
  fig = figure.Figure(figsize=(6.4, 4.2))
  ax = fig.subplots()
  colours = {"found": "tab:red", "baseline": "tab:blue", "search": "tab:gray"}
  for name, (steps, success) in curves.items():
    if not len(steps):
      continue
    values = 100 * np.asarray(success)
    mean = values.mean(0)
    colour = colours.get(name)
    ax.plot(steps, mean, label=f"{name} ({len(values)} seeds)", c=colour)
    if len(values) > 1:
      std = values.std(0, ddof=1)
      ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=colour)
  styles = ("--", ":", "-.")
  for (label, value), style in zip(references.items(), styles, strict=False):
    ax.axhline(100 * value, ls=style, lw=1, c="k", alpha=0.6, label=label)
  ax.set_xlabel("training iteration")
  ax.set_ylabel("eval success (%)")
  ax.set_ylim(-2, 102)
  ax.legend(loc="center right", fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
