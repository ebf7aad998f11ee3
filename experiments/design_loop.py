"""Seeds on demand (--until-decided): the sequential design a sweep fixes before its first look,
what a pilot on disk says about it (--plan), and the loop that adds seeds until every comparison
is decided or the budget is spent. The loop takes each round's decision from the round itself
(experiments.runner.Round), never from the summary.json the round wrote."""

import json
import sys
import time

import numpy as np

from gen_models import families
from gen_models import files
from gen_models import rundir
from gen_models import sequential
from gen_models import stats
from gen_models.config import ConfigError
from gen_models.errors import RunError


def resolve_design_flags(exp, args):
  """The experiment's seeds-on-demand default filled into args: --until-decided is on when the
  experiment declares (start, batch, budget) and neither --seeds (a fixed number) nor
  --no-until-decided is given; unset --seeds / --seed-batch / --max-seeds take its values."""
  start, batch, budget = exp.seeds_on_demand or (None, 2, 20)
  if args.until_decided is None:
    args.until_decided = bool(exp.seeds_on_demand) and args.seeds is None
  if args.until_decided and args.seeds is None:
    args.seeds = start
  args.seed_batch = batch if args.seed_batch is None else args.seed_batch
  args.max_seeds = budget if args.max_seeds is None else args.max_seeds
  if args.until_decided and (args.max_seeds < 2 or args.seed_batch < 1):
    raise ConfigError("--until-decided needs --max-seeds >= 2 and --seed-batch >= 1.")
  if args.until_decided:
    check_design_size(args.seeds, args.seed_batch, args.max_seeds)
  return args


def check_design_size(start, batch, budget):
  """Refuses a design too large to calibrate in seconds (the calibration simulates thousands of
  null sweeps at every look; at --max-seeds 2000 it took minutes and 7 GB)."""

  if budget > sequential.MAX_SEEDS:
    raise ConfigError(
        f"--max-seeds {budget} is above the largest seed budget a design is built for"
        f" ({sequential.MAX_SEEDS} seeds per arm): its calibration would take minutes and gigabytes"
        f" before any training. Give --max-seeds {sequential.MAX_SEEDS} or less, or a fixed number"
        " of seeds with --seeds N --no-until-decided."
    )
  if start is not None and 0 < start < budget:
    n = len(sequential.looks_of(start, batch, budget))
    if n > sequential.MAX_LOOKS:
      raise ConfigError(
          f"--seeds {start} --seed-batch {batch} --max-seeds {budget} make {n} looks; a design"
          f" has at most {sequential.MAX_LOOKS} (each look spends error rate, and more looks"
          " leave each one a level too small to reach). Give a larger --seed-batch (e.g."
          f" {-(-(budget - start) // (sequential.MAX_LOOKS - 1))}) or a smaller --max-seeds."
      )


def check_until_decided(exp, arm_cfgs) -> None:
  """--until-decided compares arms with the baseline: it needs both among the arms it runs."""
  names = [a for a, *_ in arm_cfgs]
  if len(exp.arm_items()) < 2:
    raise ConfigError(
        f"--until-decided adds seeds until arms differ from the baseline, but {exp.name} has one"
        " arm, so there is nothing to decide. Drop --until-decided (use --seeds N), or pick an"
        " experiment with arms (see --list)."
    )
  if exp.baseline_arm() not in names or len(names) < 2:
    raise ConfigError(
        f"--until-decided compares each arm with the baseline '{exp.baseline_arm()}' of {exp.name},"
        f" but --arms {','.join(names)} leaves"
        f" {'it' if exp.baseline_arm() not in names else 'no other arm'} out. Add it to --arms, or"
        " drop --arms."
    )


def primary_metric(exp, family) -> str:
  """The metric the design decides on: the experiment's primary, else its family's ranking one."""
  return exp.primary or family.report.rank_by


def design_of(exp, arm_cfgs, args):
  """(design, family) of a seeds-on-demand command: its looks, comparisons and delta."""

  start = len(arm_cfgs[0][3])
  if start >= args.max_seeds:
    raise ConfigError(
        f"--until-decided starts at --seeds {start}, which leaves no look before --max-seeds"
        f" {args.max_seeds}: give fewer starting seeds or a larger --max-seeds."
    )
  family = families.of(arm_cfgs[0][2])
  delta = family.report.sesoi if args.delta is None else (args.delta or None)
  m = sum(a != exp.baseline_arm() for a, *_ in arm_cfgs)
  looks = sequential.looks_of(start, args.seed_batch, args.max_seeds)
  if len(looks) * m > 8 and not args.quiet:  # over a few seconds: say what the wait is
    print(
        f"calibrating the sequential design: {len(looks)} looks x {m} comparison(s),"
        f" {sequential.SIMS:,} simulated null sweeps each (seconds)...",
        file=sys.stderr,
        flush=True,
    )
  return sequential.calibrate(looks, m, delta=delta), family


def reachable_lines(design) -> list:
  """Per look: the smallest p the exact sign-flip test can give with that many seeds (every seed's
  difference of one sign) against the level Holm's first step tests at, i.e. whether a better /
  worse verdict is possible there at all."""

  lines = []
  for k, n in enumerate(design.looks):
    smallest = float(sequential.sign_flip_p_many(np.ones((1, n)))[0])
    level = design.levels[design.m][k] / design.m
    lines.append(
        f"look {k + 1} ({n} seeds per arm): smallest possible p {smallest:.2g} vs level"
        f" {level:.2g}: "
        + ("a verdict is possible" if smallest < level else "no better/worse verdict possible")
    )
  return lines


def fixed_note(exp, arm_cfgs) -> str:
  """Whether a fixed-seed sweep can reach a verdict at all."""

  m = sum(a != exp.baseline_arm() for a, *_ in arm_cfgs)
  if m == 0:
    return "no comparisons (one arm)"
  need, n = stats.min_seeds(m), len(arm_cfgs[0][3])
  return f"{m} comparison(s) need at least {need} seeds for any verdict" + (
      " (this many reach one)" if n >= need else f" (with {n}, every one reads no difference)"
  )


def plan_lines(exp, exp_dir, design, family, batch) -> list:
  """What a pilot (the sweep's runs on disk) says about the design: per comparison on the primary
  metric, the seeds needed for 80% power at delta and at the effect seen, and their cost here."""

  summary = files.read(rundir.ExpPaths(exp_dir).summary, "summary")
  if not isinstance(summary, dict):
    return []
  comps = [
      c
      for c in summary.get("comparisons") or []
      if c.get("metric") == primary_metric(exp, family) and c.get("n", 0) >= 3
  ]
  walls = [
      a["wall_s"] / len(a["seeds"])
      for a in summary.get("arms", [])
      if a.get("seeds") and a.get("wall_s")
  ]
  per_run = float(np.mean(walls)) if walls else None
  arms = len(summary.get("arms", []))
  lines = []

  def cost(need):
    secs = need * arms * per_run if need and per_run else 0
    if not secs:
      return ""
    return (
        f" ({secs / 3600:.1f} h of runs here)" if secs >= 3600 else f" ({secs / 60:.0f} min here)"
    )

  seeds = lambda need: f"{need}" if need else "over 60"
  for c in comps:
    sd = float(np.std(c["diffs"], ddof=1))
    parts = []
    for label, effect in (("delta", design.delta), ("the effect seen", None)):
      if (label == "delta" and not effect) or not sd:
        continue
      r = sequential.seeds_range(c["diffs"], design.looks[0], batch, design.m, effect)
      now = sequential.power(design, abs(r["effect"]), sd)
      spread = (
          f"sd {r['sd_low']:.3g}-{r['sd_high']:.3g}"
          if effect
          else (
              f"|effect| {r['effect_low']:.3g}-{r['effect_high']:.3g}, sd"
              f" {r['sd_low']:.3g}-{r['sd_high']:.3g}"
          )
      )
      parts.append(
          f"at {label} ({r['effect']:+.3g}, d_z {abs(r['effect']) / sd:.2f}): power {now:.2f} with"
          f" this budget; for 80%: {seeds(r['point'])} seeds per arm{cost(r['point'])} at the"
          f" pilot's values, {seeds(r['low'])} to {seeds(r['high'])}{cost(r['high'])} over what"
          f" the pilot supports (80% intervals: {spread})"
      )
    lines.append(
        f"  {c['arm']} vs {c['baseline']} ({len(c['diffs'])} pilot seeds, paired sd {sd:.3g}): "
        + "; ".join(parts)
    )
  return lines


def plan(exp, arm_cfgs, args) -> int:
  design, family = design_of(exp, arm_cfgs, args)
  exp_dir = rundir.ExpPaths.of(args.out, exp.name).dir
  print(f"{exp.name}: seeds on demand with this command: {design.describe()}.")
  lines = plan_lines(exp, exp_dir, design, family, args.seed_batch)
  if not lines:
    raise ConfigError(
        f"--plan needs a pilot: finished runs of {exp.name} in {exp_dir} with at least 3 paired"
        f" seeds on {primary_metric(exp, family)} (run the sweep with --seeds 3 first,"
        " into the same --out)."
    )
  print(
      f"From the pilot in {exp_dir} (paired differences taken as normal; power is a lower bound):"
  )
  print("\n".join(lines))
  return 0


def start(exp, arm_cfgs, args, exp_dir):
  """The group-sequential design of this --until-decided sweep, fixed before its first look and
  kept in <exp>/sequential.json; a later command with other looks on the same sweep is refused."""
  t = time.perf_counter()
  design, family = design_of(exp, arm_cfgs, args)
  m = design.m
  path = rundir.ExpPaths(exp_dir).sequential
  old = files.read(path, "sequential", root=exp_dir)  # damaged: exit 2, never overwritten
  mine = json.loads(json.dumps(design.to_dict()))
  if isinstance(old, dict) and old.get("design") not in (None, mine):
    raise RunError(
        f"{exp_dir} was started with another seeds-on-demand design ({old['design'].get('looks')}"
        f" seeds, delta {old['design'].get('delta')}); changing the looks after seeing results"
        " would void its error rate. Rerun with the --seeds, --seed-batch, --max-seeds and --delta"
        " it was started with, or pick another --out."
    )
  if not isinstance(old, dict) or old.get("design") is None:
    rundir.write_atomic(
        path,
        json.dumps(
            {"design": mine, "metric": primary_metric(exp, family), "decisions": {}},
            indent=1,
        ),
    )
  print(
      f"--until-decided: a group-sequential design for {m} comparison(s) on"
      f" {primary_metric(exp, family)}, fixed now: {design.describe()} (calibrated by"
      f" simulation of the exact sign-flip test in {time.perf_counter() - t:.1f}s).",
      flush=True,
  )
  for line in plan_lines(exp, exp_dir, design, family, args.seed_batch):
    print(f"--until-decided: the pilot on disk: {line.strip()}", flush=True)
  return design


def _hms(secs: float) -> str:
  h, rem = divmod(int(round(secs)), 3600)
  return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def until_decided(design, done, next_round, started) -> int:
  """The --until-decided loop after its first round `done` (a runner.Round): stops once the
  design's decision (the round's summary["sequential"]) says so, else runs next_round(seeds) with
  the next look's seeds per arm. Returns the exit code."""
  while True:
    if done.code != 0:
      return done.code
    seq = (done.summary or {}).get("sequential") or {}  # the design's decision, returned
    decided = [
        f"{a}: {d['verdict']} (look {d['look'] + 1}, {d['n']} seeds)"
        for a, d in (seq.get("decisions") or {}).items()
        if d.get("verdict")
    ]
    if seq.get("look") is None:
      print(
          "--until-decided: stopped: the first look's runs (the first"
          f" {design.looks[0]} seeds of every arm) are not all finished or diverged, so no"
          " decision can be made yet. See the report's unfinished runs, then rerun the same"
          " command with --resume.",
          flush=True,
      )
      return 0
    if seq.get("stop"):
      print(
          f"--until-decided: stopped at look {seq['look'] + 1} of {len(design.looks)} "
          f"({design.looks[seq['look']]} seeds per arm): {seq['stop']}. Decided: "
          + ("; ".join(decided) or "none")
          + (f". Still open: {', '.join(seq['open'])}." if seq["open"] else ".")
          + f" This command ran {_hms(time.perf_counter() - started)}.",
          flush=True,
      )
      return 0
    seeds = design.looks[seq["look"] + 1]
    more = seeds - design.looks[seq["look"]]
    print(
        f"--until-decided: look {seq['look'] + 1} of {len(design.looks)}: "
        + (f"decided {'; '.join(decided)}; " if decided else "")
        + f"open: {', '.join(seq['open'])}. Adding {more} seed(s) per arm (next look: {seeds}).",
        flush=True,
    )
    done = next_round(seeds)
