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
import uuid

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
    raise TrackingError("--wandb online needs a W&B API key, and none is configured. Run "
                        "`wandb login` (or set WANDB_API_KEY), or use --wandb offline and "
                        "upload later with `wandb sync <run>/wandb/offline-run-*`.")
  return mode


def _clean(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN; keep the information readable
  return value


def read_jsonl(path: str) -> list[dict]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        line = line.strip()
        if line:
          try:
            rows.append(json.loads(line))
          except json.JSONDecodeError:
            break  # a torn last line from a killed process: everything before it is good
  return rows


class Tracker:
  """One run's logger: metrics.jsonl (always) and a wandb run (unless disabled)."""

  def __init__(self, run_dir: str, mode: str, *, project: str, group: str, job_type: str,
               name: str, config: dict):
    self.path = os.path.join(run_dir, "metrics.jsonl")
    self._file = open(self.path, "a")
    self._wandb = None
    if mode != "disabled":
      self._wandb = _wandb_init(run_dir, mode, project, group, job_type, name, config)

  def rewind(self, step: int) -> None:
    """Drops rows logged after the checkpoint a run resumes from (0 for a fresh start), and the
    evaluation row at its step (the loop evaluates there again: checkpoints are written before
    evaluations), so a resumed run's metrics.jsonl holds each step exactly once."""
    self._file.close()
    keep = lambda r: r.get("step", 0) < step or (r.get("step") == step and not any(k.startswith("eval/") for k in r))
    kept = [r for r in read_jsonl(self.path) if keep(r)] if step else []
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, self.path)
    self._file = open(self.path, "a")

  def log(self, step: int, metrics: dict) -> None:
    row = {"step": int(step), **{k: _clean(v) for k, v in metrics.items()}}
    self._file.write(json.dumps(row) + "\n")
    self._file.flush()
    if self._wandb is not None:
      self._wandb.log(metrics, step=int(step))

  def log_image(self, step: int, key: str, path: str) -> None:
    if self._wandb is not None:
      import wandb  # pylint: disable=g-import-not-at-top
      self._wandb.log({key: wandb.Image(path)}, step=int(step))

  def summary(self, values: dict) -> None:
    if self._wandb is not None:
      self._wandb.summary.update(values)

  def finish(self, exit_code: int = 0) -> None:
    self._file.close()
    if self._wandb is not None:
      self._wandb.finish(exit_code=exit_code)
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
  from urllib.parse import urlparse  # pylint: disable=g-import-not-at-top
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
  if os.path.exists(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
  else:
    run_id = uuid.uuid4().hex[:12]
    with open(id_path, "w") as f:
      f.write(run_id)
  modes = ["online", "offline"] if mode == "online" else [mode]
  if mode == "online":
    from gen_models.data import host_reachable  # pylint: disable=g-import-not-at-top
    host, port = _wandb_host()
    if not host_reachable(host, port):
      print(f"WARNING: the W&B server {host}:{port} is unreachable; logging this run offline "
            f"(upload later with `wandb sync {run_dir}/wandb/offline-run-*`).", file=sys.stderr, flush=True)
      modes = ["offline"]
  for i, m in enumerate(modes):
    try:
      _prepare_env(run_dir, m)
      import wandb  # pylint: disable=g-import-not-at-top
      settings = wandb.Settings(silent=True, console="off", init_timeout=60)
      return wandb.init(project=project, group=group, job_type=job_type, name=name, config=config,
                        dir=run_dir, mode=m, id=run_id if i == 0 else f"{run_id}-{m}", resume="allow",
                        settings=settings, reinit="create_new")
    except Exception as e:  # pylint: disable=broad-except
      msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
      nxt = "offline" if i + 1 < len(modes) else "metrics.jsonl only (wandb disabled for this run)"
      print(f"WARNING: wandb {m} init failed ({msg}); logging this run to {nxt}.", file=sys.stderr, flush=True)
  return None


def log_comparisons(exp_dir, mode, *, project, group, summary) -> None:
  """The sweep's verdict table as one wandb run per sweep (job type "comparisons"), so the
  dashboard shows the same verdicts as report.md. Never fails the command."""
  comps = summary.get("comparisons") or []
  if mode == "disabled" or not comps:
    return
  run = _wandb_init(exp_dir, mode, project, group, "comparisons", f"{group}-verdicts",
                    {"experiment": group, "headline_k": summary.get("headline_k")})
  if run is None:
    return
  try:
    import wandb  # pylint: disable=g-import-not-at-top
    cols = ["arm", "baseline", "metric", "n", "mean_diff", "ci_low", "ci_high", "p", "p_holm", "verdict"]
    table = wandb.Table(columns=cols, data=[[c.get(k) for k in cols] for c in comps])
    run.log({"comparisons": table})
    run.summary.update({f"verdict/{c['arm']}/{c['metric']}": c["verdict"] for c in comps})
  except Exception as e:  # pylint: disable=broad-except
    print(f"WARNING: could not log the comparison table to wandb ({e}).", file=sys.stderr, flush=True)
  finally:
    run.finish()
