"""The sequential design's error rates, simulated through its own functions, and published
summaries replayed through the current design.

  python -m experiments.design_check [--looks 11,16,21] [--max-m 4] [--sims 8000] [--json PATH]
  python -m experiments.design_check --replay docs/results/data/*.json

The first prints docs/metrics.md's tables: the false-verdict rate in every cell of the grid
(gen_models.design_sim.grid: 1-4 comparisons x normal / t3 / log-normal run noise x all-null /
one null beside real arms), a null arm beside an arm that diverges on 5% and 25% of its seeds,
and how often "equivalent within +-delta" is called at a true difference of +delta (false) and of
0 (the stop working) for normal, t3 and log-normal differences. The second re-decides each
summary's primary comparisons, look by look, under a design calibrated now for its looks.
"""

import argparse
import copy
import json
import os
import sys
import tempfile
import time

from experiments import cli
from experiments import registry
from gen_models import design_sim
from gen_models import report
from gen_models import sequential


def grid_lines(looks, max_m, sims) -> tuple:
  t = time.perf_counter()
  cells = design_sim.grid(looks, max_m, sims=sims, seed=100)
  lines = [
      (
          f"False-verdict rate over all looks {', '.join(map(str, looks))}, {sims:,} fresh sweeps"
          f" per cell (2 Monte Carlo s.e. {cells[0]['mc_error']:.4f}):"
      ),
      "",
      "| cell | " + " | ".join(design_sim.KINDS) + " |",
      "|---|" + "---|" * len(design_sim.KINDS),
  ]
  for name, _ in design_sim.grid_cells(max_m):
    rates = [c["rate"] for c in cells if c["cell"] == name]
    lines.append(f"| {name} | " + " | ".join(f"{r:.4f}" for r in rates) + " |")
  lines += ["", "Outside the grid: skewed paired differences (the arm changes the shape, not the"]
  lines += ["mean), every arm null:", ""]
  lines += ["| differences | " + " | ".join(f"{m} null" for m in range(1, max_m + 1)) + " |"]
  lines += ["|---|" + "---|" * max_m]
  for kind, label in (("skewed", "skewness 0.78"), ("very skewed", "skewness 1.75")):
    rates = [
        design_sim.simulate(
            sequential.calibrate(tuple(looks), m), [0.0] * m, f"{kind} differences", sims=sims
        )["false"]
        for m in range(1, max_m + 1)
    ]
    lines += [f"| {label} | " + " | ".join(f"{r:.4f}" for r in rates) + " |"]
  design = sequential.calibrate(tuple(looks), 2)
  lines += [
      "",
      "| a null arm beside an arm diverging on | false-verdict rate | last look reached |",
  ]
  lines += ["|---|---|---|"]
  for prob in (0.05, 0.25):
    r = design_sim.simulate(design, [0.0, -0.5], diverge={1: prob}, sims=sims, seed=11)
    lines.append(f"| {prob:.0%} of its seeds | {r['false']:.4f} | {r['looks_reached'][-1]:.3f} |")
  lines += [
      "",
      "| differences | sd | equivalent at +5 (false) | equivalent at 0 |",
      "|---|---|---|---|",
  ]
  design = sequential.calibrate(tuple(looks), 1, delta=5.0)
  eq = {}
  for kind in ("normal", "t3", "lognormal", "skewed"):
    for sd in (6, 9.6, 12, 16):
      false = design_sim.equivalence_rate(design, 5.0, sd, kind, sims=2000, seed=int(sd))
      true = design_sim.equivalence_rate(design, 5.0, sd, kind, sims=2000, seed=1, true=0.0)
      eq[f"{kind}/{sd}"] = (false, true)
      lines.append(f"| {kind} | {sd:g} | {false:.4f} | {true:.4f} |")
  lines.append(f"\n({time.perf_counter() - t:.0f} s)")
  return lines, {"looks": list(looks), "sims": sims, "cells": [
      {k: c[k] for k in ("cell", "m", "kind", "rate", "mc_error")} for c in cells
  ], "equivalence": eq}  # fmt: skip


def replay_lines(paths) -> list:

  lines = []
  for path in paths:
    summary = json.load(open(path, encoding="utf-8"))
    seq = summary.get("sequential")
    if not seq:
      lines.append(f"{path}: no sequential design")
      continue
    old = sequential.Design.from_dict(seq["design"])
    design = sequential.calibrate(old.looks, old.m, delta=old.delta)
    with tempfile.TemporaryDirectory() as tmp:
      with open(os.path.join(tmp, "sequential.json"), "w", encoding="utf-8") as f:
        json.dump({"design": design.to_dict(), "metric": seq["metric"]}, f)
      s = copy.deepcopy(summary)
      s["comparisons"] = report.comparisons(s, registry.get(s["experiment"]), s["headline_k"])
      now = report.apply_design(s, tmp)
    show = lambda ds: "; ".join(
        f"{a}: {d.get('verdict') or 'open'} (look {d['look'] + 1}, {d['n']} seeds, p {d['p']:.3g})"
        for a, d in sorted(ds.items())
    )
    lines.append(f"{path}: looks {', '.join(map(str, old.looks))}")
    lines.append(f"  published: {show(seq['decisions'])}")
    lines.append(
        f"  current design (levels {', '.join(f'{a:.2g}' for a in design.levels[design.m])}):"
    )
    lines.append(f"    {show(now['decisions'])}")
  return lines


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
  p.add_argument("--looks", default="11,16,21")
  p.add_argument("--max-m", type=int, default=4)
  p.add_argument("--sims", type=int, default=8000)
  p.add_argument("--json", help="also write the grid's rates here")
  p.add_argument("--replay", nargs="+", metavar="SUMMARY", help="summary.json files to re-decide")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.replay:
    print("\n".join(replay_lines(args.replay)))
    return 0
  lines, data = grid_lines(tuple(int(x) for x in args.looks.split(",")), args.max_m, args.sims)
  print("\n".join(lines))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
