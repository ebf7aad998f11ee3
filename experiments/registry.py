"""Experiment registry: name -> base config + sweep arms.

Each experiment file (gaussian1d.py, ...) defines a list EXPERIMENTS; this module collects them.
An arm is a name and a dict of dotted overrides applied on top of the base config.
"""

import dataclasses
import difflib

from gen_models.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str
  description: str
  config: Config
  arms: tuple = ()  # ((arm name, {key: value}), ...); empty = one arm called "base"
  baseline: str = ""  # the arm every other arm is compared with (default: the first)

  def __post_init__(self):  # a misspelt baseline would otherwise just drop every comparison
    if self.baseline and self.baseline not in dict(self.arm_items()):
      raise ConfigError(f"experiment {self.name!r}: baseline {self.baseline!r} is not one of its arms "
                        f"{[a for a, _ in self.arm_items()]}.")

  def arm_items(self):
    return list(self.arms) if self.arms else [("base", {})]

  def baseline_arm(self) -> str:
    return self.baseline or self.arm_items()[0][0]


def _all() -> dict:
  # Explicit imports: an experiment file that fails to import is an error, never a silently
  # shorter list of experiments.
  from experiments import autoencoders  # pylint: disable=g-import-not-at-top
  from experiments import gaussian1d  # pylint: disable=g-import-not-at-top
  from experiments import images  # pylint: disable=g-import-not-at-top
  out = {}
  for module in (gaussian1d, images, autoencoders):
    for exp in module.EXPERIMENTS:
      out[exp.name] = exp
  return out


def names() -> list[str]:
  return list(_all())


def get(name: str) -> Experiment:
  experiments = _all()
  if name not in experiments:
    close = difflib.get_close_matches(str(name), experiments, n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"Unknown experiment {name!r}.{hint} Run `python -m experiments.run --list` "
                      f"to see all {len(experiments)} experiments.")
  return experiments[name]
