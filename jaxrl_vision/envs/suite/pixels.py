"""Pixel observations of the suite tasks: RGB, optional depth, frame stacks.

The contract of spec surreal.md §2.2: an RGB camera image, depth optional
as a 4th channel (robosuite's `camera_depth`), and optionally the last 3
frames stacked along the channels (Surreal-DDPG's input). Everything stays
one uint8 "image" leaf, so the policies' conv encoder takes any of them;
depth is stored as uint8 over [0, DEPTH_RANGE] metres (1/255 of it, 3.9 mm,
per level).
"""

import jax
import jax.numpy as jnp

from jaxrl_vision.envs import render
from jaxrl_vision.envs.manipulation import common

DEPTH_RANGE = 1.0  # metres of z-depth mapped onto 0..255 (the scene's size)


def channels(depth: bool, frame_stack: int) -> int:
  """Channels of the "image" leaf: (3 + depth) per frame."""
  return (3 + int(depth)) * frame_stack


def depth_to_uint8(depth: jax.Array) -> jax.Array:
  """[H, W] metres -> [H, W, 1] uint8, 255 at DEPTH_RANGE and beyond."""
  level = jnp.round(jnp.clip(depth / DEPTH_RANGE, 0.0, 1.0) * 255.0)
  return level.astype(jnp.uint8)[..., None]


def frame(
  eye: render.Camera,
  layout: common.Layout,
  model,
  physics: common.ManipPhysics,
  depth: bool = False,
) -> jax.Array:
  """One frame [H, W, 3 (+1 with depth)] uint8 of the task's camera."""
  obs = common.observe(eye, layout, model, physics, depth=depth)
  if not depth:
    return obs["image"]
  return jnp.concatenate([obs["image"], depth_to_uint8(obs["depth"])], -1)


def start_stack(image: jax.Array, frame_stack: int) -> jax.Array:
  """The stack at an episode's first step: the frame repeated (oldest
  first), [H, W, C * frame_stack]."""
  return jnp.concatenate([image] * frame_stack, axis=-1)


def push(stack: jax.Array, image: jax.Array) -> jax.Array:
  """Drops the oldest frame of `stack` and appends `image` (channels)."""
  return jnp.concatenate([stack[..., image.shape[-1] :], image], axis=-1)
