"""The notes a family adds to a sweep's report: a Markdown template filled from a fixed context.

A template names only the fields of `context` (sample counts, the extractors, the floors the
family declares). `check` renders every template an experiment can produce against a stand-in
context when the experiment is defined, so a misspelt field fails at once, not after training.
"""

import string

FIELDS = ("n", "k", "extractors", "test_n", "log", "acc")  # plus the family's floor names


def fields(template: str) -> set:
  return {
      name.split(".")[0].split("[")[0]
      for _, name, _, _ in string.Formatter().parse(template)
      if name
  }


def context(family, cfg, summary) -> dict:
  """The values a template may use, from the summary (the first arm that has each) and the
  config."""
  first = lambda key: next(
      (a["metrics"][key]["mean"] for a in summary["arms"] if key in a["metrics"]), None
  )
  ex = summary.get("extractors")
  members = (
      "; ".join(
          f"`{m['name']}` sha256 {m['sha256'][:12]} (test accuracy {m['test_accuracy']:.4f},"
          f" {m['source']})"
          for m in ex["members"]
      )
      if ex
      else "none recorded"
  )
  acc = first("classifier_accuracy")
  return {
      "n": int(first("num_samples") or cfg.eval.num_samples),
      "k": cfg.eval.kl_samples,
      "extractors": members,
      "test_n": int(first("test_images") or 0),
      "log": cfg.train.log_every,
      "acc": float("nan") if acc is None else acc,
      **{f: float("nan") for f in family.report.floors},
      **(summary.get("floors") or {}),
  }


def render(template: str, ctx: dict) -> str:
  unknown = fields(template) - set(ctx)
  if unknown:
    raise KeyError(
        f"notes template fields {sorted(unknown)} are not in the notes context {sorted(ctx)}"
    )
  return template.format(**ctx)


def check(family, cfg) -> None:
  """Raises ValueError if a template the family can write for cfg names a field the context
  lacks."""
  floors = {f: 1.0 for f in family.report.floors}
  stand_in = {"arms": [], "floors": floors, "extractors": None}
  template = family.report.notes([cfg], stand_in) + family.report.notes(
      [cfg], {**stand_in, "floors": {}}
  )
  unknown = fields(template) - set(FIELDS) - set(family.report.floors)
  if unknown:
    raise ValueError(
        f"the {family.name} family's report notes name unknown field(s) {sorted(unknown)}; the "
        f"context has {', '.join(FIELDS + tuple(family.report.floors))} (gen_models/notes.py)"
    )
