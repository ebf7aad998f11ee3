"""A sweep's report from what is on disk: summary.json (schema: docs/summary.md), report.md and
the comparison figures."""

import json
import os

from gen_models import families
from gen_models import plots
from gen_models import rundir
from gen_models.report import collect as collect_lib
from gen_models.report import markdown
from gen_models.report import verdicts


def summarize(exp_dir, exp, arm_cfgs, command=None):
  """(summary, per-arm curves, arm configs with their reported seeds) from what is on disk: every
  arm of `exp` with runs there, not only `arm_cfgs`. The summary.json schema: docs/summary.md."""
  damage = []
  old = collect_lib.read_rebuildable(rundir.ExpPaths(exp_dir).summary, "summary", damage)
  disk = [(o, c) for a, o, c, _ in collect_lib.arms_on_disk(exp_dir, exp)]
  # the command's configs; for a rebuild, those of the last command that ran the sweep
  commanded = list(arm_cfgs) or collect_lib.sweep_configs(exp_dir, exp)
  refs, base = collect_lib.reference_configs(
      exp, commanded, old.get("protocol") if not commanded else None, disk
  )
  arm_cfgs = collect_lib.arms_on_disk(exp_dir, exp, arm_cfgs, refs)
  summary, curves = collect_lib.collect(exp_dir, exp, arm_cfgs, refs, old)
  summary["problems"][:0] = damage
  summary["protocol"] = base
  arm_cfgs = [(a, o, c, arm["seeds"]) for (a, o, c, _), arm in zip(arm_cfgs, summary["arms"])]
  command = command or old.get("command")
  summary["command"] = (
      command if isinstance(command, str) else f"python -m experiments.run --exp={exp.name}"
  )
  summary["floors"] = collect_lib.floors_from_runs(summary)
  k = arm_cfgs[0][2].eval.last_k
  summary["headline_k"] = k
  summary["comparisons"] = verdicts.comparisons(summary, exp, k)
  summary["sequential"] = verdicts.apply_design(summary, exp_dir)
  noise = collect_lib.read_rebuildable(
      rundir.ExpPaths(exp_dir).eval_noise, "eval_noise", summary["problems"]
  )
  summary["eval_noise"] = noise if isinstance(noise.get("std"), dict) else None
  return summary, curves, arm_cfgs


def draw(exp_dir, exp, summary, curves, arm_cfgs) -> dict:
  """The sweep's figures: {name: path}; the forest plot of the primary metric's comparisons
  first."""
  family = families.get(summary["family"])
  out = {}
  primary = [c for c in summary["comparisons"] if c["metric"] == family.report.rank_by]
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
    out.update(family.report.sweep_figures(exp_dir, summary, curves, arm_cfgs))
  return out


def build(exp_dir, exp, arm_cfgs, command=None, figures=True, built_from=None) -> dict:
  """Writes summary.json, report.md and the comparison PNGs into exp_dir (every arm of `exp` with
  runs on disk, not only `arm_cfgs`). summary["problems"] lists unreadable per-run files;
  `built_from` (the runner's status@step of each run) tells a sweep's workers it is current."""
  summary, curves, arm_cfgs = summarize(exp_dir, exp, arm_cfgs, command)
  if built_from is not None:
    summary["built_from"] = built_from
  drawn = draw(exp_dir, exp, summary, curves, arm_cfgs) if figures else {}
  summary_path = rundir.ExpPaths(exp_dir).summary
  rundir.write_atomic(summary_path, json.dumps(summary, indent=1))
  report_path = rundir.ExpPaths(exp_dir).report
  rundir.write_atomic(report_path, markdown.render(summary, exp, arm_cfgs, drawn))
  return {"summary": summary_path, "report": report_path, "summary_obj": summary, **drawn}
