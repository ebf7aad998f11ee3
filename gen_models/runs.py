"""A saved run on disk, read back: its config and latest checkpoint (for evaluate, sample, diagnose
and the evaluation-noise check), its final metrics and headline values, and its result rebuilt
from metrics.jsonl when result.json is lost (for the report)."""

import json
import os
import time

import jax
import numpy as np

from gen_models import checkpoint as ckpt_lib
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import files
from gen_models import metric_names as names
from gen_models import rundir
from gen_models.errors import RunError


def load_run(run_dir: str):
  """(cfg, state, data, key, step) of a saved run, from its config.json and latest checkpoint."""
  path = rundir.RunPaths(run_dir).config
  saved = files.read(path, "config")  # damaged: DamagedFile (exit 2), naming it
  if saved is None:
    raise RunError(
        f"{run_dir} is not a run directory (no config.json). Give a path like "
        "runs/<exp>/<arm>/seed<k>."
    )
  try:
    cfg = families.validate(config_lib.from_dict(saved))
  except (OSError, ValueError, TypeError, AttributeError) as e:  # ConfigError is a ValueError
    raise RunError(
        f"{path} cannot be read as a run's config ({type(e).__name__}: {str(e)[:200]}). It was left"
        " as it is. If it was damaged, restore it (it is the config the run was trained with) or"
        " retrain."
    ) from None
  data = data_lib.load(cfg, log=lambda s: None)
  key = jax.random.key(cfg.seed)
  task = families.make_task(cfg, data, key)
  checkpointer = ckpt_lib.Checkpointer(rundir.RunPaths(run_dir).checkpoints, keep=cfg.ckpt.keep)
  try:
    state, meta = checkpointer.restore_latest(task.init(jax.random.fold_in(key, 1)))
  finally:
    checkpointer.close()
  if state is None:
    raise RunError(f"{run_dir} has no readable checkpoint; train it first (or --resume it).")
  return cfg, state, data, key, int(meta["step"])


def headline_keys(cfg) -> list[str]:
  return [k for k, _, better in families.of(cfg).report.table([cfg]) if better is not None][:3]


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
  compared = families.of(cfg).report.verdict_metrics
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


NOISE_SEEDS = 3


def evaluation_noise(exp_dir, exp):
  """Scores the final checkpoint of the baseline arm's first seed with NOISE_SEEDS other
  sampling seeds and writes the spread to exp_dir/eval_noise.json (once per checkpoint), so the
  report can set the evaluation's own noise beside the seed-to-seed spread."""
  arm = exp.baseline_arm()
  paths = rundir.ExpPaths(exp_dir)
  result_of = lambda s: files.read(paths.run(arm, s).result, "result") or {}
  finished = [s for s in paths.seeds(arm) if result_of(s).get("status") == "finished"]
  if not finished:
    return
  run_dir = paths.run(arm, finished[0]).dir
  path = paths.eval_noise
  try:
    old = files.read(path, "eval_noise") or {}
  except files.DamagedFile:  # recomputed below
    old = {}
  result = result_of(finished[0])
  if old.get("run") == f"{arm}/seed{finished[0]}" and old.get("step") == result.get("step"):
    return
  cfg, state, data, key, step = load_run(run_dir)
  family = families.of(cfg)
  compared = list(family.report.verdict_metrics)
  values = {m: [] for m in compared}
  t = time.perf_counter()
  for i in range(NOISE_SEEDS):
    metrics = family.evaluate_saved(cfg, state, data, jax.random.fold_in(key, 7919 + i))
    for m in compared:
      if isinstance(metrics.get(m), (int, float)):
        values[m].append(float(metrics[m]))
  values = {m: v for m, v in values.items() if len(v) == NOISE_SEEDS}
  out = {
      "run": f"{arm}/seed{finished[0]}",
      "step": step,
      "sampling_seeds": NOISE_SEEDS,
      "values": values,
      "std": {m: float(np.std(v, ddof=1)) for m, v in values.items()},
  }
  rundir.write_atomic(path, json.dumps(out, indent=1))
  print(
      f"evaluation noise: {out['run']} step {step} scored with {NOISE_SEEDS} sampling seeds: "
      + ", ".join(f"{m} std {v:.3g}" for m, v in out["std"].items())
      + f" ({time.perf_counter() - t:.1f}s)",
      flush=True,
  )
