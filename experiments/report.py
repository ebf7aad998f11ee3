"""Sweep report: summary.json, report.md and comparison PNGs, rebuilt from what is on disk.

  python -m experiments.report runs/<exp>        (rebuild a report by hand)
  python -m experiments.report --tables FILE     (print a summary.json's tables, e.g. one under
                                                  docs/results/data/: what the results pages quote)

summary.json: {"experiment", "arms": [{"name", "overrides", "seeds", "metrics": {"<name>":
{"mean", "std", "per_seed"}}, "wall_s", "status"}], ...}. std is the sample std (ddof=1) over seeds.
"""

import datetime
import json
import math
import os
from typing import Optional
import sys

import numpy as np
from scipy import stats as sp_stats

from experiments import cli
from experiments import registry
from gen_models import config as config_lib
from gen_models import families
from gen_models import files
from gen_models import metric_names as names
from gen_models import notes as notes_lib
from gen_models import plots
from gen_models import rundir
from gen_models import sequential
from gen_models import stats
from gen_models import tracking
from gen_models.errors import RunError


def headline_keys(cfg) -> list[str]:
  return [k for k, _, better in families.of(cfg).table([cfg]) if better is not None][:3]


def _read_dict(path, kind, problems=None) -> dict:
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


# Keys that change how a run executes, never what it computes (bit-identical either way): runs
# that differ only in them belong together.
EXECUTION_KEYS = (
    "seed",
    "seeds",
    "version",
    "train.scan_chunk",
    "train.vmap_runs",
    "ckpt.every",
    "ckpt.keep",
)


def _arm_keys(exp) -> set:
  return {k for _, overrides in exp.arm_items() for k in overrides}


def _protocol(cfg) -> dict:
  """What a run's results depend on, apart from its seed: every key but EXECUTION_KEYS."""

  return {k: v for k, v in config_lib.flatten(cfg).items() if k not in EXECUTION_KEYS}


def reference_configs(exp, arm_cfgs, previous_base=None, disk_cfgs=()):
  """{arm: the config its runs must have to be reported together} for every arm of `exp`: the
  command's own configs for the arms it names, and for the others the command's settings with
  that arm's overrides. Without a command (a rebuild), the settings recorded in the previous
  summary.json, else the ones most runs on disk share. Returns ({arm: cfg}, base settings)."""

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
          {k: v for k, v in flat.items() if k not in arm_keys and k not in EXECUTION_KEYS},
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
  a, b = _protocol(run_cfg), _protocol(ref_cfg)
  return [
      f"{k}={a.get(k)!r} (this run) vs {b.get(k)!r} (the report's)"
      for k in sorted(set(a) | set(b))
      if a.get(k) != b.get(k)
  ]


write_atomic = rundir.write_atomic


def _stats(values):
  values = [float(v) for v in values]
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return {"mean": float(np.mean(values)), "std": std, "per_seed": values}


def _final_train_metrics(rows):
  """The last logged training means (over the last log interval)."""
  for row in reversed(rows):
    if names.is_train_row(row):
      return names.unprefixed(row, names.TRAIN)
  return {}


def final_metrics(final_eval: dict, rows: list) -> dict:
  """A finished run's metrics: its last evaluation, then its last training means (a training
  metric whose name clashes with an evaluation one gets a train_ prefix)."""
  out = {k: v for k, v in final_eval.items() if k != "eval_s"}
  out.update(
      {k if k not in out else f"train_{k}": v for k, v in _final_train_metrics(rows).items()}
  )
  return out


def _recover(run_dir, cfg, rows):
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


def _run_config(run_dir):
  """A run's saved config, or None when its config.json is missing or unreadable."""

  exp_dir = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
  saved = files.read(rundir.RunPaths(run_dir).config, "config", root=exp_dir)
  if saved is None:
    return None
  try:
    return config_lib.from_dict(saved)
  except (config_lib.ConfigError, TypeError, ValueError, AttributeError):
    return None


def collect(exp_dir, exp, arm_cfgs, refs=None, old=None):
  """Reads every run's result.json and metrics.jsonl. Returns (summary dict, {arm: [rows]}).

  Nothing that was on disk is lost: a run whose result.json is missing or unreadable is rebuilt
  from its metrics.jsonl when that holds the final evaluation, else its values are taken from
  the previous summary.json (only for a run whose directory exists: a value with no run on disk
  is never reported); each such case is listed in summary["problems"] and the arm's "recovered".
  A run whose config differs from its arm's reference config (`refs`, see reference_configs) in
  anything but its seed is shown apart, in the arm's "other_configs", never pooled or compared."""
  paths = rundir.ExpPaths(exp_dir)
  previous = _previous(_read_dict(paths.summary, "summary", []) if old is None else old)
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
      run_cfg = _run_config(run_dir) if os.path.isdir(run_dir) else None
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
        result = _recover(run_dir, cfg, rows) if os.path.isdir(run_dir) else None
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
        values, incomplete = headline_values(rows, cfg, per_seed[seed])
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
      "columns": families.of(arm_cfgs[0][2]).table([c for _, _, c, _ in arm_cfgs]),
      "extractors": next(iter(extractors.values()))[0] if extractors else None,
      "generated": datetime.datetime.now().isoformat(timespec="seconds"),
  }
  return summary, curves


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


def _divergence(c, diverged: dict) -> None:
  """Divergence is a result, never a silent drop: a comparison whose arms diverged on different
  numbers of seeds gets no verdict on its metric and no interval (the finished seeds alone would
  condition the worst outcome away); the counts and an exact sign test over the seeds where only
  one of the two diverged say which diverges more."""
  a, b = set(diverged.get(c["arm"], [])), set(diverged.get(c["baseline"], []))
  c["diverged"] = {c["arm"]: sorted(a), c["baseline"]: sorted(b)}
  only_a, only_b = len(a - b), len(b - a)
  if only_a + only_b:
    c["divergence_p"] = float(sp_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
  if len(a) != len(b):
    c["ci_low"], c["ci_high"] = -np.inf, np.inf
    c["verdict"] = (
        f"no verdict: {c['arm']} diverged on {len(a)} seed(s), {c['baseline']} on {len(b)}"
        f" (sign test over the seeds where one diverged: p = {c['divergence_p']:.3g})"
    )


def comparisons(summary, exp, k) -> list:
  """summary.json's `comparisons`: each arm against the baseline on each compared metric's
  headline value, paired by seed (no verdict where the arms diverged on different numbers of
  seeds: _divergence); image metrics also
  under every extractor on its own: a verdict "holds under every extractor" only when each
  extractor's own test rejects in the same direction (an intersection-union test, valid without
  a further correction); otherwise the per-extractor verdicts are only shown."""
  metrics = families.get(summary["family"]).verdict_metrics
  values = {
      a["name"]: {m: dict(zip(a["seeds"], a["metrics"][m]["per_seed"])) for m in a["metrics"]}
      for a in summary["arms"]
  }
  baseline = exp.baseline_arm()
  if baseline not in values or len(values) < 2:
    return []
  compared = {names.headline(m, k): lower for m, lower in metrics.items()}
  # One primary metric carries the verdict; the others share one Holm family (arms x metrics).
  primary = names.headline(exp.primary or families.get(summary["family"]).rank_by, k)
  groups = {h: "primary" if h == primary else "secondary" for h in compared}
  main = stats.compare(values, baseline, compared, families=groups)
  n_ex = names.extractors_in(m for a in summary["arms"] for m in a["metrics"])
  per_ex = {}
  for e in range(n_ex):
    table = {names.headline(names.per_extractor(m, e), k): m for m in metrics}
    on_e = {h: metrics[m] for h, m in table.items()}
    on_groups = {h: groups[names.headline(m, k)] for h, m in table.items()}
    for c in stats.compare(values, baseline, on_e, families=on_groups):
      per_ex.setdefault((c["arm"], table[c["metric"]]), []).append(c["verdict"])
  diverged = {a["name"]: a.get("diverged", []) for a in summary["arms"]}
  for c in main:
    c["role"] = groups[c["metric"]]
    # named by the metric; the value is its late-window mean
    c["metric"] = names.split_headline(c["metric"])[0]
    c["headline"] = f"mean of the evaluations in the last quarter of training (at most {k})"
    _divergence(c, diverged)
    verdicts = per_ex.get((c["arm"], c["metric"]))
    if verdicts:
      kind = lambda v: v if v in ("better", "worse") else "none"
      c["per_extractor"] = verdicts
      c["every_extractor"] = c["verdict"] in ("better", "worse") and all(
          kind(v) == c["verdict"] for v in verdicts
      )
      if c["every_extractor"]:
        c["verdict"] += " (holds under every extractor)"
    if c["role"] == "secondary" and c["verdict"].startswith(("better", "worse")):
      c["verdict"] += " (secondary: Holm over every arm and secondary metric)"
    for key in ("ci_low", "ci_high"):
      if not np.isfinite(c[key]):
        c[key] = None  # unbounded (too few seeds for the exact test): JSON has no infinity
  return main


def _design_values(summary, metric) -> dict:
  """{arm: {seed: value, None for a diverged run}} of the primary metric's headline value: the
  runs a design decides on (a run neither finished nor diverged is absent)."""
  key = names.headline(metric, summary.get("headline_k") or 1)
  out = {}
  for a in summary["arms"]:
    per_seed = (a["metrics"].get(key) or {}).get("per_seed")
    vals = dict(zip(a["seeds"], per_seed)) if per_seed else {}
    for s in a.get("diverged", []):
      vals[int(s)] = None
    out[a["name"]] = vals
  return out


def _replay(design, prim, values, kept) -> tuple:
  """The design's decisions look after look, with the runs on disk: look k uses the first
  looks[k] seeds of the sweep (a diverged run as the worst outcome: sequential.look_diffs); a
  comparison whose seeds are not all finished or diverged waits. Returns (decisions, the last
  look every comparison could be tested at, or None)."""
  seeds = sorted({s for v in values.values() for s in v})
  decisions, last = dict(kept), None
  if not prim:
    return decisions, None
  for k, n in enumerate(design.looks):
    if len(seeds) < n:
      break
    at = [seeds[0] + i for i in range(n)]
    comps = []
    for c in prim:
      d = sequential.look_diffs(
          values.get(c["arm"], {}), values.get(c["baseline"], {}), at, c["lower_is_better"]
      )
      if d is not None:
        comps.append({"arm": c["arm"], "diffs": d, "lower_is_better": c["lower_is_better"]})
    if len(comps) < len(prim):
      break  # a look decides on every comparison or waits for its runs
    decided = {a: d for a, d in decisions.items() if d["verdict"]}
    decisions = sequential.decide(comps, design, k, decided)
    for c in prim:  # how many of the look's runs diverged, for the verdict's wording
      if c["arm"] not in decided:
        lost = [values[a].get(s, 0.0) is None for a in (c["arm"], c["baseline"]) for s in at]
        decisions[c["arm"]]["diverged_runs"] = int(sum(lost))
    last = k
    if all(d["verdict"] for d in decisions.values()) and len(decisions) >= len(prim):
      break
  return decisions, last


def apply_design(summary, exp_dir) -> Optional[dict]:
  """With seeds on demand (a sequential.json written by --until-decided), the primary metric's
  verdicts are the design's: gen_models.sequential.decide at each look the runs on disk complete,
  a diverged run counted as its arm's worst outcome (so divergence never halts the design); a
  decision, once made, is kept in sequential.json. Returns summary["sequential"]: the design,
  the look, every decision and whether the sweep can stop."""
  path = rundir.ExpPaths(exp_dir).sequential
  seq = files.read(path, "sequential", root=exp_dir) or {}  # damaged: exit 2, naming it
  if not isinstance(seq.get("design"), dict):
    return None
  design = sequential.Design.from_dict(seq["design"])
  metric = seq.get("metric") or families.get(summary["family"]).rank_by  # the primary metric
  prim = [c for c in summary["comparisons"] if c["metric"] == metric]
  kept = {
      a: d
      for a, d in (seq.get("decisions") or {}).items()
      if isinstance(d, dict) and d.get("verdict")
  }
  values = _design_values(summary, metric)
  decisions, look = _replay(design, prim, values, kept)
  new = {a: d for a, d in decisions.items() if d["verdict"]}
  if new != kept:
    write_atomic(path, json.dumps({**seq, "decisions": new}, indent=1))
  K = len(design.looks)
  for c in prim:
    d = decisions.get(c["arm"])
    if not d:
      continue
    # the values the design decided on, at its look (a decision is kept; the data go on)
    c["level"], c["ci_low"], c["ci_high"] = d["level"], d["ci_low"], d["ci_high"]
    c["n"], c["mean_diff"], c["p"], c["design_look"] = d["n"], d["mean_diff"], d["p"], d["look"]
    lost = d.get("diverged_runs")
    lost = f"; {lost} diverged run(s) counted as the worst value seen" if lost else ""
    if d["verdict"]:
      c["verdict"] = (
          f"{d['verdict']} (decided at look {d['look'] + 1} of {K}, {d['n']} seeds{lost})"
      )
    elif d["look"] == K - 1:
      bound = max(abs(d["ci_low"]), abs(d["ci_high"]))
      c["verdict"] = (
          f"no difference detected (|diff| < {bound:.3g}, the design's last look, {d['n']}"
          f" seeds{lost})"
      )
    else:
      c["verdict"] = (
          f"no verdict yet (look {d['look'] + 1} of {K}, {d['n']} seeds{lost}; the design goes on)"
      )
    for key in ("ci_low", "ci_high"):
      if c[key] is not None and not np.isfinite(c[key]):
        c[key] = None
  for c in summary["comparisons"]:
    if c["metric"] != metric and c["verdict"].startswith(("better", "worse")):
      c["verdict"] += " (fixed-n at these seeds: descriptive)"
  open_ = [c["arm"] for c in prim if not (decisions.get(c["arm"]) or {}).get("verdict")]
  stop = None
  if prim and not open_:
    stop = "every comparison is decided"
  elif look == K - 1:
    stop = "the seed budget (the design's last look) is reached"
  return {
      "design": design.to_dict(),
      "metric": metric,
      "look": look,
      "decisions": decisions,
      "open": open_,
      "stop": stop,
      "described": design.describe(),
  }


def _holm_cell(c) -> str:
  """The p (Holm) cell: the adjusted p, or for a seeds-on-demand verdict the design's level."""
  if "design_look" in c:
    return f"design level {c['level']:.2g}"
  return f"{c['p_holm']:.3g}"


def verdict_text(summary, markdown: bool = True) -> str:
  """The verdict table of a summary's comparisons (markdown escapes the verdicts' |diff|)."""
  comps = summary.get("comparisons") or []
  if not comps:
    return ""
  fmt = lambda v: "∞" if v is None else f"{v:.4g}"
  lines = [
      (
          "| arm vs baseline | metric | n seeds | mean diff | interval (Holm-adjusted 95%) | p | p"
          " (Holm) | diverged (arm / baseline) | verdict |"
      ),
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for c in comps:
    lo = "-∞" if c["ci_low"] is None else f"{c['ci_low']:.4g}"
    div = c.get("diverged") or {}
    div_text = f"{len(div.get(c['arm'], []))} / {len(div.get(c['baseline'], []))}"
    lines.append(
        f"| {c['arm']} vs {c['baseline']} | {c['metric']} {'↓' if c['lower_is_better'] else '↑'} |"
        f" {c['n']} | {c['mean_diff']:+.4g} | [{lo}, {fmt(c['ci_high'])}] | {c['p']:.3g} |"
        f" {_holm_cell(c)} | {div_text} | "
        + (c["verdict"].replace("|", "\\|") if markdown else c["verdict"])
        + " |"
    )
  return "\n".join(lines)


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
      cfg = _run_config(rundir.ExpPaths(exp_dir).run(arm, seed).dir)
      if cfg is not None:
        out.append((arm, dict(overrides), cfg, []))
        break
  return out


def _mean_std(m):
  """A table cell: mean ± std of a summary metric ("-" when there is none)."""
  if not m:
    return "-"
  digits = 4 if abs(m["mean"]) < 10 else 1
  return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}"


def table_text(summary) -> str:
  """The markdown table of every arm's final metrics (mean ± std over seeds)."""
  family = families.get(summary["family"])
  cols = [tuple(c) for c in summary["columns"]]
  cols = [c for c in cols if any(c[0] in a["metrics"] for a in summary["arms"])] or cols
  head = ["arm", "seeds"] + [
      label + {True: " ↓", False: " ↑", None: ""}[better] for _, label, better in cols
  ]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  best = {}
  comps = summary.get("comparisons") or []
  for key, _, better in cols:
    vals = [(a["metrics"][key]["mean"], a["name"]) for a in summary["arms"] if key in a["metrics"]]
    on_key = [c for c in comps if c["metric"] == key]
    if better is None or not vals or not on_key:
      continue
    winner = (min(vals) if better else max(vals))[1]
    baseline = on_key[0]["baseline"]
    # Bold only what the paired verdicts back: the winner beats the baseline, or the baseline
    # beats every other arm.
    if (
        winner != baseline
        and any(c["arm"] == winner and c["verdict"].startswith("better") for c in on_key)
    ) or (winner == baseline and all(c["verdict"].startswith("worse") for c in on_key)):
      best[key] = winner
  rank_key = family.rank_by
  arms = list(summary["arms"])
  if rank_key and all(rank_key in a["metrics"] for a in arms):
    arms.sort(key=lambda a: a["metrics"][rank_key]["mean"])  # best first
  for arm in arms:
    seeds = f"{len(arm['seeds'])}" + (
        f" ({len(arm['diverged'])} diverged)" if arm["diverged"] else ""
    )
    if arm.get("other_configs"):
      seeds += f" (+{len(arm['other_configs'])} under other settings, apart)"
    cells = [arm["name"], seeds]
    for key, _, _ in cols:
      cell = _mean_std(arm["metrics"].get(key))
      cells.append(
          f"**{cell}**" if best.get(key) == arm["name"] and len(summary["arms"]) > 1 else cell
      )
    lines.append("| " + " | ".join(cells) + " |")
  for cells in family.extra_rows(summary, cols):  # real data, floors
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def tables_text(summary) -> str:
  """What a results page quotes from a summary.json, rebuilt from that file alone: the arms' table,
  the verdict table and, with seeds on demand, the design and why the sweep stopped."""
  parts = [table_text(summary), verdict_text(summary)]
  seq = summary.get("sequential")
  if seq:
    look = seq["look"]
    where = (
        f"This summary is at look {look + 1} of {len(seq['design']['looks'])}"
        if look is not None
        else "This summary is between looks"
    )
    parts.append(
        f"Design: {seq['described']}. {where}; "
        + (f"the sweep stopped: {seq['stop']}." if seq["stop"] else "the sweep goes on.")
    )
  return "\n\n".join(p for p in parts if p)


def _tables(path) -> int:
  summary = files.read(path, "summary", root=os.path.dirname(os.path.abspath(path))) or {}
  if not summary.get("arms"):
    raise RunError(
        f"{path} is not a summary.json (no arms in it). Give the summary.json of an experiment"
        " directory, e.g. runs/<exp>/summary.json or one under docs/results/data/."
    )
  print(tables_text(summary))
  return 0


def _floors_from_runs(summary):
  floors = {}
  for arm in summary["arms"]:
    for key in arm["metrics"]:
      if key.endswith(names.floor("")):
        floors[key] = arm["metrics"][key]["mean"]
  return floors


def summarize(exp_dir, exp, arm_cfgs, command=None):
  """(summary, per-arm curves, arm configs with their reported seeds) from what is on disk: every
  arm of `exp` with runs there, not only `arm_cfgs`. The summary.json schema: docs/summary.md."""
  damage = []
  old = _read_dict(rundir.ExpPaths(exp_dir).summary, "summary", damage)
  disk = [(o, c) for a, o, c, _ in arms_on_disk(exp_dir, exp)]
  refs, base = reference_configs(
      exp, list(arm_cfgs), old.get("protocol") if not arm_cfgs else None, disk
  )
  arm_cfgs = arms_on_disk(exp_dir, exp, arm_cfgs, refs)
  summary, curves = collect(exp_dir, exp, arm_cfgs, refs, old)
  summary["problems"][:0] = damage
  summary["protocol"] = base
  arm_cfgs = [(a, o, c, arm["seeds"]) for (a, o, c, _), arm in zip(arm_cfgs, summary["arms"])]
  command = command or old.get("command")
  summary["command"] = (
      command if isinstance(command, str) else f"python -m experiments.run --exp={exp.name}"
  )
  summary["floors"] = _floors_from_runs(summary)
  k = arm_cfgs[0][2].eval.last_k
  summary["headline_k"] = k
  summary["comparisons"] = comparisons(summary, exp, k)
  summary["sequential"] = apply_design(summary, exp_dir)
  noise = _read_dict(rundir.ExpPaths(exp_dir).eval_noise, "eval_noise", summary["problems"])
  summary["eval_noise"] = noise if isinstance(noise.get("std"), dict) else None
  return summary, curves, arm_cfgs


def draw(exp_dir, exp, summary, curves, arm_cfgs) -> dict:
  """The sweep's figures: {name: path}; the forest plot of the primary metric's comparisons
  first."""
  family = families.get(summary["family"])
  out = {}
  primary = [c for c in summary["comparisons"] if c["metric"] == family.rank_by]
  if primary:
    out["forest"] = plots.forest(
        primary,
        os.path.join(exp_dir, "forest.png"),
        f"{exp.name}: paired differences of {primary[0]['metric']} (late-window mean) per seed,"
        + (
            " with the interval at the sequential design's level"
            if any("design_look" in c for c in primary)
            else " with the Holm-adjusted 95% interval"
        ),
    )
  if any(a["seeds"] for a in summary["arms"]):
    out.update(family.sweep_figures(exp_dir, summary, curves, arm_cfgs))
  return out


# --- report.md, one function per section: (summary, exp, arm_cfgs, figures) -> lines ---------


def _header(summary, exp, arm_cfgs, figures):
  del figures
  n_seeds = max([len(seeds) for *_, seeds in arm_cfgs] + [0])
  return [
      f"# {exp.name}",
      "",
      exp.description,
      "",
      (
          f"Reproduce: `{summary['command']}` ({len(arm_cfgs)} arm(s) x {n_seeds} seed(s), "
          f"{arm_cfgs[0][2].train.steps} steps each). Generated {summary['generated']}."
      ),
      "",
  ]


def _overrides(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  if not any(a["overrides"] for a in summary["arms"]):
    return []
  return (
      ["| arm | overrides |", "|---|---|"]
      + [
          f"| {a['name']} | {', '.join(f'`{k}={v}`' for k, v in a['overrides'].items())} |"
          for a in summary["arms"]
      ]
      + [""]
  )


def _metrics(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  return ["## Final metrics (mean ± std over seeds)", "", table_text(summary), ""]


def budget_note(exp, arm_cfgs) -> str:
  """Which budget the verdicts compare the arms at."""
  unit = arm_cfgs[0][2].train.budget_unit
  if unit == "g_steps":
    return "The arms are compared at equal G steps (train.budget_unit=g_steps), not equal compute."
  steps = ", ".join(f"{arm} {cfg.train.steps:,}" for arm, _, cfg, _ in arm_cfgs)
  return (
      f"The arms are compared at equal {unit} (train.budget_unit): each trained the baseline"
      f" {exp.baseline_arm()}'s budget, in steps {steps}, its evaluations at the same fractions"
      " of it (cost_* in summary.json: each run's cumulative counts and FLOPs)."
  )


def _verdicts(summary, exp, arm_cfgs, figures):
  if not summary["comparisons"]:
    return []
  lines = [
      "## Verdicts: each arm against the baseline, paired by seed",
      "",
      (
          "Each run's headline value of a metric is the mean of its evaluations in the last quarter"
          f" of training (at most {summary['headline_k']}; late GAN metrics oscillate, early ones"
          " are untrained). Seed k of every arm shares its initial parameters, data order and"
          " evaluation latents, so arms are compared through per-seed differences (arm -"
          " baseline): their mean, the exact sign-flip p-value (which assumes the differences are"
          " symmetric about their mean) and its Holm correction over the arms (each metric its own"
          " family), and the sign-flip test inverted at the level Holm tested that comparison at,"
          " so a verdict is given exactly when its interval excludes 0 (unbounded until there are"
          " enough seeds). Arms that diverged on different numbers of seeds get no verdict. An"
          " image verdict says it holds under every extractor only when each extractor's own test"
          " agrees. A verdict is about this protocol, this dataset and this metric, nothing wider."
          " "
          + budget_note(exp, arm_cfgs)
      ),
      "",
      verdict_text(summary),
      "",
  ]
  if figures.get("forest"):
    lines += [f"![paired differences]({os.path.basename(figures['forest'])})", ""]
  return lines


def _design(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  seq = summary.get("sequential")
  if not seq:
    return []
  lines = [
      "## Seeds on demand: the sequential design",
      "",
      (
          f"Fixed before the first look (`--until-decided`): {seq['described']}. The design's"
          f" levels replace the fixed-n ones for the primary metric ({seq['metric']}); the other"
          " metrics' verdicts above are fixed-n at the current seeds."
      ),
      "",
  ]
  look = seq["look"]
  lines.append(
      f"This report is at look {look + 1} of {len(seq['design']['looks'])}."
      if look is not None
      else ("The first look's runs are not all finished or diverged yet: no decision so far.")
  )
  if seq["stop"]:
    lines.append(f"The sweep stopped: {seq['stop']}.")
  lines += [
      "",
      (
          "A look decides with every run of its seeds: a run that diverged counts as the worst"
          " value either arm reached at that look (its arm loses that seed's pair; two diverged"
          " runs tie), so divergence neither halts the design nor drops a seed. The design's"
          " p-value and interval are the sign-flip test it was calibrated for"
          " (`sequential.design_p`); equivalence also needs a bootstrap-t interval inside a margin"
          " shrunk by the sample's skewness (docs/metrics.md)."
      ),
  ]
  return lines + [""]


def _per_extractor(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  per_ex = sorted(
      {
          m
          for a in summary["arms"]
          for m in a["metrics"]
          if names.split_extractor(m)[0] == "fid" and names.split_extractor(m)[1] is not None
      },
      key=lambda m: names.split_extractor(m)[1],
  )
  if not per_ex:
    return []
  return (
      [
          "## FID under each feature extractor",
          "",
          (
              "The same samples scored by each extractor of the ensemble (mean ± std over seeds); a"
              " ranking that changes between columns is one the extractor decides, not the models."
          ),
          "",
          "| arm | "
          + " | ".join(f"FID e{names.split_extractor(m)[1]}" for m in per_ex)
          + " | mean |",
          "|---|" + "---|" * (len(per_ex) + 1),
      ]
      + [
          f"| {a['name']} | "
          + " | ".join(_mean_std(a["metrics"].get(m)) for m in per_ex)
          + f" | {_mean_std(a['metrics'].get('fid'))} |"
          for a in summary["arms"]
      ]
      + [""]
  )


def _noise(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  noise = summary.get("eval_noise")
  if not noise:
    return []
  spread = {
      m: float(np.mean([a["metrics"][m]["std"] for a in summary["arms"] if m in a["metrics"]]))
      for m in noise["std"]
      if any(m in a["metrics"] for a in summary["arms"])
  }
  return (
      [
          "## Which noise dominates",
          "",
          (
              f"The evaluation's own sampling noise: the final checkpoint of `{noise['run']}`"
              f" scored with {noise['sampling_seeds']} different sampling seeds (std over them),"
              " beside the seed-to-seed std of the final values (mean over arms):"
          ),
          "",
          "| metric | evaluation std (one checkpoint) | seed-to-seed std |",
          "|---|---|---|",
      ]
      + [f"| {m} | {noise['std'][m]:.4g} | {spread[m]:.4g} |" for m in spread]
      + [""]
  )


def _notes(summary, exp, arm_cfgs, figures):
  del exp, figures
  family = families.get(summary["family"])
  template = family.notes([c for _, _, c, _ in arm_cfgs], summary)
  return (
      [notes_lib.render(template, notes_lib.context(family, arm_cfgs[0][2], summary)), ""]
      if template
      else []
  )


def _diverged(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  diverged = [(a["name"], a["diverged"]) for a in summary["arms"] if a["diverged"]]
  if not diverged:
    return []
  return [
      "**Diverged runs** (NaN/Inf; excluded from the means, last good checkpoint kept): "
      + "; ".join(f"{n}: seeds {s}" for n, s in diverged),
      "",
  ]


def _recovered(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  recovered = [(a["name"], a["recovered"]) for a in summary["arms"] if a["recovered"]]
  if not recovered:
    return []
  return [
      "**Recovered values** (the run's result.json was unreadable): "
      + "; ".join(
          f"{n}: " + ", ".join(f"seed {s} from {src}" for s, src in r.items()) for n, r in recovered
      ),
      "",
  ]


def _apart(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  apart = [(a["name"], a["other_configs"]) for a in summary["arms"] if a["other_configs"]]
  if not apart:
    return []
  return (
      [
          "## Runs under other settings",
          "",
          (
              "These runs sit in this experiment's directories but were trained with settings other"
              " than the ones this report is about, so they are in no table and no verdict:"
          ),
          "",
      ]
      + [f"- {n}/seed{s}: {'; '.join(d)}" for n, by_seed in apart for s, d in by_seed.items()]
      + [""]
  )


def _unfinished(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  missing = [
      (a["name"], [s for s, st in a["status"].items() if st not in ("finished", "diverged")])
      for a in summary["arms"]
  ]
  missing = [(n, s) for n, s in missing if s]
  if not missing:
    return []
  return [
      "**Unfinished runs** (rerun with --resume): "
      + "; ".join(f"{n}: seeds {', '.join(s)}" for n, s in missing),
      "",
  ]


def _problems(summary, exp, arm_cfgs, figures):
  del exp, arm_cfgs, figures
  if not summary["problems"]:
    return []
  return (
      ["**Problems reading the runs** (nothing was dropped; see each note):", ""]
      + [f"- {p}" for p in summary["problems"]]
      + [""]
  )


FIGURE_TITLES = {
    "fid": "Evaluation over training",
    "budget": "FID against training compute (FLOPs), per arm",
    "curves": "Training curves",
    "final": "Final metrics per arm",
    "densities": "Real vs generated (seed protocol figure)",
    "samples": "Final samples per arm",
}


def _figures(summary, exp, arm_cfgs, figures):
  del summary, exp, arm_cfgs
  # the forest plot is shown with the verdicts
  shown = {k: v for k, v in figures.items() if k != "forest"}
  if not shown:
    return []
  lines = ["## Figures", ""]
  for name, path in shown.items():
    lines += [
        f"### {FIGURE_TITLES.get(name, name)}",
        "",
        f"![{name}]({os.path.basename(path)})",
        "",
    ]
  return lines


def _footer(summary, exp, arm_cfgs, figures):
  del summary, exp, arm_cfgs, figures
  return [
      (
          "Per-run files:"
          " `<arm>/seed<k>/{config.json,metrics.jsonl,result.json,checkpoints/,samples/}`."
      ),
      "",
  ]


SECTIONS = (
    _header,
    _overrides,
    _metrics,
    _verdicts,
    _design,
    _per_extractor,
    _noise,
    _notes,
    _diverged,
    _recovered,
    _apart,
    _unfinished,
    _problems,
    _figures,
    _footer,
)


def build(exp_dir, exp, arm_cfgs, command=None, figures=True, built_from=None) -> dict:
  """Writes summary.json, report.md and the comparison PNGs into exp_dir (every arm of `exp` with
  runs on disk, not only `arm_cfgs`). summary["problems"] lists unreadable per-run files;
  `built_from` (the runner's status@step of each run) tells a sweep's workers it is current."""
  summary, curves, arm_cfgs = summarize(exp_dir, exp, arm_cfgs, command)
  if built_from is not None:
    summary["built_from"] = built_from
  drawn = draw(exp_dir, exp, summary, curves, arm_cfgs) if figures else {}
  summary_path = rundir.ExpPaths(exp_dir).summary
  write_atomic(summary_path, json.dumps(summary, indent=1))
  lines = [line for section in SECTIONS for line in section(summary, exp, arm_cfgs, drawn)]
  report_path = rundir.ExpPaths(exp_dir).report
  write_atomic(report_path, "\n".join(lines))
  return {"summary": summary_path, "report": report_path, "summary_obj": summary, **drawn}


def _rebuild(exp_dir) -> int:

  if not os.path.isdir(exp_dir):
    raise RunError(
        f"{exp_dir} does not exist. Give an experiment directory, e.g. runs/gaussian1d_loss "
        "(what `python -m experiments.run --exp=NAME --out runs` wrote)."
    )
  name = os.path.basename(os.path.abspath(exp_dir))
  if name not in registry.names():
    if os.path.exists(rundir.RunPaths(exp_dir).config):
      hint = (
          " It is a single run's directory; its experiment directory is"
          f" {os.path.dirname(os.path.dirname(os.path.abspath(exp_dir)))}."
      )
    else:
      hint = " Its name must be the experiment's name (see `python -m experiments.run --list`)."
    raise RunError(f"{exp_dir} is not an experiment directory.{hint}")
  exp = registry.get(name)
  with rundir.lock(exp_dir), rundir.report_lock(exp_dir):
    arm_cfgs = arms_on_disk(exp_dir, exp)
    if not arm_cfgs:
      raise RunError(
          f"{exp_dir} holds no runs of {name} with a readable config.json; nothing to report "
          "(the existing files were left as they are)."
      )
    # no command: the settings of the previous report (or of most runs)
    paths = build(exp_dir, exp, [])
  problems = paths["summary_obj"]["problems"]
  for p in problems:
    print(f"WARNING: {p}", file=sys.stderr)
  print(
      f"wrote {paths['report']}"
      + (f" ({len(problems)} problem(s) reading the runs, listed in it)" if problems else "")
  )
  return 0  # the report is written; what could not be read is listed in it and above


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv in (["-h"], ["--help"]):
    print("usage: python -m experiments.report runs/<exp>\n" + __doc__)
    return 0
  if len(argv) == 2 and argv[0] == "--tables":
    return cli.guarded(lambda: _tables(argv[1]))
  if len(argv) != 1 or argv[0].startswith("-"):
    print(
        "usage: python -m experiments.report runs/<exp>\nRebuilds summary.json, report.md and the "
        "figures of an experiment directory from what is on disk.\n"
        "       python -m experiments.report --tables FILE\nPrints the tables of a summary.json.",
        file=sys.stderr,
    )
    return 2

  return cli.guarded(lambda: _rebuild(argv[0].rstrip("/") or "/"))


if __name__ == "__main__":
  sys.exit(main())
