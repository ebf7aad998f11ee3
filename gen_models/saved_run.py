"""What a saved run holds, read back: its config, its final metrics and headline values, and its
result rebuilt from metrics.jsonl when result.json is lost."""

import os

import numpy as np

from gen_models import config as config_lib
from gen_models import families
from gen_models import files
from gen_models import metric_names as names
from gen_models import rundir


def headline_keys(cfg) -> list[str]:
  return [k for k, _, better in families.of(cfg).table([cfg]) if better is not None][:3]


def final_train_metrics(rows):
  """The last logged training means (over the last log interval)."""
  for row in reversed(rows):
    if names.is_train_row(row):
      return names.unprefixed(row, names.TRAIN)
  return {}


def final_metrics(final_eval: dict, rows: list) -> dict:
  """A finished run's metrics: its last evaluation, then its last training means (a training
  metric whose name clashes with an evaluation one gets a train_ prefix)."""
  out = {k: v for k, v in final_eval.items() if k != "eval_s"}
  out.update({k if k not in out else f"train_{k}": v for k, v in final_train_metrics(rows).items()})
  return out


def recover(run_dir, cfg, rows):
  """The result of a finished run rebuilt from metrics.jsonl (its final evaluation row), or None."""
  steps = cfg.train.steps
  evals = [r for r in rows if r.get("step") == steps and names.is_eval_row(r)]
  if not evals or not os.path.isdir(rundir.RunPaths(run_dir).checkpoint(steps)):
    return None
  final_eval = names.unprefixed(evals[-1], names.EVAL)
  return {
      "status": "finished",
      "step": steps,
      "recovered": "metrics.jsonl",
      "metrics": final_metrics(final_eval, [r for r in rows if r.get("step", 0) <= steps]),
  }


def run_config(run_dir):
  """A run's saved config, or None when its config.json is missing or unreadable."""

  exp_dir = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
  saved = files.read(rundir.RunPaths(run_dir).config, "config", root=exp_dir)
  if saved is None:
    return None
  try:
    return config_lib.from_dict(saved)
  except (config_lib.ConfigError, TypeError, ValueError, AttributeError):
    return None


def headline_values(rows, cfg, final) -> tuple[dict, list]:
  """(<metric>_last<k>: the mean of a run's last k evaluations in the last quarter of training
  (never an early, untrained one) of each compared metric (and of each extractor's variant), less
  noisy than the last evaluation alone; the names of those whose
  window is not complete in `rows`). The last evaluation is the run's final one (`final`, from
  result.json) when its row is missing, e.g. torn by a kill."""
  k, window = cfg.eval.last_k, config_lib.headline_steps(cfg)
  by_step = {}
  for r in rows:
    if names.is_eval_row(r):
      by_step.setdefault(r.get("step"), {}).update(r)
  compared = families.of(cfg).verdict_metrics
  out, incomplete = {}, []
  for m in names.compared_variants(final, compared):
    vals = []
    for step in window:
      v = by_step.get(step, {}).get(names.evaluation(m))
      if not isinstance(v, (int, float)) and step == cfg.train.steps:
        v = final.get(m)
      if isinstance(v, (int, float)):
        vals.append(v)
    if len(vals) < len(window):
      incomplete.append(names.headline(m, k))
    if vals:
      out[names.headline(m, k)] = float(np.mean(vals))
  return out, incomplete
