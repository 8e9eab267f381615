"""Robots a task can pick: name -> MJCF parts and pure functions."""

import mujoco

from jaxrl_vision.envs.robots import arm7
from jaxrl_vision.envs.robots import gripper
from jaxrl_vision.envs.robots import two_grippers
from jaxrl_vision.envs.robots.robot import Robot

# name -> (worldbody MJCF, actuator MJCF, make(mj_model) -> Robot)
ROBOTS = {
  "gripper": (gripper.body_xml, gripper.actuator_xml, gripper.make_gripper),
  "arm7": (arm7.body_xml, arm7.actuator_xml, arm7.make_arm7),
  "two_grippers": (
    two_grippers.body_xml,
    two_grippers.actuator_xml,
    two_grippers.make_two_grippers,
  ),
}


def _entry(name: str):
  if name not in ROBOTS:
    raise ValueError(f"unknown robot {name!r}; valid robots: {sorted(ROBOTS)}")
  return ROBOTS[name]


def scene_parts(name: str) -> tuple[str, str]:
  """(worldbody MJCF, actuator MJCF) of robot `name`."""
  body, actuators, _ = _entry(name)
  return body(), actuators()


def make_robot(name: str, mj_model: mujoco.MjModel) -> Robot:
  """Robot `name`'s functions for a scene that holds its `scene_parts`."""
  return _entry(name)[2](mj_model)


def compiler_options(name: str) -> dict[str, str] | None:
  """XLA options for programs that step robot `name` (None: defaults)."""
  _entry(name)
  return arm7.compiler_options() if name == "arm7" else None
