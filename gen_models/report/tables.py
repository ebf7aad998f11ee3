"""The Markdown tables of a summary.json, rebuilt from that file alone (what the results pages
quote: `python -m experiments.report --tables FILE`)."""

from gen_models import families


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


def mean_std(m):
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
  rank_key = family.report.rank_by
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
      cell = mean_std(arm["metrics"].get(key))
      cells.append(
          f"**{cell}**" if best.get(key) == arm["name"] and len(summary["arms"]) > 1 else cell
      )
    lines.append("| " + " | ".join(cells) + " |")
  for cells in family.report.extra_rows(summary, cols):  # real data, floors
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
