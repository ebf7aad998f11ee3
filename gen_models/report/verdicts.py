"""The verdicts: each arm against the baseline, paired by seed (fixed-n, Holm), and with seeds on
demand the sequential design's decisions replayed look by look."""

import copy
import json
from typing import Optional

import numpy as np
from scipy import stats as sp_stats

from gen_models import families
from gen_models import files
from gen_models import metric_names as names
from gen_models import rundir
from gen_models import sequential
from gen_models import stats


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
  metrics = families.get(summary["family"]).report.verdict_metrics
  values = {
      a["name"]: {m: dict(zip(a["seeds"], a["metrics"][m]["per_seed"])) for m in a["metrics"]}
      for a in summary["arms"]
  }
  baseline = exp.baseline_arm()
  if baseline not in values or len(values) < 2:
    return []
  compared = {names.headline(m, k): lower for m, lower in metrics.items()}
  # One primary metric carries the verdict; the others share one Holm family (arms x metrics).
  primary = names.headline(exp.primary or families.get(summary["family"]).report.rank_by, k)
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


def _kept(seq) -> dict:
  """The decisions sequential.json keeps: once made, a decision stands."""
  decisions = seq.get("decisions") or {}
  return {a: d for a, d in decisions.items() if isinstance(d, dict) and d.get("verdict")}


def design_verdicts(summary, seq) -> tuple:
  """The design's verdicts as a pure function of (summary, sequential.json's content `seq`): with
  seeds on demand, the primary metric's verdicts are gen_models.sequential.decide's at each look
  the runs complete, a diverged run counted as its arm's worst outcome (so divergence never halts
  the design); a decision in `seq`, once made, is kept. Returns (the comparisons, with the
  primary metric's verdicts the design's; summary["sequential"]: the design, the look, every
  decision and whether the sweep can stop, or None without a design; the decisions to keep)."""
  comps = copy.deepcopy(summary["comparisons"])
  if not isinstance(seq.get("design"), dict):
    return comps, None, {}
  design = sequential.Design.from_dict(seq["design"])
  metric = seq.get("metric") or families.get(summary["family"]).report.rank_by  # the primary metric
  prim = [c for c in comps if c["metric"] == metric]
  kept = _kept(seq)
  values = _design_values(summary, metric)
  decisions, look = _replay(design, prim, values, kept)
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
  for c in comps:
    if c["metric"] != metric and c["verdict"].startswith(("better", "worse")):
      c["verdict"] += " (fixed-n at these seeds: descriptive)"
  open_ = [c["arm"] for c in prim if not (decisions.get(c["arm"]) or {}).get("verdict")]
  stop = None
  if prim and not open_:
    stop = "every comparison is decided"
  elif look == K - 1:
    stop = "the seed budget (the design's last look) is reached"
  return (
      comps,
      {
          "design": design.to_dict(),
          "metric": metric,
          "look": look,
          "decisions": decisions,
          "open": open_,
          "stop": stop,
          "described": design.describe(),
      },
      {a: d for a, d in decisions.items() if d["verdict"]},
  )


def apply_design(summary, exp_dir) -> Optional[dict]:
  """design_verdicts on the sweep in exp_dir: sets summary["comparisons"] to the design's, keeps
  new decisions in its sequential.json and returns summary["sequential"] (None without one)."""
  path = rundir.ExpPaths(exp_dir).sequential
  seq = files.read(path, "sequential", root=exp_dir) or {}  # damaged: exit 2, naming it
  summary["comparisons"], out, keep = design_verdicts(summary, seq)
  if out is not None and keep != _kept(seq):
    rundir.write_atomic(path, json.dumps({**seq, "decisions": keep}, indent=1))
  return out
