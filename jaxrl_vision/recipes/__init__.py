"""Recipes: a config's `experiment` name -> how to check it and build it.

A recipe is pure: `validate(config)` raises `validation.ConfigError` before
anything compiles, and `make_train(config, axis_name)` wires the registries'
env, network, agent and buffer into a `train.Trainer`. The host loop in
`experiments/` does the rest (logging, checkpoints, evaluation).
"""

from collections.abc import Callable
from typing import NamedTuple

import ml_collections

from jaxrl_vision import train
from jaxrl_vision import validation


class Recipe(NamedTuple):
  validate: Callable[
    [ml_collections.ConfigDict, int], None
  ]  # (config, devices)
  # make_train(config, axis_name, num_devices) -> Trainer
  make_train: Callable[..., train.Trainer]
  main_metrics: tuple[str, ...]  # shown in the progress bar and plotted
  # video(config) -> fn(agent_state, key) -> (frames [T, N, H, W, 3] uint8,
  # success [N]): greedy episodes of one seed's agent, for the run's
  # rollouts.gif (config.video.num_episodes > 0); None: no video.
  video: Callable[[ml_collections.ConfigDict], Callable] | None = None
  # references(config) -> fn(key) -> metrics: scripted policies (expert, no
  # key skill, random) in the worlds of `evaluate(agent_state, key)`, for
  # the run's references.json; None: none.
  references: Callable[[ml_collections.ConfigDict], Callable] | None = None


_RECIPES: dict[str, Callable[[], Recipe]] = {}


def register_recipe(name: str, make_recipe: Callable[[], Recipe]) -> None:
  if name in _RECIPES:
    raise ValueError(f"recipe {name!r} is already registered")
  _RECIPES[name] = make_recipe


def recipe_names() -> list[str]:
  return sorted(_RECIPES)


def get_recipe(config: ml_collections.ConfigDict) -> Recipe:
  """The recipe for `config.experiment`; a ConfigError lists the valid ones."""
  validation.one_of(config, "experiment", _RECIPES)
  return _RECIPES[config.experiment]()


def _register_builtin() -> None:
  from jaxrl_vision.recipes import dqn_pixels  # noqa: PLC0415
  from jaxrl_vision.recipes import qtopt_offline  # noqa: PLC0415
  from jaxrl_vision.recipes import rubiksnet_video  # noqa: PLC0415
  from jaxrl_vision.recipes import surreal_ddpg  # noqa: PLC0415
  from jaxrl_vision.recipes import surreal_es  # noqa: PLC0415
  from jaxrl_vision.recipes import surreal_ppo  # noqa: PLC0415

  register_recipe("dqn_pixels", dqn_pixels.make_recipe)
  register_recipe("qtopt_offline", qtopt_offline.make_recipe)
  register_recipe("rubiksnet_video", rubiksnet_video.make_recipe)
  register_recipe("surreal_ddpg", surreal_ddpg.make_recipe)
  register_recipe("surreal_es", surreal_es.make_recipe)
  register_recipe("surreal_ppo", surreal_ppo.make_recipe)


_register_builtin()
