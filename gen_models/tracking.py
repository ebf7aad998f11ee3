"""Tracking: every scalar goes to <run>/metrics.jsonl, and to wandb unless it is disabled.

wandb never prompts: the mode defaults to offline unless the user configured an API key
(WANDB_API_KEY or `wandb login`), and an explicit `online` without a key is an error that says
what to do.
"""

import json
import math
import netrc
import os
import sys
from urllib.parse import urlparse
import uuid


from gen_models import files
from gen_models import metric_names as names
from gen_models import rundir

WANDB_MODES = ("online", "offline", "disabled")


class TrackingError(RuntimeError):
  pass


def _has_api_key() -> bool:
  if os.environ.get("WANDB_API_KEY"):
    return True
  try:
    path = os.environ.get("NETRC", os.path.expanduser("~/.netrc"))
    return os.path.exists(path) and netrc.netrc(path).authenticators("api.wandb.ai") is not None
  except (netrc.NetrcParseError, OSError):
    return False


def resolve_mode(requested: str | None) -> str:
  """--wandb flag > WANDB_MODE > online if an API key is configured > offline."""
  mode = requested or os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")
  mode = {"dryrun": "offline", "run": "online", "disable": "disabled"}.get(mode, mode)
  if mode not in WANDB_MODES:
    raise TrackingError(f"Unknown wandb mode {mode!r}: use --wandb online|offline|disabled.")
  if mode == "online" and not _has_api_key():
    raise TrackingError(
        "--wandb online needs a W&B API key, and none is configured. Run "
        "`wandb login` (or set WANDB_API_KEY), or use --wandb offline and "
        "upload later with `wandb sync <run>/wandb/offline-run-*`."
    )
  return mode


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN; keep the information readable
  return value


_NON_FINITE = ("nan", "inf", "-inf")  # how log() writes non-finite values


def _good_row(row) -> bool:
  """A metrics.jsonl row: a JSON object with an integer step >= 0 and values that are numbers
  (non-finite ones written as "nan" / "inf" / "-inf") or null."""
  if not isinstance(row, dict):
    return False
  step = row.get("step")
  if not isinstance(step, int) or isinstance(step, bool) or step < 0:
    return False
  return all(
      v is None or v in _NON_FINITE or (isinstance(v, (int, float)) and not isinstance(v, bool))
      for v in row.values()
  )


def read_jsonl(path: str, damaged: list = None, root: str = None) -> list[dict]:
  """The rows of a metrics.jsonl. A line that is not a JSON object (a torn last line from a killed
  process, a garbled one) is skipped, never a reason to drop the good rows after it; its line
  number and text go to `damaged` when a list is given."""
  rows = []
  if path == os.devnull:  # the log of a process that writes none (multi-host, not process 0)
    return rows
  if files.check_place(path, "metrics", root=root):  # a directory, a link out: DamagedFile
    with open(path, errors="replace") as f:
      for i, line in enumerate(f, 1):
        line = line.strip()
        if not line:
          continue
        try:
          row = json.loads(line)
        except json.JSONDecodeError:
          row = None
        if _good_row(row):
          rows.append(row)
        elif damaged is not None:
          damaged.append((i, line))
  return rows


class Tracker:
  """One run's logger: metrics.jsonl (always) and a wandb run (unless disabled)."""

  def __init__(
      self,
      run_dir: str,
      mode: str,
      *,
      project: str,
      group: str,
      job_type: str,
      name: str,
      config: dict,
  ):
    self.path = rundir.RunPaths(run_dir).metrics
    self._file = open(self.path, "a")
    self._wandb = None
    if mode != "disabled":
      self._wandb = _wandb_init(run_dir, mode, project, group, job_type, name, config)

  def rewind(self, step: int) -> None:
    """Drops rows logged after the checkpoint a run resumes from (0 for a fresh start), and the
    evaluation row at its step (the loop evaluates there again: checkpoints are written before
    evaluations), so a resumed run's metrics.jsonl holds each step exactly once."""
    self._file.close()
    keep = lambda r: r.get("step", 0) < step or (r.get("step") == step and not names.is_eval_row(r))
    damaged = []
    kept = [r for r in read_jsonl(self.path, damaged) if keep(r)] if step else []
    if damaged:  # kept beside the log, never silently dropped
      with open(self.path + ".damaged", "a") as f:
        f.writelines(f"{i}\t{text}\n" for i, text in damaged)
      print(
          f"WARNING: {self.path}: {len(damaged)} damaged line(s) (line"
          f" {', '.join(str(i) for i, _ in damaged[:5])}) skipped and kept in {self.path}.damaged;"
          " the good rows are kept.",
          file=sys.stderr,
          flush=True,
      )
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, self.path)
    self._file = open(self.path, "a")

  def log(self, step: int, metrics: dict) -> None:
    row = {"step": int(step), **{k: _clean(v) for k, v in metrics.items()}}
    self._file.write(json.dumps(row) + "\n")
    self._file.flush()
    self._to_wandb(lambda run: run.log(metrics, step=int(step)))

  def _to_wandb(self, fn) -> None:
    """wandb never stops a run: a failing call (a full disk under the wandb directory, a dead
    service) is reported once and the run goes on with metrics.jsonl only."""
    if self._wandb is None:
      return
    try:
      fn(self._wandb)
    except Exception as e:  # pylint: disable=broad-except
      msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
      print(
          f"WARNING: wandb failed ({msg}); this run goes on logging to {self.path} only (nothing is"
          " lost: the metrics are all there).",
          file=sys.stderr,
          flush=True,
      )
      run, self._wandb = self._wandb, None
      try:
        run.finish(exit_code=1)
      except Exception:  # pylint: disable=broad-except
        pass

  def log_image(self, step: int, key: str, path: str) -> None:
    def log(run):
      import wandb  # pylint: disable=g-import-not-at-top

      run.log({key: wandb.Image(path)}, step=int(step))

    self._to_wandb(log)

  def summary(self, values: dict) -> None:
    self._to_wandb(lambda run: run.summary.update(values))

  def finish(self, exit_code: int = 0) -> None:
    self._file.close()
    self._to_wandb(lambda run: run.finish(exit_code=exit_code))
    self._wandb = None


class NullTracker:
  """The tracker of processes other than 0 in a multi-host job: logs nothing."""

  path = os.devnull

  def rewind(self, step):
    pass

  def log(self, step, metrics):
    pass

  def log_image(self, step, key, path):
    pass

  def summary(self, values):
    pass

  def finish(self, exit_code=0):
    pass


def _wandb_host():

  url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
  return url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)


def _prepare_env(run_dir, mode):
  # wandb reads WANDB_MODE itself and rejects unknown values with a traceback, even when a mode
  # is passed to init: make it the mode we resolved. Without $HOME (and $XDG_CACHE_HOME) its core
  # prints a dozen log lines to the console: give it a cache directory inside the run.
  os.environ["WANDB_MODE"] = mode
  if not os.environ.get("HOME") and not os.environ.get("XDG_CACHE_HOME"):
    os.environ["XDG_CACHE_HOME"] = os.path.join(os.path.abspath(run_dir), "wandb", "cache")


def _wandb_init(run_dir, mode, project, group, job_type, name, config):
  """A wandb run, or None. Never fails the training: an online run whose server cannot be reached
  (checked in seconds, not wandb's minute of retries) or whose init fails is logged offline, and
  if offline fails too the run goes on with metrics.jsonl only. Each fallback prints a warning."""
  id_path = os.path.join(run_dir, "wandb_id.txt")
  try:
    if os.path.exists(id_path):
      with open(id_path) as f:
        run_id = f.read().strip()
    else:
      run_id = uuid.uuid4().hex[:12]
      with open(id_path, "w") as f:
        f.write(run_id)
  except OSError as e:
    print(
        f"WARNING: cannot write {id_path} ({e.strerror or e}); logging this run to metrics.jsonl"
        " only (wandb disabled for it).",
        file=sys.stderr,
        flush=True,
    )
    return None
  modes = ["online", "offline"] if mode == "online" else [mode]
  if mode == "online":
    from gen_models.data import host_reachable  # pylint: disable=g-import-not-at-top

    host, port = _wandb_host()
    if not host_reachable(host, port):
      print(
          f"WARNING: the W&B server {host}:{port} is unreachable; logging this run offline "
          f"(upload later with `wandb sync {run_dir}/wandb/offline-run-*`).",
          file=sys.stderr,
          flush=True,
      )
      modes = ["offline"]
  for i, m in enumerate(modes):
    try:
      _prepare_env(run_dir, m)
      import wandb  # pylint: disable=g-import-not-at-top

      settings = wandb.Settings(silent=True, console="off", init_timeout=60)
      return wandb.init(
          project=project,
          group=group,
          job_type=job_type,
          name=name,
          config=config,
          dir=run_dir,
          mode=m,
          id=run_id if i == 0 else f"{run_id}-{m}",
          resume="allow",
          settings=settings,
          reinit="create_new",
      )
    except Exception as e:  # pylint: disable=broad-except
      msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
      nxt = "offline" if i + 1 < len(modes) else "metrics.jsonl only (wandb disabled for this run)"
      print(
          f"WARNING: wandb {m} init failed ({msg}); logging this run to {nxt}.",
          file=sys.stderr,
          flush=True,
      )
  return None


def log_comparisons(exp_dir, mode, *, project, group, summary) -> None:
  """The sweep's verdict table as one wandb run per sweep (job type "comparisons"), so the
  dashboard shows the same verdicts as report.md. Never fails the command."""
  comps = summary.get("comparisons") or []
  if mode == "disabled" or not comps:
    return
  run = _wandb_init(
      exp_dir,
      mode,
      project,
      group,
      "comparisons",
      f"{group}-verdicts",
      {"experiment": group, "headline_k": summary.get("headline_k")},
  )
  if run is None:
    return
  try:
    import wandb  # pylint: disable=g-import-not-at-top

    cols = [
        "arm",
        "baseline",
        "metric",
        "n",
        "mean_diff",
        "ci_low",
        "ci_high",
        "p",
        "p_holm",
        "verdict",
    ]
    table = wandb.Table(columns=cols, data=[[c.get(k) for k in cols] for c in comps])
    run.log({"comparisons": table})
    run.summary.update({f"verdict/{c['arm']}/{c['metric']}": c["verdict"] for c in comps})
  except Exception as e:  # pylint: disable=broad-except
    print(
        f"WARNING: could not log the comparison table to wandb ({e}).", file=sys.stderr, flush=True
    )
  finally:
    try:
      run.finish()
    except Exception as e:  # pylint: disable=broad-except
      print(
          f"WARNING: wandb could not finish the comparisons run ({e}).", file=sys.stderr, flush=True
      )
