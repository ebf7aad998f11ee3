"""Collecting the runs that belong to a sweep: which settings each arm is reported under, every
run's values (recovered where files are damaged, never dropped) and the runs shown apart."""

import datetime
import json
import os

import numpy as np

from gen_models import config as config_lib
from gen_models import equivalence
from gen_models import families
from gen_models import files
from gen_models import metric_names as names
from gen_models import rundir
from gen_models import runs
from gen_models import tracking
from gen_models.errors import RunError


def read_rebuildable(path, kind, problems=None) -> dict:
  """A file the report can rebuild (summary.json, eval_noise.json): its validated value, or {}
  when it is missing or damaged (then the damage is added to `problems`)."""
  try:
    return files.read(path, kind) or {}
  except files.DamagedFile as e:
    if problems is None:
      raise
    what = "rebuilt from the runs" if kind == "summary" else "left out (--resume recomputes it)"
    problems.append(f"{os.path.basename(path)}: damaged ({e.reason}); {what}")
    return {}


def _arm_keys(exp) -> set:
  return {k for _, overrides in exp.arm_items() for k in overrides}


def sweep_configs(exp_dir, exp) -> list:
  """[(arm, overrides, cfg, [])] of the last command that ran this sweep, from its sweep.json
  (written by the sweep's first worker: gen_models.rundir.join_sweep); [] when there is none or it
  cannot be read as configs. What a rebuild reports the arms under, before the previous
  summary.json's settings and the vote of the runs on disk."""
  try:
    saved = files.read(rundir.ExpPaths(exp_dir).sweep, "sweep", root=exp_dir) or {}
  except files.DamagedFile:
    return []
  identity = saved.get("identity")
  if not isinstance(identity, dict):
    return []
  by_arm, out = equivalence.identity_arms(identity), []
  for arm, overrides in exp.arm_items():
    flat = dict(by_arm.get(arm, {}))
    if not flat:
      continue
    flat.pop("version", None)
    try:
      cfg = config_lib.apply_overrides(config_lib.Config(), flat)
    except (config_lib.ConfigError, TypeError, ValueError, AttributeError):
      return []
    out.append((arm, dict(overrides), cfg, []))
  return out


def reference_configs(exp, arm_cfgs, previous_base=None, disk_cfgs=()):
  """{arm: the config its runs must have to be reported together} for every arm of `exp`: the
  command's own configs for the arms it names (for a rebuild: those of the sweep.json,
  sweep_configs), and for the others the command's settings with that arm's overrides. Without
  either, the settings recorded in the previous summary.json, else the ones most runs on disk
  share. Returns ({arm: cfg}, base settings)."""

  arm_keys = _arm_keys(exp)
  exp_flat = config_lib.flatten(exp.config)
  base = None
  if arm_cfgs:
    flat = config_lib.flatten(arm_cfgs[0][2])
    base = {k: v for k, v in flat.items() if k not in arm_keys}
    for k in arm_keys:  # an arm key's base value: from a commanded arm that does not set it
      free = [c for _, o, c, _ in arm_cfgs if k not in o]
      base[k] = config_lib.get(free[0], k) if free else exp_flat[k]
  elif isinstance(previous_base, dict):
    base = dict(previous_base)
  elif disk_cfgs:
    votes = {}
    for arm_overrides, cfg in disk_cfgs:
      flat = config_lib.flatten(cfg)
      key = json.dumps(
          {
              k: v
              for k, v in flat.items()
              if k not in arm_keys and k not in equivalence.EXECUTION_KEYS
          },
          sort_keys=True,
      )
      votes.setdefault(key, [0, flat])[0] += 1
    flat = max(votes.values(), key=lambda v: v[0])[1]
    base = {
        **{k: v for k, v in flat.items() if k not in arm_keys},
        **{k: exp_flat[k] for k in arm_keys},
    }
  if base is None:
    return {}, None
  base.pop("version", None)
  given = {a: c for a, _, c, _ in arm_cfgs}
  out = {}
  for arm, overrides in exp.arm_items():
    try:
      out[arm] = given.get(arm) or config_lib.apply_overrides(
          config_lib.apply_overrides(config_lib.Config(), base), overrides
      )
    except (config_lib.ConfigError, TypeError, ValueError):
      continue
  return out, base


def belongs(run_cfg, ref_cfg) -> list[str]:
  """Why a run's config differs from the one its arm is reported under ([] if it belongs)."""
  a, b = equivalence.protocol(run_cfg), equivalence.protocol(ref_cfg)
  return [
      f"{k}={a.get(k)!r} (this run) vs {b.get(k)!r} (the report's)"
      for k in sorted(set(a) | set(b))
      if a.get(k) != b.get(k)
  ]


def _stats(values):
  values = [float(v) for v in values]
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return {"mean": float(np.mean(values)), "std": std, "per_seed": values}


def _previous(old: dict) -> dict:
  """{(arm, seed): {metric: value}} from the previous summary.json (already read), if usable."""
  arms = old.get("arms")
  out = {}
  number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
  for arm in arms if isinstance(arms, list) else []:
    try:
      for i, seed in enumerate(arm["seeds"]):
        out[(arm["name"], int(seed))] = {
            k: m["per_seed"][i] for k, m in arm["metrics"].items() if number(m["per_seed"][i])
        }
      for k, by_seed in arm.get("partial", {}).items():  # metrics some seeds lacked
        for seed, v in by_seed.items():
          if number(v):
            out.setdefault((arm["name"], int(seed)), {})[k] = v
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
      continue
  return out


def collect(exp_dir, exp, arm_cfgs, refs=None, old=None):
  """Reads every run's result.json and metrics.jsonl. Returns (summary dict, {arm: [rows]}).

  Nothing that was on disk is lost: a run whose result.json is missing or unreadable is rebuilt
  from its metrics.jsonl when that holds the final evaluation, else its values are taken from
  the previous summary.json (only for a run whose directory exists: a value with no run on disk
  is never reported); each such case is listed in summary["problems"] and the arm's "recovered".
  A run whose config differs from its arm's reference config (`refs`, see reference_configs) in
  anything but its seed is shown apart, in the arm's "other_configs", never pooled or compared."""
  paths = rundir.ExpPaths(exp_dir)
  previous = _previous(read_rebuildable(paths.summary, "summary", []) if old is None else old)
  refs = refs or {}
  arms, curves, problems, extractors = [], {}, [], {}
  for arm, overrides, cfg, seeds in arm_cfgs:
    listed_only = sorted(
        s for a, s in previous if a == arm and not os.path.isdir(paths.run(arm, s).dir)
    )
    for s in paths.seeds(arm):
      if not os.path.isdir(paths.run(arm, s).dir):
        problems.append(f"{arm}/seed{s} is a file where the run's directory should be; left out")
    if listed_only:
      problems.append(
          f"{arm}: the previous summary.json lists seed(s) {', '.join(map(str, listed_only))} with"
          " no run directory on disk; their values are not reported"
      )
    seeds = sorted(set(seeds) | set(paths.seeds(arm)))
    per_seed, statuses, rows_by_seed, wall, done_seeds = {}, {}, [], 0.0, []
    recovered, apart = {}, {}
    for seed in seeds:
      run = paths.run(arm, seed)
      run_dir = run.dir
      run_cfg = runs.run_config(run_dir) if os.path.isdir(run_dir) else None
      if run_cfg is not None and arm in refs:
        differs = belongs(run_cfg, refs[arm])
        if differs:
          apart[str(seed)] = differs
          continue
      elif os.path.isdir(run_dir) and os.path.exists(run.result):
        problems.append(
            f"{arm}/seed{seed}: config.json is missing or unreadable, so it cannot be checked"
            " against the arm's config; it is reported as if it matched"
        )
      path = run.result
      damaged = []
      rows = tracking.read_jsonl(run.metrics, damaged, root=exp_dir)
      if damaged:
        problems.append(
            f"{arm}/seed{seed}: metrics.jsonl has {len(damaged)} damaged line(s) (line "
            f"{', '.join(str(i) for i, _ in damaged[:5])}), skipped; the other rows are used"
        )
      result = files.read(path, "result", root=exp_dir)  # damaged: exit 2, naming it
      if not rows and (result or {}).get("status") == "finished":
        problems.append(
            f"{arm}/seed{seed}: metrics.jsonl has no rows (empty or missing): its curves are"
            " missing and its headline values are those of the previous summary.json, else its"
            " final evaluation"
        )
      if result is None:
        result = runs.recover(run_dir, cfg, rows) if os.path.isdir(run_dir) else None
        if result is not None:
          recovered[str(seed)] = "metrics.jsonl"
        elif (arm, seed) in previous and os.path.isdir(run_dir):
          result = {
              "status": "finished",
              "metrics": previous[(arm, seed)],
              "recovered": "summary.json",
          }
          recovered[str(seed)] = "summary.json"
          problems.append(
              f"{arm}/seed{seed}: no readable result.json; its metrics are kept from the previous "
              "summary.json"
          )
        else:
          result = {}
      statuses[str(seed)] = result.get("status", "missing")
      if isinstance(result.get("extractors"), dict):
        extractors.setdefault(result["extractors"]["ident"], (result["extractors"], []))[1].append(
            f"{arm}/seed{seed}"
        )
      wall += float(result.get("wall_s", 0.0) or 0.0)
      if result.get("status") == "finished":
        done_seeds.append(seed)
        metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
        per_seed[seed] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        values, incomplete = runs.headline_values(rows, cfg, per_seed[seed])
        old = previous.get((arm, seed), {})
        # evaluations of the window are missing: the earlier value, if any, stays
        for m in incomplete:
          if m in old:
            values[m] = old[m]
          problems.append(
              f"{arm}/seed{seed}: {m} is missing evaluations of its window in metrics.jsonl; "
              + (
                  "the previous summary.json's value is kept"
                  if m in old
                  else "computed from the evaluations that are there"
              )
          )
        per_seed[seed].update(values)
        for k, v in old.items():  # e.g. headline values whose rows are gone
          per_seed[seed].setdefault(k, v)
        rows_by_seed.append(rows)
    if apart:
      problems.append(
          f"{arm}: seed(s) {', '.join(apart)} were trained with other settings and are shown apart "
          f"(not in the tables or verdicts): {'; '.join(apart[next(iter(apart))][:3])}"
      )
    found = sorted({k for m in per_seed.values() for k in m})
    metrics = {
        k: _stats([per_seed[s][k] for s in done_seeds])
        for k in found
        if all(k in per_seed[s] for s in done_seeds)
    }
    partial = [k for k in found if k not in metrics]
    if partial:  # a metric some seeds lack is kept per seed, never dropped
      problems.append(
          f"{arm}: metrics missing for some seeds: {', '.join(partial)} (kept per seed in"
          " 'partial')"
      )
    arms.append({
        "name": arm,
        "overrides": overrides,
        "seeds": done_seeds,
        "metrics": metrics,
        "partial": {
            k: {str(s): per_seed[s][k] for s in done_seeds if k in per_seed[s]} for k in partial
        },
        "wall_s": wall,
        "status": statuses,
        "diverged": [int(s) for s, st in statuses.items() if st == "diverged"],
        "recovered": recovered,
        "other_configs": apart,
    })
    curves[arm] = rows_by_seed
  if len(extractors) > 1:

    raise RunError(
        f"The runs in {exp_dir} were scored by different feature extractors, whose FIDs cannot "
        "share a table: "
        + "; ".join(
            f"{ident}: {', '.join(runs[:4])}{' ...' if len(runs) > 4 else ''}"
            for ident, (_, runs) in extractors.items()
        )
        + ". Re-score the odd ones with `python -m experiments.evaluate --run <run dir>` (it uses "
        "this installation's extractors) or report them separately."
    )
  summary = {
      "experiment": exp.name,
      "description": exp.description,
      "arms": arms,
      "family": families.of(arm_cfgs[0][2]).name,
      "problems": problems,
      "columns": families.of(arm_cfgs[0][2]).report.table([c for _, _, c, _ in arm_cfgs]),
      "extractors": next(iter(extractors.values()))[0] if extractors else None,
      "generated": datetime.datetime.now().isoformat(timespec="seconds"),
  }
  return summary, curves


def arms_on_disk(exp_dir, exp, arm_cfgs=(), refs=None):
  """arm_cfgs, plus every other arm of `exp` with runs on disk, in the experiment's arm order: a
  report made after running a subset of arms still shows them all. An arm's config is its
  reference config (`refs`) when there is one, else that of a saved run."""
  given = {a[0]: a for a in arm_cfgs}
  out = []
  for arm, overrides in exp.arm_items():
    if arm in given:
      out.append(given[arm])
      continue
    seeds = rundir.ExpPaths(exp_dir).seeds(arm)
    if seeds and refs and arm in refs:
      out.append((arm, dict(overrides), refs[arm], []))
      continue
    for seed in seeds:
      cfg = runs.run_config(rundir.ExpPaths(exp_dir).run(arm, seed).dir)
      if cfg is not None:
        out.append((arm, dict(overrides), cfg, []))
        break
  return out


def floors_from_runs(summary):
  floors = {}
  for arm in summary["arms"]:
    for key in arm["metrics"]:
      if key.endswith(names.floor("")):
        floors[key] = arm["metrics"][key]["mean"]
  return floors
