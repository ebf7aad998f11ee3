"""Run an experiment (all its arms x seeds), then write its report.

  python -m experiments.run --list
  python -m experiments.run --exp=gaussian1d_label_smoothing [--set key=value ...] [--seeds N]
      [--out runs] [--resume] [--wandb online|offline|disabled] [--summary]

Each (arm, seed) trains into <out>/<exp>/<arm>/seed<k>/. An existing run directory is never
overwritten: rerun with --resume to continue it (finished runs are skipped), or pick a new --out.
"""

import argparse
import contextlib
import json
import os
import sys
import time

import jax
import numpy as np

from experiments import budget
from experiments import cli
from experiments import registry
from experiments import runner
from experiments import workers
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import equivalence
from gen_models import families
from gen_models import files
from gen_models import rundir
from gen_models import runtime
from gen_models import sequential
from gen_models import signals
from gen_models import stats
from gen_models import tracking
from gen_models.config import ConfigError
from gen_models.errors import RunError  # pylint: disable=unused-import (re-exported)
from gen_models.metrics import features


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.run",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--list", action="store_true", help="list experiments and exit")
  p.add_argument("--exp", help="experiment name (see --list)")
  p.add_argument(
      "--set",
      action="append",
      default=[],
      metavar="KEY=VALUE",
      help="override a config key, e.g. --set train.steps=500 (repeatable)",
  )
  p.add_argument(
      "--seeds",
      type=int,
      help=(
          "number of seeds per arm (default: the experiment's); alone, a fixed number, also for an"
          " experiment that runs seeds on demand by default; with --until-decided, its first look"
      ),
  )
  p.add_argument(
      "--protocol",
      help="one of the experiment's named protocols (see --summary), applied before --set",
  )
  p.add_argument("--arms", help="comma-separated subset of the experiment's arms to run")
  p.add_argument("--out", default="runs", help="output root (default: runs)")
  p.add_argument(
      "--resume",
      action="store_true",
      help="continue unfinished runs from their latest checkpoint, skip finished ones",
  )
  p.add_argument(
      "--wandb",
      choices=("online", "offline", "disabled"),
      help="wandb mode (default: online if an API key is configured, else offline)",
  )
  p.add_argument(
      "--summary",
      action="store_true",
      help="print the configs and parameter counts, then exit without training",
  )
  p.add_argument("--quiet", action="store_true", help="only print one line per finished run")
  p.add_argument(
      "--workers",
      default="1",
      help=(
          "train the sweep with N worker processes here, each pinned to its share of the cores (or"
          " one GPU each); the same command started by hand (or by SLURM) on more machines joins"
          " the same sweep. auto: one per GPU, else one per core for the conv GANs, else 1 (the"
          " default of ./launch.sh EXP; default here 1)"
      ),
  )
  p.add_argument(
      "--until-decided",
      action=argparse.BooleanOptionalAction,
      help=(
          "seeds on demand as a group-sequential design: looks at --seeds, + --seed-batch, ...,"
          " --max-seeds fixed before the first; each look tests the headline metric at its"
          " O'Brien-Fleming level (false-verdict rate <= 5%% over all looks) and stops once every"
          " comparison is better, worse or equivalent within --delta (default: on for the"
          " experiments that declare a design, e.g. the DCGAN sweeps, unless --seeds is given)"
      ),
  )
  p.add_argument(
      "--max-seeds",
      type=int,
      help="seed budget per arm for --until-decided (default: the experiment's, else 20)",
  )
  p.add_argument(
      "--seed-batch",
      type=int,
      help="seeds added per round by --until-decided (default: the experiment's, else 2)",
  )
  p.add_argument(
      "--plan",
      action="store_true",
      help=(
          "print the --until-decided design of this command and, from the runs already on disk (a"
          " pilot), the seeds it needs for 80%% power at --delta and at the effect seen, and their"
          " cost here; trains nothing"
      ),
  )
  p.add_argument(
      "--delta",
      type=float,
      help=(
          "smallest difference of interest in the headline metric for --until-decided's"
          " equivalence stop (default: the model family's, e.g. 5 FID, 0.01 W1; 0 = none)"
      ),
  )
  return p.parse_args(argv)


def list_experiments() -> str:
  lines = []
  for name in registry.names():
    exp = registry.get(name)
    arms = f" [arms: {', '.join(a for a, _ in exp.arms)}]" if exp.arms else ""
    lines.append(f"{name:28s} {exp.description}{arms}")
  return "\n".join(lines)


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
    _check_design_size(args.seeds, args.seed_batch, args.max_seeds)
  return args


def _check_design_size(start, batch, budget):
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


def build_configs(exp, sets: list[str], seeds_flag, arms_flag, protocol=None):
  """[(arm, overrides, cfg, seeds)] for every arm, validated before anything runs; `protocol`
  names one of the experiment's protocols, applied under --set."""

  pairs = [config_lib.parse_assignment(s) for s in sets]
  cli = dict(pairs)
  twice = sorted(k for k in cli if sum(key == k for key, _ in pairs) > 1)
  if twice:
    given = "; ".join(
        f"{k}: " + ", ".join(config_lib.short(v) for key, v in pairs if key == k) for k in twice
    )
    raise ConfigError(
        f"{', '.join(twice)} set more than once with --set ({given}). Give each key once."
    )
  base = exp.config
  if protocol:
    base = config_lib.apply_overrides(base, exp.protocol(protocol))
  base = config_lib.apply_overrides(base, cli)
  if seeds_flag is not None:
    base = config_lib.set_key(base, "seeds", seeds_flag)
  arm_items = exp.arm_items()
  if arms_flag is not None:
    wanted = [a.strip() for a in arms_flag.split(",") if a.strip()]
    known = [a for a, _ in arm_items]
    if not wanted:
      raise ConfigError(
          f"--arms is empty; give a comma-separated subset of {', '.join(known)}, or leave "
          "--arms out to run them all."
      )
    unknown = [a for a in wanted if a not in known]
    if unknown:
      raise ConfigError(
          f"Unknown arm(s) {', '.join(config_lib.short(a, quote=False) for a in unknown)} for"
          f" {exp.name}; its arms are {', '.join(known)}."
      )
    arm_items = [(a, o) for a, o in arm_items if a in wanted]
  out = []
  for arm, overrides in arm_items:
    clash = sorted(set(cli) & set(overrides))
    if clash:
      print(
          f"note: {', '.join(clash)} is set by arm '{arm}' of this sweep; the arm's value is used."
      )
    cfg = families.validate(config_lib.apply_overrides(base, overrides))
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    out.append((arm, dict(overrides), cfg, seeds))
  return out


def _run_dir(out, exp_name, arm, seed):
  return rundir.ExpPaths.of(out, exp_name).run(arm, seed).dir


def _steps_reached(run_dir, result) -> int:
  """The furthest step a run has on disk: its checkpoints and its result.json."""
  steps = rundir.RunPaths(run_dir).checkpoint_steps()
  if result and isinstance(result.get("step"), int) and result.get("status") == "finished":
    steps.append(result["step"])
  return max(steps, default=0)


def plan_runs(exp, arm_cfgs, out, resume):
  """Checks every run directory before anything trains. Returns [(arm, cfg, seed, run_dir, action)]
  with action in {"new", "resume", "skip"}."""
  plan = []
  for arm, _, cfg, seeds in arm_cfgs:
    for seed in seeds:
      run_cfg = config_lib.set_key(config_lib.set_key(cfg, "seed", seed), "seeds", 1)
      run_dir = _run_dir(out, exp.name, arm, seed)
      exists = os.path.isdir(run_dir) and os.listdir(run_dir)
      if not exists:
        plan.append((arm, run_cfg, seed, run_dir, "new"))
        continue
      if not resume:
        raise RunError(
            f"{run_dir} already holds a run. Nothing was changed. To continue it (and "
            "skip finished runs) add --resume; to start afresh pick another --out "
            f"directory (e.g. --out runs_{time.strftime('%Y%m%d_%H%M%S')})."
        )
      saved = files.read(rundir.RunPaths(run_dir).config, "config")  # damaged: exit 2
      if saved is None:
        raise RunError(
            f"{run_dir} exists but has no readable config.json (missing, damaged or not a JSON "
            "object), so it cannot be resumed safely. Nothing was changed. Move it away or pick "
            "another --out directory."
        )
      try:
        diff = equivalence.resume_diff(saved, config_lib.to_dict(run_cfg))
      except (ConfigError, TypeError, ValueError, AttributeError) as e:
        raise RunError(
            f"{run_dir}: its config.json cannot be read as a config ({e}). Nothing was changed. "
            "Move it away or pick another --out directory."
        ) from None
      if diff:
        raise RunError(
            f"--resume: the config of {run_dir} differs from this command's:\n  "
            + "\n  ".join(diff)
            + "\nUse the original settings to resume, or pick "
            "another --out directory for the new ones."
        )
      result = files.read(rundir.RunPaths(run_dir).result, "result")  # damaged: exit 2
      reached = _steps_reached(run_dir, result)
      if reached > run_cfg.train.steps:
        raise RunError(
            f"--resume: {run_dir} is trained to step {reached}, beyond this command's"
            f" train.steps={run_cfg.train.steps}; a run is never shortened (its checkpoints and"
            " metrics are of the longer run). Nothing was changed. Resume with train.steps >="
            f" {reached}, or pick another --out directory for the shorter protocol."
        )
      done = result is not None and (
          result.get("status") == "diverged"
          or (result.get("status") == "finished" and result.get("step") == run_cfg.train.steps)
      )
      plan.append((arm, run_cfg, seed, run_dir, "skip" if done else "resume"))
  return plan


def preflight(arm_cfgs):
  """Loads every arm's dataset and checks what needs the data (batch size vs training set, a test
  split for image metrics), before anything is compiled or written. Raises DataError/ConfigError."""

  for arm, _, cfg, _ in arm_cfgs:
    data = data_lib.load(cfg)
    n = len(data["train"]["x"])
    if cfg.train.batch_size > n:
      raise ConfigError(
          f"'train.batch_size'={cfg.train.batch_size} (arm {arm}) is larger than the "
          f"{cfg.data.name} training set ({n} examples). Lower train.batch_size."
      )
    if families.of(cfg).needs_test(cfg) and "test" not in data:
      raise data_lib.DataError(f"{cfg.data.name} has no test split, which the evaluation needs.")
    n_test = len(data["test"]["x"]) if "test" in data else 0
    if families.of(cfg).scores_images(cfg) and n_test < config_lib.MIN_EVAL_SAMPLES_IMAGES:
      raise data_lib.DataError(
          f"the {cfg.data.name} test split{f' in {cfg.data.dir}' if cfg.data.dir else ''} has"
          f" {n_test} images, but the image metrics compare at least"
          f" {config_lib.MIN_EVAL_SAMPLES_IMAGES} generated images with as many test images (FID's"
          " 128-d covariance needs more samples than dimensions). Give a data.dir with a larger"
          " test split, or eval.num_samples=0 for no sample-based metrics."
      )


def protocol_line(cfg, protocol=None) -> str:
  """The training / evaluation protocol of a config in one line."""
  steps, window = config_lib.eval_steps(cfg), config_lib.headline_steps(cfg)
  n, early = cfg.eval.num_samples, config_lib.eval_samples(cfg, steps[0])
  return (
      f"protocol{f' {protocol!r}' if protocol else ''}: {cfg.train.steps:,} steps x"
      f" {cfg.train.batch_size}; "
      + (
          f"evaluated every {cfg.eval.every:,} steps ({len(steps)} evaluations, the headline from"
          f" those at {', '.join(f'{s:,}' for s in window)})"
          if cfg.eval.every > 0
          else "evaluated once, at the end"
      )
      + (
          ""
          if not n
          else f"; {n:,} samples per headline evaluation, {early:,} before"
          if early != n
          else f"; {n:,} samples per evaluation"
      )
      + f"; checkpoints every {cfg.ckpt.every:,} steps"
  )


def print_summary(exp, arm_cfgs, args, budget_lines=()):

  print(f"{exp.name}: {exp.description}")
  for arm, overrides, cfg, seeds in arm_cfgs:
    print(f"  arm {arm}: overrides {overrides or '{}'}; seeds {seeds}")
  cfg = arm_cfgs[0][2]
  for line in budget_lines:
    print("  " + line)
  print("  " + protocol_line(cfg, args.protocol))
  for name, what, _ in exp.protocols:
    print(f"  other protocol: --protocol {name}: {what}")
  if args.until_decided:
    design, _ = _design_of(exp, arm_cfgs, args)
    print(f"  seeds on demand (--until-decided): {design.describe()}")
    for line in reachable_lines(design):
      print(f"    {line}")
    print("    (--seeds N for a fixed number of seeds instead)")
  else:
    print(f"  a fixed {len(arm_cfgs[0][3])} seeds per arm, one look: {fixed_note(exp, arm_cfgs)}")
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(cfg.seed))
  print("  " + families.describe(task.init(jax.random.key(0))))
  print(json.dumps(config_lib.to_dict(cfg), indent=1))


def needs_classifier(cfg) -> bool:

  return families.of(cfg).scores_images(cfg)


def check_outputs(out, exp, arm_cfgs) -> str:
  """Every path the command will write, checked (and created) before anything is compiled."""
  longest = max(len(os.path.abspath(os.path.join(out, exp.name, arm))) for arm, *_ in arm_cfgs)
  if longest + PATH_ROOM > os.pathconf("/", "PC_PATH_MAX"):
    raise RunError(
        f"The output directory (--out) is {len(os.path.abspath(out)):,} characters long; the files"
        " a run writes under it would pass the system's path limit"
        f" ({os.pathconf('/', 'PC_PATH_MAX')} characters, {PATH_ROOM} of them needed below the"
        " experiment directory). Nothing was trained or written. Pick a shorter --out."
    )
  exp_dir = rundir.ensure_writable(os.path.join(out, exp.name), "The output directory (--out)")
  if any(needs_classifier(cfg) for _, _, cfg, _ in arm_cfgs):

    rundir.ensure_writable(
        os.path.join(features.cache_root(), "classifier"),
        "The classifier cache (GEN_MODELS_CACHE, default ~/.cache/gen_models)",
    )
  return exp_dir


# Room under an experiment directory for the deepest file a run writes
# (<arm>/seed<k>/checkpoints/<step>.orbax-checkpoint-tmp-<n>/state/ocdbt.process_0/d/<hash>).
PATH_ROOM = 400


def check_run_dirs(plan) -> None:
  """Every run directory the plan will write exists and takes a file, before anything trains."""
  for arm, _, seed, run_dir, action in plan:
    if action != "skip" and os.path.isdir(run_dir):
      rundir.ensure_writable(run_dir, f"The run directory of {arm}/seed{seed}")
      checkpoints = rundir.RunPaths(run_dir).checkpoints
      if os.path.isdir(checkpoints):
        rundir.ensure_writable(checkpoints, f"The checkpoints of {arm}/seed{seed}")


def _distributed() -> bool:
  return os.environ.get("GEN_MODELS_DISTRIBUTED", "0") not in ("0", "")


def _check_until_decided(exp, arm_cfgs) -> None:
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


def _run(args, argv) -> int:

  runtime.check_environment()
  # before anything touches JAX's backend (the data preflight may compute)
  runtime.init_distributed()
  runtime.check_backend()
  exp = registry.get(args.exp)
  resolve_design_flags(exp, args)
  arm_cfgs = build_configs(exp, args.set, args.seeds, args.arms, args.protocol)
  if args.until_decided:
    _check_until_decided(exp, arm_cfgs)

  mode = tracking.resolve_mode(args.wandb)
  preflight(arm_cfgs)
  arm_cfgs, matched = budget.match(exp, arm_cfgs)  # arms on equal compute, when asked
  budget_lines = budget.describe(arm_cfgs[0][2].train.budget_unit, matched, exp.baseline_arm())
  if args.plan:
    return _plan(exp, arm_cfgs, args)
  if args.summary:
    print_summary(exp, arm_cfgs, args, budget_lines)
    return 0
  for line in budget_lines:
    print(line, flush=True)
  exp_dir = check_outputs(args.out, exp, arm_cfgs)
  # Workers started with the same command share the sweep, claiming one run at a time; the
  # processes of one multi-host job instead train every run together (only process 0 writes).
  first_check = lambda: None if args.resume else plan_runs(exp, arm_cfgs, args.out, False)
  joining = (
      contextlib.nullcontext(False)
      if _distributed()
      else rundir.join_sweep(exp_dir, equivalence.sweep_identity(arm_cfgs), first_check)
  )
  with joining as joined:
    if _distributed():
      first_check()
    if joined:
      print(
          f"{exp_dir}: joining the sweep other workers run there with this command; this process"
          " claims the runs nobody holds.",
          flush=True,
      )
    # After the first worker's check every run directory is this sweep's own, so resuming one
    # (a dead worker's run) is always right.
    resume = args.resume or not _distributed()
    plan = plan_runs(exp, arm_cfgs, args.out, resume)
    check_run_dirs(plan)
    if not runtime.is_main_process():
      mode = "disabled"

    command = "python -m experiments.run " + " ".join(a for a in argv if a != "--resume")
    started = time.perf_counter()
    design = _start_design(exp, arm_cfgs, args, exp_dir) if args.until_decided else None
    claims = None if _distributed() else rundir.Claims(exp_dir)
    while True:
      cfgs = arm_cfgs  # this round's
      done = runner.run_plan(
          exp,
          cfgs,
          plan,
          args.out,
          mode,
          quiet=args.quiet,
          command=command,
          claims=claims,
          replan=lambda: plan_runs(exp, cfgs, args.out, resume),
      )
      if done.code != 0 or not args.until_decided or not runtime.is_main_process():
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
      arm_cfgs = budget.match(exp, build_configs(exp, args.set, seeds, args.arms, args.protocol))[0]
      plan = plan_runs(exp, arm_cfgs, args.out, resume)


def _hms(secs: float) -> str:
  h, rem = divmod(int(round(secs)), 3600)
  return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def _design_of(exp, arm_cfgs, args):
  """(design, family) of a seeds-on-demand command: its looks, comparisons and delta."""

  start = len(arm_cfgs[0][3])
  if start >= args.max_seeds:
    raise ConfigError(
        f"--until-decided starts at --seeds {start}, which leaves no look before --max-seeds"
        f" {args.max_seeds}: give fewer starting seeds or a larger --max-seeds."
    )
  family = families.of(arm_cfgs[0][2])
  delta = family.sesoi if args.delta is None else (args.delta or None)
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
      if c.get("metric") == (exp.primary or family.rank_by) and c.get("n", 0) >= 3
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


def _plan(exp, arm_cfgs, args) -> int:
  design, family = _design_of(exp, arm_cfgs, args)
  exp_dir = rundir.ExpPaths.of(args.out, exp.name).dir
  print(f"{exp.name}: seeds on demand with this command: {design.describe()}.")
  lines = plan_lines(exp, exp_dir, design, family, args.seed_batch)
  if not lines:
    raise ConfigError(
        f"--plan needs a pilot: finished runs of {exp.name} in {exp_dir} with at least 3 paired"
        f" seeds on {(exp.primary or family.rank_by)} (run the sweep with --seeds 3 first, into the"
        " same --out)."
    )
  print(
      f"From the pilot in {exp_dir} (paired differences taken as normal; power is a lower bound):"
  )
  print("\n".join(lines))
  return 0


def _start_design(exp, arm_cfgs, args, exp_dir):
  """The group-sequential design of this --until-decided sweep, fixed before its first look and
  kept in <exp>/sequential.json; a later command with other looks on the same sweep is refused."""
  t = time.perf_counter()
  design, family = _design_of(exp, arm_cfgs, args)
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
            {"design": mine, "metric": exp.primary or family.rank_by, "decisions": {}}, indent=1
        ),
    )
  print(
      f"--until-decided: a group-sequential design for {m} comparison(s) on"
      f" {(exp.primary or family.rank_by)}, fixed now: {design.describe()} (calibrated by"
      f" simulation of the exact sign-flip test in {time.perf_counter() - t:.1f}s).",
      flush=True,
  )
  for line in plan_lines(exp, exp_dir, design, family, args.seed_batch):
    print(f"--until-decided: the pilot on disk: {line.strip()}", flush=True)
  return design


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  args = parse_args(argv)
  if args.list:
    print(list_experiments())
    return 0
  if not args.exp:
    print("error: give an experiment with --exp=NAME (see --list).", file=sys.stderr)
    return 2

  try:
    args.workers = workers.resolve(args.workers, args.exp)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.workers > 1 and not (args.summary or args.plan):
    if _distributed():
      print(
          "error: --workers starts independent workers; a GEN_MODELS_DISTRIBUTED=1 job is one run"
          " over all its processes. Use one or the other.",
          file=sys.stderr,
      )
      return 2
    try:
      return workers.launch(argv, args.workers)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2

  with signals.handling():
    return cli.guarded(
        lambda: _run(args, argv),
        unexpected_hint=(
            "Checkpoints written so far are kept (a finished run's training is checkpointed before"
            " its evaluation): fix the cause and rerun the same command with --resume."
        ),
    )
