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

from experiments import budget
from experiments import cli
from experiments import design_loop
from experiments import planning
from experiments import registry
from experiments import runner
from experiments import workers
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import equivalence
from gen_models import families
from gen_models import rundir
from gen_models import runtime
from gen_models import signals
from gen_models import tracking


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
    design, _ = design_loop.design_of(exp, arm_cfgs, args)
    print(f"  seeds on demand (--until-decided): {design.describe()}")
    for line in design_loop.reachable_lines(design):
      print(f"    {line}")
    print("    (--seeds N for a fixed number of seeds instead)")
  else:
    print(
        f"  a fixed {len(arm_cfgs[0][3])} seeds per arm, one look:"
        f" {design_loop.fixed_note(exp, arm_cfgs)}"
    )
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(cfg.seed))
  print("  " + families.describe(task.init(jax.random.key(0))))
  print(json.dumps(config_lib.to_dict(cfg), indent=1))


def _distributed() -> bool:
  return os.environ.get("GEN_MODELS_DISTRIBUTED", "0") not in ("0", "")


def _run(args, argv) -> int:

  runtime.check_environment()
  # before anything touches JAX's backend (the data preflight may compute)
  runtime.init_distributed()
  runtime.check_backend()
  exp = registry.get(args.exp)
  design_loop.resolve_design_flags(exp, args)
  configs = lambda seeds: planning.build_configs(exp, args.set, seeds, args.arms, args.protocol)
  arm_cfgs = configs(args.seeds)
  if args.until_decided:
    design_loop.check_until_decided(exp, arm_cfgs)

  mode = tracking.resolve_mode(args.wandb)
  planning.preflight(arm_cfgs)
  arm_cfgs, matched = budget.match(exp, arm_cfgs)  # arms on equal compute, when asked
  budget_lines = budget.describe(arm_cfgs[0][2].train.budget_unit, matched, exp.baseline_arm())
  if args.plan:
    return design_loop.plan(exp, arm_cfgs, args)
  if args.summary:
    print_summary(exp, arm_cfgs, args, budget_lines)
    return 0
  for line in budget_lines:
    print(line, flush=True)
  exp_dir = planning.check_outputs(args.out, exp, arm_cfgs)
  # Workers started with the same command share the sweep, claiming one run at a time; the
  # processes of one multi-host job instead train every run together (only process 0 writes).
  first_check = lambda: None if args.resume else planning.plan_runs(exp, arm_cfgs, args.out, False)
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
    plan = planning.plan_runs(exp, arm_cfgs, args.out, resume)
    planning.check_run_dirs(plan)
    if not runtime.is_main_process():
      mode = "disabled"

    command = "python -m experiments.run " + " ".join(a for a in argv if a != "--resume")
    started = time.perf_counter()
    design = design_loop.start(exp, arm_cfgs, args, exp_dir) if args.until_decided else None
    claims = None if _distributed() else rundir.Claims(exp_dir)

    def round_(cfgs, plan):  # train what the plan holds, then the report: a runner.Round
      return runner.run_plan(
          exp,
          cfgs,
          plan,
          args.out,
          mode,
          quiet=args.quiet,
          command=command,
          claims=claims,
          replan=lambda: planning.plan_runs(exp, cfgs, args.out, resume),
      )

    def next_round(seeds):  # the next look: the same sweep with more seeds per arm
      cfgs = budget.match(exp, configs(seeds))[0]
      return round_(cfgs, planning.plan_runs(exp, cfgs, args.out, resume))

    done = round_(arm_cfgs, plan)
    if done.code != 0 or not args.until_decided or not runtime.is_main_process():
      return done.code
    return design_loop.until_decided(design, done, next_round, started)


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
