"""Config checks that run before anything is built or compiled.

A `ConfigError` names the offending key and what is allowed; the runner turns
it into a one-line message and exit status 2.
"""

import inspect
import math
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import ml_collections


class ConfigError(ValueError):
  """A bad config value: `config.<key>=<value>: <what is allowed>`."""

  def __init__(self, key: str, value: Any, allowed: str):
    self.key, self.value, self.allowed = key, value, allowed
    super().__init__(f"config.{key}={value!r}: {allowed}")


def get(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def positive_int(config, key: str) -> int:
  value = get(config, key)
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ConfigError(key, value, "must be a positive integer")
  return value


def non_negative_int(config, key: str) -> int:
  value = get(config, key)
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    raise ConfigError(key, value, "must be an integer >= 0")
  return value


def boolean(config, key: str) -> bool:
  value = get(config, key)
  if not isinstance(value, bool):
    raise ConfigError(key, value, "must be True or False")
  return value


def number_in(
  config,
  key: str,
  low: float,
  high: float,
  *,
  low_open: bool = False,
  high_open: bool = False,
) -> float:
  """A finite number in [low, high]; `*_open` excludes that end."""
  value = get(config, key)
  ok = (
    isinstance(value, int | float)
    and not isinstance(value, bool)
    and math.isfinite(value)
    and (value > low if low_open else value >= low)
    and (value < high if high_open else value <= high)
  )
  if not ok:
    lb, hb = "(" if low_open else "[", ")" if high_open else "]"
    raise ConfigError(
      key, value, f"must be a finite number in {lb}{low}, {high}{hb}"
    )
  return value


def one_of(config, key: str, choices: Iterable[str]) -> str:
  value = get(config, key)
  choices = sorted(choices)
  if value not in choices:
    raise ConfigError(key, value, f"must be one of: {', '.join(choices)}")
  return value


def multiple_of(config, key: str, divisor: int, why: str) -> int:
  value = positive_int(config, key)
  if value % divisor:
    raise ConfigError(key, value, f"must be a multiple of {divisor} ({why})")
  return value


def kwargs_for(config, key: str, fn: Callable[..., Any]) -> dict[str, Any]:
  """Checks that `config.<key>` (a dict) binds to `fn`'s keyword arguments."""
  kwargs = dict(get(config, key))
  params = inspect.signature(fn).parameters
  unknown = sorted(set(kwargs) - set(params))
  if unknown:
    raise ConfigError(
      f"{key}.{unknown[0]}",
      kwargs[unknown[0]],
      f"unknown key; valid keys: {', '.join(params)}",
    )
  return kwargs
