"""Env registry: names to `Env` factories (the brax/playground pattern)."""

import functools
from collections.abc import Callable

from jaxrl_vision import types
from jaxrl_vision.envs import brax_envs
from jaxrl_vision.envs import catch
from jaxrl_vision.envs.manipulation import grasp
from jaxrl_vision.envs.manipulation import stack
from jaxrl_vision.envs.suite import bimanual_lift
from jaxrl_vision.envs.suite import bimanual_peg_in_hole
from jaxrl_vision.envs.suite import bin_picking
from jaxrl_vision.envs.suite import lift
from jaxrl_vision.envs.suite import nut_assembly
from jaxrl_vision.envs.suite import stack as suite_stack

_ENVS: dict[str, Callable[..., types.Env]] = {
  "catch": catch.make_catch,
  "grasp": grasp.make_grasp,
  "lift": lift.make_lift,
  "stack": stack.make_stack,  # Visionary's (pixels, sparse reward)
  "stacking": suite_stack.make_suite_stack,  # the Robotics Suite's
  "bimanual_lifting": bimanual_lift.make_bimanual_lift,
  "bimanual_peg_in_hole": bimanual_peg_in_hole.make_bimanual_peg_in_hole,
  "bin_picking": bin_picking.make_bin_picking,
  "nut_assembly": nut_assembly.make_nut_assembly,
  # Brax's MJX locomotion tasks (imported when made).
  **{
    name: functools.partial(brax_envs.make_brax_env, name)
    for name in brax_envs.BRAX_TASKS
  },
}


def register_env(name: str, make_fn: Callable[..., types.Env]) -> None:
  """Adds `make_fn(**kwargs) -> Env` under `name`."""
  if name in _ENVS:
    raise ValueError(f"env {name!r} is already registered")
  _ENVS[name] = make_fn


def env_names() -> list[str]:
  return sorted(_ENVS)


def make_env(name: str, **kwargs) -> types.Env:
  """Builds a registered env; an unknown name raises with the valid names."""
  if name not in _ENVS:
    raise KeyError(
      f"unknown env {name!r}; valid names: {', '.join(env_names())}"
    )
  return _ENVS[name](**kwargs)


def get_env_factory(name: str) -> Callable[..., types.Env]:
  if name not in _ENVS:
    raise KeyError(
      f"unknown env {name!r}; valid names: {', '.join(env_names())}"
    )
  return _ENVS[name]
