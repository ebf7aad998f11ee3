"""report.md, one function per section: (summary, exp, arm_cfgs, figures) -> lines."""

import os

import numpy as np

from gen_models import families
from gen_models import metric_names as names
from gen_models import notes as notes_lib
from gen_models.report import tables


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
  return ["## Final metrics (mean ± std over seeds)", "", tables.table_text(summary), ""]


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
      tables.verdict_text(summary),
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
          + " | ".join(tables.mean_std(a["metrics"].get(m)) for m in per_ex)
          + f" | {tables.mean_std(a['metrics'].get('fid'))} |"
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
  template = family.report.notes([c for _, _, c, _ in arm_cfgs], summary)
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


def render(summary, exp, arm_cfgs, figures) -> str:
  """report.md: every section in order."""
  return "\n".join(
      line for section in SECTIONS for line in section(summary, exp, arm_cfgs, figures)
  )
