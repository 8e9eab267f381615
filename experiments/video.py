"""Rollout videos for host programs: episodes side by side in one GIF.

  rollouts = video.stack_groups(
    {"found": found_rgb, "baseline": baseline_rgb},  # each [T, N, H, W, 3]
    outcome={"found": found_success, "baseline": baseline_success},  # [N]
  )
  video.write_gif("rollouts.gif", rollouts.frames, labels=rollouts.labels,
                  outcome=rollouts.outcome)

Small renders (32 or 64 px) are upscaled by an integer factor, nearest
neighbour, to about 256 px per tile. Each tile has its label above it and a
border that turns green (success) or red (failure) where the outcome is known.
"""

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

TILE_PX = 256  # the default scale makes the larger side of a tile about this
PER_ROW = 8
BORDER = 4  # px around each tile, in the outcome's colour
GAP = 4  # px between cells
FONT_SIZE = 14
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
# outcome -1 (unknown), 0 (failure), 1 (success) -> border colour.
OUTCOME_COLOURS = {-1: BACKGROUND, 0: (220, 40, 40), 1: (40, 200, 40)}


class Grid(NamedTuple):
  frames: np.ndarray  # [T, H_grid, W_grid, 3] uint8, the composed movie
  boxes: np.ndarray  # [N, 4] int: top, left, bottom, right of each tile


class Stacked(NamedTuple):
  frames: np.ndarray  # [T, N, H, W, 3] uint8, groups along N
  labels: list[str]  # [N] "<group> <label>"
  outcome: np.ndarray  # [T, N] int in {-1, 0, 1}


def default_scale(height: int, width: int) -> int:
  """The integer upscale that makes a tile about `TILE_PX` on its long side."""
  return max(1, TILE_PX // max(height, width))


def per_frame_outcome(
  outcome, num_frames: int, num_episodes: int
) -> np.ndarray:
  """`outcome` as [T, N]; an [N] one is known only at the last frame.

  Args:
    outcome: None, [N] or [T, N], values in {-1 unknown, 0 fail, 1 success}
      (booleans are 0 and 1).
    num_frames: T.
    num_episodes: N.

  Returns:
    [T, N] int array; -1 everywhere when `outcome` is None.
  """
  per_frame = np.full((num_frames, num_episodes), -1, np.int64)
  if outcome is None:
    return per_frame
  outcome = np.asarray(outcome)
  if not np.isin(outcome, list(OUTCOME_COLOURS)).all():
    raise ValueError(f"outcome values must be in {sorted(OUTCOME_COLOURS)}")
  if outcome.shape == (num_episodes,):
    per_frame[-1] = outcome
  elif outcome.shape == (num_frames, num_episodes):
    per_frame[:] = outcome
  else:
    raise ValueError(
      f"outcome has shape {outcome.shape}; expected [N] = ({num_episodes},) "
      f"or [T, N] = ({num_frames}, {num_episodes})"
    )
  return per_frame


def make_grid(
  frames: np.ndarray,
  *,
  labels: Sequence[str] | None = None,
  outcome: np.ndarray | None = None,
  scale: int | None = None,
  per_row: int = PER_ROW,
) -> Grid:
  """Lays episodes out in rows of up to `per_row` tiles, labelled above.

  Args:
    frames: [T, N, H, W, 3] uint8, time-major.
    labels: N short strings (cut to the tile's width), or None.
    outcome: None, [N] (shown at the last frame) or [T, N], in {-1, 0, 1}.
    scale: integer nearest-neighbour upscale; default `default_scale(H, W)`.
    per_row: tiles per row; more episodes wrap to further rows.

  Returns:
    The composed frames [T, H_grid, W_grid, 3] and each tile's box.
  """
  layout = _layout(frames, labels, outcome, scale, per_row)
  composed = [_compose(frames, layout, t) for t in range(len(frames))]
  return Grid(frames=np.stack(composed), boxes=layout.boxes)


def write_gif(
  path: str,
  frames: np.ndarray,
  *,
  labels: Sequence[str] | None = None,
  outcome: np.ndarray | None = None,
  fps: float = 4,
  scale: int | None = None,
  per_row: int = PER_ROW,
  hold_last_s: float = 1.0,
) -> None:
  """Writes episodes side by side as a looping GIF (see `make_grid`).

  Args:
    path: the .gif file; its folder is created.
    frames: [T, N, H, W, 3] uint8, time-major.
    labels: N short strings drawn above the tiles, or None.
    outcome: None, [N] (shown at the last frame) or [T, N], in {-1, 0, 1}.
    fps: frames per second (GIF delays are in 10 ms steps).
    scale: integer nearest-neighbour upscale; default about `TILE_PX` px.
    per_row: tiles per row.
    hold_last_s: extra time on the last frame, so that outcomes can be seen
      before the loop restarts.
  """
  if not fps > 0:
    raise ValueError(f"fps must be > 0; got {fps}")
  layout = _layout(frames, labels, outcome, scale, per_row)
  # One RGB frame at a time: the whole movie in RGB can be 100s of MB.
  images = (
    _to_palette(Image.fromarray(_compose(frames, layout, t)))
    for t in range(len(frames))
  )
  durations = [round(1000 / fps)] * len(frames)
  durations[-1] += round(1000 * hold_last_s)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  # Pillow merges identical consecutive frames (adding their durations), so a
  # still scene can have fewer GIF frames than T; playback is the same.
  next(images).save(
    path, save_all=True, append_images=images, duration=durations, loop=0
  )


def stack_groups(
  groups: dict[str, np.ndarray],
  *,
  labels: dict[str, Sequence[str]] | None = None,
  outcome: dict[str, np.ndarray] | None = None,
) -> Stacked:
  """Puts groups of episodes (e.g. "found", "baseline") side by side.

  Groups follow each other along N in dict order; a group with fewer frames
  holds its last frame (its episodes have ended).

  Args:
    groups: name -> [T_g, N_g, H, W, 3] uint8; the same H and W for all.
    labels: name -> N_g labels; default "ep0", "ep1", ...; each is shown as
      "<name> <label>".
    outcome: name -> [N_g] or [T_g, N_g] in {-1, 0, 1}; missing: unknown.

  Returns:
    frames [max T_g, sum N_g, H, W, 3], labels [sum N_g], outcome [T, N].
  """
  if not groups:
    raise ValueError("no groups to stack")
  labels, outcome = labels or {}, outcome or {}
  unknown = sorted((set(labels) | set(outcome)) - set(groups))
  if unknown:
    raise ValueError(f"labels/outcome for unknown groups: {unknown}")
  shapes = {name: np.shape(g) for name, g in groups.items()}
  if len({s[2:] for s in shapes.values()}) != 1:
    raise ValueError(f"groups differ in [H, W, 3]: {shapes}")
  num_frames = max(s[0] for s in shapes.values())
  all_frames, all_labels, all_outcome = [], [], []
  for name, frames in groups.items():
    frames = np.asarray(frames)
    group_t, group_n = frames.shape[:2]
    group_outcome = per_frame_outcome(outcome.get(name), group_t, group_n)
    pad = num_frames - group_t
    all_frames.append(np.concatenate([frames] + [frames[-1:]] * pad))
    all_outcome.append(
      np.concatenate([group_outcome] + [group_outcome[-1:]] * pad)
    )
    names = labels.get(name, [f"ep{i}" for i in range(group_n)])
    if len(names) != group_n:
      raise ValueError(f"{len(names)} labels for {group_n} {name!r} episodes")
    all_labels += [f"{name} {x}" for x in names]
  return Stacked(
    frames=np.concatenate(all_frames, axis=1),
    labels=all_labels,
    outcome=np.concatenate(all_outcome, axis=1),
  )


class _Layout(NamedTuple):
  background: np.ndarray  # [H_grid, W_grid, 3] uint8: labels, no tiles
  boxes: np.ndarray  # [N, 4] int: top, left, bottom, right of each tile
  outcome: np.ndarray  # [T, N] int in {-1, 0, 1}
  scale: int


def _layout(frames, labels, outcome, scale, per_row) -> _Layout:
  """Checks the arguments of `make_grid` and draws what does not move."""
  frames = np.asarray(frames)
  if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(
      f"frames must be uint8 [T, N, H, W, 3]; got {frames.dtype} "
      f"{list(frames.shape)}"
    )
  num_frames, num_episodes, height, width, _ = frames.shape
  if not (num_frames and num_episodes and height and width):
    raise ValueError(f"frames {list(frames.shape)} has an empty axis")
  if labels is not None and len(labels) != num_episodes:
    raise ValueError(f"{len(labels)} labels for {num_episodes} episodes")
  outcome = per_frame_outcome(outcome, num_frames, num_episodes)
  scale = default_scale(height, width) if scale is None else scale
  if not isinstance(scale, int | np.integer) or isinstance(scale, bool):
    raise ValueError(f"scale must be a positive integer; got {scale!r}")
  if scale < 1 or per_row < 1:
    raise ValueError(f"scale and per_row must be >= 1; got {scale}, {per_row}")

  font = _font()
  label_h = _text_height(font) + 4 if labels is not None else 0
  tile_h, tile_w = height * int(scale), width * int(scale)
  cell_h = label_h + tile_h + 2 * BORDER
  cell_w = tile_w + 2 * BORDER
  num_cols = min(num_episodes, per_row)
  num_rows = math.ceil(num_episodes / per_row)
  canvas = Image.new(
    "RGB",
    (GAP + num_cols * (cell_w + GAP), GAP + num_rows * (cell_h + GAP)),
    BACKGROUND,
  )
  draw = ImageDraw.Draw(canvas)
  draw.fontmode = "1"  # no anti-aliasing: crisp text, few GIF colours
  boxes = []
  for i in range(num_episodes):
    row, col = divmod(i, per_row)
    top = GAP + row * (cell_h + GAP) + label_h + BORDER
    left = GAP + col * (cell_w + GAP) + BORDER
    boxes.append((top, left, top + tile_h, left + tile_w))
    if labels is not None:
      text = _fit(draw, str(labels[i]), font, cell_w)
      draw.text((left - BORDER, top - BORDER - label_h), text, TEXT, font)
  return _Layout(
    background=np.asarray(canvas),
    boxes=np.asarray(boxes, np.int64),
    outcome=outcome,
    scale=int(scale),
  )


def _compose(frames: np.ndarray, layout: _Layout, t: int) -> np.ndarray:
  """Frame `t` of the grid: [H_grid, W_grid, 3] uint8."""
  out = layout.background.copy()
  tiles = np.asarray(frames[t])  # [N, H, W, 3]
  tiles = tiles.repeat(layout.scale, axis=1).repeat(layout.scale, axis=2)
  for i, (top, left, bottom, right) in enumerate(layout.boxes):
    colour = OUTCOME_COLOURS[int(layout.outcome[t, i])]
    out[top - BORDER : bottom + BORDER, left - BORDER : right + BORDER] = colour
    out[top:bottom, left:right] = tiles[i]
  return out


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  try:
    return ImageFont.load_default(size=FONT_SIZE)
  except ImportError:  # Pillow without FreeType: the small bitmap font
    return ImageFont.load_default()


def _text_height(font) -> int:
  return font.getbbox("Ag")[3]  # bottom, from the drawing origin


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
  """`text`, cut with ".." until it fits in `width` px."""
  if draw.textlength(text, font=font) <= width:
    return text
  while text and draw.textlength(text + "..", font=font) > width:
    text = text[:-1]
  return text + ".."


def _to_palette(image: Image.Image) -> Image.Image:
  """An RGB frame as a GIF palette image: exact when it has <= 256 colours."""
  colours = image.getcolors(maxcolors=256)
  if colours is None:  # a rendered scene: Pillow's median-cut palette
    return image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
  palette = Image.new("P", (1, 1))
  palette.putpalette([c for _, rgb in colours for c in rgb])
  return image.quantize(palette=palette, dither=Image.Dither.NONE)
