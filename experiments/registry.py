"""Experiment registry: name -> base config + sweep arms.

Each experiment file (gaussian1d.py, ...) defines a list EXPERIMENTS; this module collects them.
An arm is a name and a dict of dotted overrides applied on top of the base config.
"""

import difflib

from experiments.experiment import Experiment  # pylint: disable=unused-import (re-exported)
from gen_models.config import ConfigError


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
    raise ConfigError(
        f"Unknown experiment {name!r}.{hint} Run `python -m experiments.run --list` "
        f"to see all {len(experiments)} experiments."
    )
  return experiments[name]
