"""One validating reader for the JSON files the project writes and later reads back.

Every such file (a run's config.json and result.json, a sweep's summary.json, sweep.json,
sequential.json and eval_noise.json) is read through `read(path, kind)`, which returns its value
or None when the file does not exist, and raises DamagedFile, naming the file and what is wrong
with it, for anything else: a directory where the file should be, a symbolic link leading out of
the experiment directory, an empty file, text that is not JSON, and a value that breaks the kind's
schema (a missing key, a wrong type, a non-numeric string, NaN where a count or a time belongs).

DamagedFile is a RunError: a command that meets one exits 2 with that paragraph and changes
nothing. The callers that can rebuild a file from others (summary.json and eval_noise.json are
derived from the runs) catch it and say so in the report's problems instead. docs/reliability.md
has the table of what each file's damage leads to.
"""

import json
import math
import os

from gen_models.errors import RunError


class DamagedFile(RunError):
  """A file the project wrote, found damaged; its message names the file and what to do."""

  def __init__(self, path: str, reason: str, advice: str):
    super().__init__(
        f"{path} is damaged ({reason}). It was left as it is, and nothing else was changed."
        f" {advice}"
    )
    self.path, self.reason = path, reason


class _Bad(ValueError):
  pass


# --- value checkers: each returns nothing or raises _Bad("where: what") -------------------------


def _is_num(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v, where):
  if not isinstance(v, int) or isinstance(v, bool) or v < 0:
    raise _Bad(f"{where} is {_show(v)}, not a count (an integer >= 0)")


def _str(v, where):
  if not isinstance(v, str):
    raise _Bad(f"{where} is {_show(v)}, not a string")


def _finite(v, where, none_ok=True):
  if v is None and none_ok:
    return
  if not _is_num(v) or not math.isfinite(v):
    raise _Bad(f"{where} is {_show(v)}, not a finite number")


def _number_or_none(v, where):
  """A metric's value: a number (NaN allowed: a metric may be undefined) or null."""
  if v is not None and not _is_num(v):
    raise _Bad(f"{where} is {_show(v)}, not a number")


def _dict(v, where):
  if not isinstance(v, dict):
    raise _Bad(f"{where} is {_show(v)}, not a JSON object")


def _list(v, where):
  if not isinstance(v, list):
    raise _Bad(f"{where} is {_show(v)}, not a list")


def _show(v) -> str:
  if isinstance(v, (dict, list)):
    return f"a JSON {'object' if isinstance(v, dict) else 'list'}"
  return repr(v)[:40]


def _need(d, key, where):
  if key not in d:
    raise _Bad(f"{where}{key} is missing")
  return d[key]


# --- the schemas, one per kind of file ----------------------------------------------------------

RUN_STATUSES = ("finished", "diverged", "running", "interrupted")
TIMINGS = ("wall_s", "train_s", "compile_s", "steps_per_s")


def _config(v):
  _dict(v, "the file")
  _int(_need(v, "seed", ""), "seed")
  for section in ("data", "model", "train", "loss", "optim", "eval", "ckpt"):
    if section in v:
      _dict(v[section], section)


def _result(v):
  _dict(v, "the file")
  status = _need(v, "status", "")
  _str(status, "status")
  if status not in RUN_STATUSES:
    raise _Bad(f"status is {status!r}, not one of {', '.join(RUN_STATUSES)}")
  if "step" in v or status == "finished":
    _int(_need(v, "step", ""), "step")
  if status == "finished":
    metrics = _need(v, "metrics", "")
    _dict(metrics, "metrics")
    for k, x in metrics.items():
      _number_or_none(x, f"metrics.{k}")
  for k in TIMINGS:
    _finite(v.get(k), k)
  for k in ("resumed_from", "vectorised_with"):
    if v.get(k) is not None:
      _int(v[k], k)
  if "cost" in v:
    _dict(v["cost"], "cost")
    for k, x in v["cost"].items():
      _finite(x, f"cost.{k}")
  if v.get("extractors") is not None:
    _dict(v["extractors"], "extractors")
    _str(_need(v["extractors"], "ident", "extractors."), "extractors.ident")


def _summary(v):
  _dict(v, "the file")
  arms = _need(v, "arms", "")
  _list(arms, "arms")
  for i, arm in enumerate(arms):
    _dict(arm, f"arms[{i}]")
    _str(_need(arm, "name", f"arms[{i}]."), f"arms[{i}].name")
    seeds = _need(arm, "seeds", f"arms[{i}].")
    _list(seeds, f"arms[{i}].seeds")
    for s in seeds:
      _int(s, f"arms[{i}].seeds[]")
    metrics = _need(arm, "metrics", f"arms[{i}].")
    _dict(metrics, f"arms[{i}].metrics")
    for k, m in metrics.items():
      _dict(m, f"arms[{i}].metrics.{k}")
      per_seed = _need(m, "per_seed", f"arms[{i}].metrics.{k}.")
      _list(per_seed, f"arms[{i}].metrics.{k}.per_seed")
      if len(per_seed) != len(seeds):
        raise _Bad(
            f"arms[{i}].metrics.{k}.per_seed has {len(per_seed)} values for {len(seeds)} seeds"
        )
      for x in per_seed:
        _number_or_none(x, f"arms[{i}].metrics.{k}.per_seed[]")


def _sweep(v):
  _dict(v, "the file")
  _dict(_need(v, "identity", ""), "identity")


def _sequential(v):
  _dict(v, "the file")
  design = _need(v, "design", "")
  _dict(design, "design")
  looks = _need(design, "looks", "design.")
  _list(looks, "design.looks")
  if not looks:
    raise _Bad("design.looks is empty")
  for n in looks:
    _int(n, "design.looks[]")
  _int(_need(design, "m", "design."), "design.m")
  _finite(_need(design, "alpha", "design."), "design.alpha", none_ok=False)
  for part in ("levels", "spent"):
    table = _need(design, part, "design.")
    _dict(table, f"design.{part}")
    for k, x in table.items():
      if not str(k).isdigit():
        raise _Bad(f"design.{part} has the key {k!r}, not a number of comparisons")
      for y in x if part == "levels" else [x]:
        _finite(y, f"design.{part}.{k}", none_ok=False)
    if part == "levels" and any(len(x) != len(looks) for x in table.values()):
      raise _Bad("design.levels does not give one level per look")
  if design.get("delta") is not None:
    _finite(design["delta"], "design.delta")
  if v.get("decisions") is not None:
    _dict(v["decisions"], "decisions")
    for arm, d in v["decisions"].items():
      _dict(d, f"decisions.{arm}")
      if d.get("verdict") is not None:
        _str(d["verdict"], f"decisions.{arm}.verdict")
      for k in ("look", "n"):
        if k in d:
          _int(d[k], f"decisions.{arm}.{k}")
      for k in ("level", "p"):
        if k in d:
          _finite(d[k], f"decisions.{arm}.{k}")
  if v.get("metric") is not None:
    _str(v["metric"], "metric")


def _eval_noise(v):
  _dict(v, "the file")
  _str(_need(v, "run", ""), "run")
  _int(_need(v, "step", ""), "step")
  std = _need(v, "std", "")
  _dict(std, "std")
  for k, x in std.items():
    _finite(x, f"std.{k}", none_ok=False)


SCHEMAS = {
    "config": _config,
    "result": _result,
    "summary": _summary,
    "sweep": _sweep,
    "sequential": _sequential,
    "eval_noise": _eval_noise,
}

ADVICE = {
    "config": (
        "It is the config the run was trained with: restore it, or move the run directory away and"
        " train that seed again."
    ),
    "result": (
        "It is the record of a finished run: restore it, or remove it: the report then rebuilds"
        " the run's values from its metrics.jsonl, and --resume finishes the run from its last"
        " checkpoint."
    ),
    "summary": "It is rebuilt from the runs' own files.",
    "sweep": (
        "It records the settings of the sweep trained in this directory: wait until none of its"
        " workers runs, then remove it (the next command writes it anew)."
    ),
    "sequential": (
        "It records the sequential design fixed before the first look and the decisions made at"
        " the looks, which cannot be rebuilt without voiding the design's error rate: restore it"
        " (e.g. from a copy of the sweep), or move it away and report the sweep as a fixed-seed"
        " one (--no-until-decided)."
    ),
    "eval_noise": (
        "It is left out of the report; the next run of the sweep's command (with --resume)"
        " recomputes it from the baseline's first run."
    ),
    "metrics": (
        "It is a run's log of metrics: restore it, or move the run directory away and train that"
        " seed again."
    ),
}


def check_place(path: str, kind: str, root: str = None) -> bool:
  """Whether path exists as a plain file (or a link inside `root`, default: its directory's
  parent); raises DamagedFile for a directory, another special file or a link leading out."""
  if os.path.islink(path):
    root = os.path.realpath(root or os.path.dirname(os.path.dirname(os.path.abspath(path))))
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
      raise DamagedFile(path, f"a symbolic link leading out of {root}, to {target}", ADVICE[kind])
  if not os.path.lexists(path):
    return False
  if os.path.isdir(path):
    raise DamagedFile(path, "a directory where the file should be", ADVICE[kind])
  if not os.path.isfile(path):
    if not os.path.exists(path):
      return False  # a dangling link inside the tree: as if missing
    raise DamagedFile(path, "not a regular file", ADVICE[kind])
  return True


def read(path: str, kind: str, root: str = None):
  """The validated JSON value of the file at path, or None when it does not exist."""
  if not check_place(path, kind, root):
    return None
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise DamagedFile(path, f"it cannot be read: {e.strerror}", ADVICE[kind]) from None
  if not raw.strip():
    raise DamagedFile(path, "an empty file", ADVICE[kind])
  try:
    value = json.loads(raw.decode())
  except (ValueError, UnicodeDecodeError) as e:
    raise DamagedFile(path, f"not JSON: {str(e)[:80]}", ADVICE[kind]) from None
  try:
    SCHEMAS[kind](value)
  except _Bad as e:
    raise DamagedFile(path, str(e), ADVICE[kind]) from None
  return value
