"""Sweep report: summary.json, report.md and comparison PNGs, rebuilt from what is on disk.

  python -m experiments.report runs/<exp>        (rebuild a report by hand)
  python -m experiments.report --tables FILE     (print a summary.json's tables, e.g. one under
                                                  docs/results/data/: what the results pages quote)

summary.json: {"experiment", "arms": [{"name", "overrides", "seeds", "metrics": {"<name>":
{"mean", "std", "per_seed"}}, "wall_s", "status"}], ...}. std is the sample std (ddof=1) over seeds.
The report itself is the library gen_models/report/; this module is its command line.
"""

import os
import sys

from experiments import cli
from experiments import registry
from gen_models import files
from gen_models import report
from gen_models import rundir
from gen_models.errors import RunError


def _tables(path) -> int:
  summary = files.read(path, "summary", root=os.path.dirname(os.path.abspath(path))) or {}
  if not summary.get("arms"):
    raise RunError(
        f"{path} is not a summary.json (no arms in it). Give the summary.json of an experiment"
        " directory, e.g. runs/<exp>/summary.json or one under docs/results/data/."
    )
  print(report.tables_text(summary))
  return 0


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
    arm_cfgs = report.arms_on_disk(exp_dir, exp)
    if not arm_cfgs:
      raise RunError(
          f"{exp_dir} holds no runs of {name} with a readable config.json; nothing to report "
          "(the existing files were left as they are)."
      )
    # no command: the settings of the previous report (or of most runs)
    paths = report.build(exp_dir, exp, [])
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
