"""Trains the planned (arm, seed) runs, then builds the sweep report.

Runs that share shapes share one compiled step: hyperparameters are traced values, and modules
and optimizers are cached per static config (gen_models.models / gen_models.state). With
train.vmap_runs they also train together, as one jax.vmap'ed program.
"""

import dataclasses
import json
import os
import time
from typing import Optional

import jax

from gen_models import checkpoint as ckpt_lib
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import equivalence
from gen_models import families
from gen_models import files
from gen_models import loop
from gen_models import metric_names as names
from gen_models import report
from gen_models import rundir
from gen_models import runs as runs_lib
from gen_models import runtime
from gen_models import signals
from gen_models import tracking

WANDB_PROJECT = os.environ.get("WANDB_PROJECT", "gen-models")


def _write_json(path, obj):
  if not runtime.is_main_process():
    return
  rundir.write_atomic(path, json.dumps(obj, indent=1))


_DEVICE_DATA = {}


def _device_data(host: dict):
  """Device copies of a host dataset, made once per dataset (image sets are shared by every run
  of a sweep, so a vectorised group holds them once)."""
  if id(host) not in _DEVICE_DATA:
    _DEVICE_DATA.clear()  # one dataset at a time: do not pin old ones in memory
    _DEVICE_DATA[id(host)] = (host, jax.device_put(dict(host)))
  return _DEVICE_DATA[id(host)][1]


def run_group(exp, items, mode, *, quiet=False, describe=False):
  """Trains the (arm, cfg, run_dir, resume) items, as one vectorised program when there are
  several. Returns [(final state or None, result)]; results also go to each run_dir/result.json."""
  print_fn = (lambda *a, **k: None) if quiet else (lambda s: print(s, flush=True))
  t_start = time.perf_counter()
  runs, ctx = [], []
  states = []
  try:
    for arm, cfg, run_dir, _ in items:
      os.makedirs(run_dir, exist_ok=True)
      _write_json(rundir.RunPaths(run_dir).config, config_lib.to_dict(cfg))
      label = f"{exp.name}/{arm}/seed{cfg.seed}"
      data = data_lib.load(cfg)
      key = jax.random.key(cfg.seed)
      task = families.make_task(cfg, data, key, run_dir)
      if describe and not runs:
        print_fn(f"[{label}] {families.describe(jax.eval_shape(task.init, key))}")
      checkpointer = ckpt_lib.Checkpointer(rundir.RunPaths(run_dir).checkpoints, keep=cfg.ckpt.keep)
      tracker = (
          tracking.Tracker(
              run_dir,
              mode,
              project=WANDB_PROJECT,
              group=exp.name,
              job_type=arm,
              name=f"{arm}-seed{cfg.seed}",
              config=config_lib.flatten(cfg),
          )
          if runtime.is_main_process()
          else tracking.NullTracker()
      )
      runs.append(
          loop.Run(task, cfg, _device_data(data["train"]), key, tracker, checkpointer, label)
      )
      ctx.append({
          "arm": arm,
          "data": data,
          "run_dir": run_dir,
          "result": {"experiment": exp.name, "arm": arm, "seed": cfg.seed, "status": "running"},
      })
    if len(runs) > 1:
      print_fn(
          f"[{exp.name}] training {len(runs)} runs as one vectorised program: "
          + ", ".join(r.label.split("/", 1)[1] for r in runs)
      )
    try:
      states = loop.train_many(runs, resume=items[0][3], print_fn=print_fn)
    except loop.Interrupted as e:
      for c in ctx:
        c["result"].update(status="interrupted", step=e.step)
      raise
    for run, state, c in zip(runs, states, ctx):
      result = c["result"]
      if run.status == "diverged":
        kept = run.checkpointer.steps()
        where = (
            f"The last good checkpoint (step {kept[-1]}) is kept in {c['run_dir']}/checkpoints"
            if kept
            else "It diverged before its first checkpoint, so there is none to go back to"
        )
        print(f"[{run.label}] DIVERGED: {run.error}. {where}; the sweep goes on.", flush=True)
        result.update(
            status="diverged", step=run.info["diverged_step"], metrics={}, error=run.error
        )
        continue
      rows = tracking.read_jsonl(run.tracker.path)
      final = runs_lib.final_metrics(run.info["final_eval"], rows)
      cost = names.unprefixed(run.info.get("cost", {}), names.COST)
      # the compute behind the final evaluation, as metrics (cost_flops, ...), timings apart
      final.update({f"cost_{k}": v for k, v in cost.items() if names.cost(k) not in names.TIMINGS})
      figures = (
          families.of(run.cfg).artifacts(
              run.cfg, state, c["data"], rows, c["run_dir"], run.key, run.label
          )
          if runtime.is_main_process()
          else []
      )
      for path in figures:
        run.tracker.log_image(run.cfg.train.steps, f"figures/{os.path.basename(path)}", path)
      extractors = families.of(run.cfg).extractor_info(run.cfg, c["data"])
      run.tracker.summary({**final, **({"extractors": extractors["ident"]} if extractors else {})})
      if extractors:
        result["extractors"] = extractors
      result.update(
          status="finished",
          step=run.cfg.train.steps,
          metrics=final,
          compile_s=run.info["compile_s"],
          steps_per_s=run.info["steps_per_s"],
          train_s=run.info["train_s"],  # this process's; cost["train_s"] is every one's
          resumed_from=run.info["start_step"],
          cost=cost,
          vectorised_with=len(runs),
      )
  finally:
    wall = (time.perf_counter() - t_start) / max(1, len(ctx))
    for run, c in zip(runs, ctx):
      c["result"]["wall_s"] = wall  # a vectorised group's wall time, shared equally
      if c["result"]["status"] != "running":
        _write_json(rundir.RunPaths(c["run_dir"]).result, c["result"])
      run.tracker.finish(0 if c["result"]["status"] == "finished" else 1)
      run.checkpointer.close()
  return list(zip(states or [None] * len(ctx), [c["result"] for c in ctx]))


def _group_key(cfg, run_dir, action):
  """Runs that share a compiled program (equivalence.compile_key) and resume from one step."""
  start = 0
  if action == "resume":
    start = max(rundir.RunPaths(run_dir).checkpoint_steps(), default=0)
  return equivalence.compile_key(cfg), start


def _groups(plan):
  """Pending plan entries batched for training: with train.vmap_runs, runs that differ only in
  traced values and resume from the same step form one group; otherwise one run per group."""
  groups, index = [], {}
  for arm, cfg, _, run_dir, action in plan:
    if action == "skip":
      continue
    item = (arm, cfg, run_dir, action == "resume")
    if loop.vmap_runs(cfg):
      key = _group_key(cfg, run_dir, action)
      if key in index:
        groups[index[key]].append(item)
        continue
      index[key] = len(groups)
    groups.append([item])
  return groups


def _metrics_line(metrics, keys):
  return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float)))


def _train_group(exp, group, mode, quiet, describe, done, n_new, key_metrics):
  """Trains one group; prints a line per run ([k/n]: the k-th run this process trained, of the n
  the sweep had pending when it started; workers share those). Returns the updated count."""
  for (arm, cfg, _, _), (_, result) in zip(
      group, run_group(exp, group, mode, quiet=quiet, describe=describe)
  ):
    done += 1
    line = (
        _metrics_line(result.get("metrics", {}), key_metrics)
        if result["status"] == "finished"
        else result["status"]
    )
    count = f"{done}/{n_new}" if n_new else f"{done}"
    print(f"[{count}] {arm}/seed{cfg.seed}: {line} ({result['wall_s']:.1f}s)", flush=True)
  return done


# How often a worker with nothing to claim looks again (a run's claim is free the moment its
# holder exits, so a dead worker's run is taken over within this).
WAIT_S = float(os.environ.get("GEN_MODELS_CLAIM_POLL_S", "5"))


def _claim_next(groups, claims):
  """The first group whose runs this worker could claim (all of them), or None."""
  for group in groups:
    if claims.take([(arm, cfg.seed) for arm, cfg, _, _ in group]):
      return group
  return None


def _claimed_items(replan, group):
  """The claimed runs as they stand now (another worker may have finished some since the plan was
  made), regrouped: [[item, ...], ...] with the resume flags read after claiming."""
  mine = {(arm, cfg.seed) for arm, cfg, _, _ in group}
  fresh = [p for p in replan() if (p[0], p[2]) in mine]
  return _groups(fresh)


def _work(exp, replan, claims, mode, quiet, key_metrics, n_new):
  """Claims and trains runs until every run of the plan is finished (by this worker or others).
  Returns how many this worker trained."""
  done, said = 0, None
  while True:
    groups = _groups(replan())
    if not groups:  # all finished: a stop asked for now still gets the full report
      return done
    if signals.requested():
      raise loop.Interrupted(None)
    group = _claim_next(groups, claims)
    if group is None:
      held = [f"{arm}/seed{cfg.seed}" for g in groups for arm, cfg, _, _ in g]
      if held != said:
        print(
            f"waiting for {len(held)} run(s) other workers are training: {', '.join(held)} (a"
            " run whose worker dies is taken over)",
            flush=True,
        )
        said = held
      time.sleep(WAIT_S)
      continue
    said = None
    try:
      for items in _claimed_items(replan, group):
        done = _train_group(exp, items, mode, quiet, done == 0, done, n_new, key_metrics)
    finally:
      claims.release()
    plan = replan()
    left = sum(a != "skip" for *_, a in plan)
    print(f"sweep: {len(plan) - left} of {len(plan)} runs finished", flush=True)


def _stamp(plan) -> list:
  """What a report of `plan` is built from: each run's status and step on disk."""
  out = []
  for arm, _, seed, run_dir, _ in plan:
    result = files.read(rundir.RunPaths(run_dir).result, "result") or {}
    out.append(f"{arm}/seed{seed}:{result.get('status')}@{result.get('step')}")
  return sorted(out)


def _report_once(exp_dir, exp, arm_cfgs, plan, command, since, partial=False):
  """Builds the report under its lock, unless another worker of this sweep already built it from
  the same runs after `since`. Returns (summary, built here)."""
  paths = rundir.ExpPaths(exp_dir)
  with rundir.report_lock(exp_dir):
    stamp = _stamp(plan)
    try:
      old = files.read(paths.summary, "summary")
    except files.DamagedFile:  # rebuilt below
      old = None
    if (
        not partial
        and isinstance(old, dict)
        and old.get("built_from") == stamp
        and os.path.getmtime(paths.summary) >= since
    ):
      return old, False
    if not partial and jax.process_count() == 1:  # others would wait at jax.distributed's barrier
      runs_lib.evaluation_noise(exp_dir, exp)
    return report.build(exp_dir, exp, arm_cfgs, command, built_from=stamp)["summary_obj"], True


@dataclasses.dataclass
class Round:
  """What one round of a sweep returns: the exit code and the summary its report was built from
  (None where this process built none: interrupted, or not the main process), whose "sequential"
  entry is the design's decision, so a caller never re-reads the summary.json it just wrote."""

  code: int
  summary: Optional[dict] = None


def run_plan(
    exp, arm_cfgs, plan, out, mode, *, quiet=False, command=None, claims=None, replan=None
) -> Round:
  """Trains the plan's pending runs, then writes the report. With `claims` (a rundir.Claims) and
  `replan` (the plan as it stands on disk now) this process is one of any number of workers: it
  claims one run (or vectorised group) at a time, waits for runs other workers hold, and the report
  is built once, by the first worker to find every run finished."""
  exp_dir = os.path.join(out, exp.name)
  os.makedirs(exp_dir, exist_ok=True)
  since = time.time()
  n_new = sum(a != "skip" for *_, a in plan)
  print(
      f"{exp.name}: {len(arm_cfgs)} arm(s) x {len(arm_cfgs[0][3])} seed(s) = {len(plan)} runs "
      f"({len(plan) - n_new} already finished), wandb {mode}, output {exp_dir}",
      flush=True,
  )
  t0 = time.perf_counter()
  key_metrics = runs_lib.headline_keys(arm_cfgs[0][2])
  for arm, _, seed, _, action in plan:
    if action == "skip":
      print(f"{arm}/seed{seed}: finished earlier, skipped", flush=True)
  done = 0
  try:
    if claims is not None:
      done = _work(exp, replan, claims, mode, quiet, key_metrics, n_new)
      plan = replan()
    else:
      for group in _groups(plan):
        if loop.stop_requested():  # between runs (collective: all processes agree)
          raise loop.Interrupted(None)
        done = _train_group(exp, group, mode, quiet, done == 0, done, n_new, key_metrics)
  except loop.Interrupted as e:
    where = (
        f"checkpoint saved at step {e.step}"
        if e.step is not None
        else f"{done} of {n_new} runs finished"
    )
    print(
        f"Interrupted: {where}. Writing the report of what is finished; continue with the same "
        "command plus --resume.",
        flush=True,
    )
    if runtime.is_main_process():
      _report_once(exp_dir, exp, arm_cfgs, plan, command, since, partial=True)
      print(f"Report (partial): {rundir.ExpPaths(exp_dir).report}", flush=True)
    return Round(130)
  if not runtime.is_main_process():
    return Round(0)
  summary, built = _report_once(exp_dir, exp, arm_cfgs, plan, command, since)
  for problem in summary["problems"]:
    print(f"WARNING: {problem}", flush=True)
  print(
      f"Done in {time.perf_counter() - t0:.1f}s ({done} run(s) trained by this process). Report"
      f"{'' if built else ' (built by another worker)'}: {rundir.ExpPaths(exp_dir).report}",
      flush=True,
  )
  if not built:  # the worker that built it prints the tables
    return Round(0, summary)
  print(report.table_text(summary), flush=True)
  if summary["comparisons"]:
    print("\n" + report.verdict_text(summary, markdown=False), flush=True)
  tracking.log_comparisons(exp_dir, mode, project=WANDB_PROJECT, group=exp.name, summary=summary)
  return Round(0, summary)
