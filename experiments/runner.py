"""Trains the planned (arm, seed) runs one after another, then builds the sweep report.

Runs that share shapes share one compiled step: hyperparameters are traced values, and modules
and optimizers are cached per static config (gen_models.models / gen_models.state).
"""

import json
import os
import time

import jax
import numpy as np

from experiments import report
from gen_models import checkpoint as ckpt_lib
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import loop
from gen_models import tasks
from gen_models import tracking

WANDB_PROJECT = os.environ.get("WANDB_PROJECT", "gen-models")


def _write_json(path, obj):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def _final_train_metrics(rows):
  """The last logged training means (over the last log interval)."""
  for row in reversed(rows):
    if any(k.startswith("train/") for k in row):
      return {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("train/")}
  return {}


def run_one(exp, arm, cfg, run_dir, mode, *, resume, quiet=False, data=None, first_seed=0):
  """Trains one (arm, seed) into run_dir. Returns (final state or None, result dict); the
  result is also written to run_dir/result.json."""
  os.makedirs(run_dir, exist_ok=True)
  _write_json(os.path.join(run_dir, "config.json"), config_lib.to_dict(cfg))
  label = f"{exp.name}/{arm}/seed{cfg.seed}"
  t_start = time.perf_counter()
  data = data if data is not None else data_lib.load(cfg)
  key = jax.random.key(cfg.seed)
  task = tasks.make_task(cfg, data, key, run_dir)
  if not quiet and cfg.seed == first_seed:
    print(f"[{label}] {tasks.describe(jax.eval_shape(task.init, key))}", flush=True)
  device_data = jax.device_put({k: v for k, v in data["train"].items()})
  checkpointer = ckpt_lib.Checkpointer(os.path.join(run_dir, "checkpoints"), keep=cfg.ckpt.keep)
  tracker = tracking.Tracker(run_dir, mode, project=WANDB_PROJECT, group=exp.name, job_type=arm,
                             name=f"{arm}-seed{cfg.seed}", config=config_lib.flatten(cfg))
  result = {"experiment": exp.name, "arm": arm, "seed": cfg.seed, "status": "running"}
  state = None
  print_fn = (lambda *a, **k: None) if quiet else (lambda s: print(s, flush=True))
  exit_code = 0
  try:
    state, info = loop.train(task, cfg, data=device_data, key=key, tracker=tracker,
                             checkpointer=checkpointer, resume=resume, label=label,
                             print_fn=print_fn)
    rows = tracking.read_jsonl(tracker.path)
    final = {k: v for k, v in info["final_eval"].items() if k != "eval_s"}
    final.update(_final_train_metrics(rows))
    figures = tasks.artifacts(cfg, state, data, rows, run_dir, key, label)
    for path in figures:
      tracker.log_image(cfg.train.steps, f"figures/{os.path.basename(path)}", path)
    tracker.summary(final)
    result.update(status="finished", step=cfg.train.steps, metrics=final,
                  compile_s=info["compile_s"], steps_per_s=info["steps_per_s"],
                  resumed_from=info["start_step"])
  except loop.Diverged as e:
    print(f"[{label}] DIVERGED: {e}. The last good checkpoint is kept in {run_dir}/checkpoints; "
          "the sweep goes on.", flush=True)
    result.update(status="diverged", step=e.step, metrics={}, error=str(e))
    exit_code = 1
  except loop.Interrupted as e:
    result.update(status="interrupted", step=e.step)
    exit_code = 1
    raise
  finally:
    result["wall_s"] = time.perf_counter() - t_start
    if result["status"] != "running":
      _write_json(os.path.join(run_dir, "result.json"), result)
    tracker.finish(exit_code)
    checkpointer.close()
  return state, result


def _fmt(metrics, keys):
  return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float)))


def run_plan(exp, arm_cfgs, plan, out, mode, *, quiet=False, command=None) -> int:
  exp_dir = os.path.join(out, exp.name)
  os.makedirs(exp_dir, exist_ok=True)
  n_new = sum(a != "skip" for *_, a in plan)
  print(f"{exp.name}: {len(arm_cfgs)} arm(s) x {len(arm_cfgs[0][3])} seed(s) = {len(plan)} runs "
        f"({len(plan) - n_new} already finished), wandb {mode}, output {exp_dir}", flush=True)
  t0 = time.perf_counter()
  key_metrics = report.headline_keys(arm_cfgs[0][2])
  try:
    for i, (arm, cfg, seed, run_dir, action) in enumerate(plan):
      if action == "skip":
        print(f"[{i + 1}/{len(plan)}] {arm}/seed{seed}: finished earlier, skipped", flush=True)
        continue
      first_seed = min(p[2] for p in plan if p[0] == arm)
      _, result = run_one(exp, arm, cfg, run_dir, mode, resume=(action == "resume"), quiet=quiet,
                          first_seed=first_seed)
      line = _fmt(result.get("metrics", {}), key_metrics) if result["status"] == "finished" else result["status"]
      print(f"[{i + 1}/{len(plan)}] {arm}/seed{seed}: {line} ({result['wall_s']:.1f}s)", flush=True)
  except loop.Interrupted as e:
    print(f"Interrupted: checkpoint saved at step {e.step}. Continue with the same command plus "
          "--resume.", flush=True)
    report.build(exp_dir, exp, arm_cfgs, command)
    return 130
  paths = report.build(exp_dir, exp, arm_cfgs, command)
  print(f"Done in {time.perf_counter() - t0:.1f}s. Report: {paths['report']}", flush=True)
  print(report.table_text(paths["summary_obj"]), flush=True)
  return 0


def load_run(run_dir: str):
  """(cfg, state, data, key, step) of a saved run, from its config.json and latest checkpoint."""
  from experiments.run import RunError  # pylint: disable=g-import-not-at-top
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise RunError(f"{run_dir} is not a run directory (no config.json). Give a path like "
                   "runs/<exp>/<arm>/seed<k>.")
  with open(path) as f:
    cfg = config_lib.validate(config_lib.from_dict(json.load(f)))
  data = data_lib.load(cfg, log=lambda s: None)
  key = jax.random.key(cfg.seed)
  task = tasks.make_task(cfg, data, key)
  checkpointer = ckpt_lib.Checkpointer(os.path.join(run_dir, "checkpoints"), keep=cfg.ckpt.keep)
  try:
    state, meta = checkpointer.restore_latest(task.init(jax.random.fold_in(key, 1)))
  finally:
    checkpointer.close()
  if state is None:
    raise RunError(f"{run_dir} has no readable checkpoint; train it first (or --resume it).")
  return cfg, state, data, key, int(meta["step"])
