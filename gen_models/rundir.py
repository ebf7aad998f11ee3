"""Output paths: the run-directory layout, checked before anything is compiled, and one writer per
experiment directory.

The layout is spelled out here only (ExpPaths, RunPaths); every other module asks them:

  <out>/<exp>/                 summary.json, report.md, eval_noise.json, .lock, the sweep's figures
  <out>/<exp>/<arm>/seed<k>/   config.json, result.json, metrics.jsonl, checkpoints/, samples/

`ensure_writable(path, what)` creates a directory and proves it can be written, or raises a
RunError that says which path and what to do.

Locks are fcntl.flock advisory locks, which the kernel releases when their holder exits in any way
(crash and SIGKILL included), so none is ever stale:
- `join_sweep(exp_dir, identity)`: every worker of a sweep holds exp_dir/.lock shared for its life;
  the first also writes the sweep's identity (its configs) to exp_dir/sweep.json, and a process
  with another identity is refused while the sweep is live.
- `claim(exp_dir, arm, seeds)`: exclusive per-run locks in exp_dir/.claims/: a run is trained by
  the one worker that holds its claim; a dead worker's claim is free again at once.
- `report_lock(exp_dir)`: the report (summary.json, report.md, figures) is written by one process
  at a time.
- `lock(exp_dir)`: exclusive, for tools that must be alone (experiments.report refuses while a sweep
  is live).
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile

from gen_models import files
from gen_models.errors import RunError

LOCK_NAME = ".lock"


@dataclasses.dataclass(frozen=True)
class RunPaths:
  """The files of one run: <exp_dir>/<arm>/seed<k>/."""

  dir: str

  config = property(lambda self: os.path.join(self.dir, "config.json"))
  result = property(lambda self: os.path.join(self.dir, "result.json"))
  metrics = property(lambda self: os.path.join(self.dir, "metrics.jsonl"))
  checkpoints = property(lambda self: os.path.join(self.dir, "checkpoints"))
  samples = property(lambda self: os.path.join(self.dir, "samples"))

  def checkpoint(self, step: int) -> str:
    return os.path.join(self.checkpoints, str(step))

  def checkpoint_steps(self) -> list[int]:
    """The steps with a checkpoint directory (committed or not: orbax renames on commit)."""
    d = self.checkpoints
    return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []


@dataclasses.dataclass(frozen=True)
class ExpPaths:
  """The files of one experiment directory: <out>/<exp>/."""

  dir: str

  summary = property(lambda self: os.path.join(self.dir, "summary.json"))
  report = property(lambda self: os.path.join(self.dir, "report.md"))
  eval_noise = property(lambda self: os.path.join(self.dir, "eval_noise.json"))
  sequential = property(lambda self: os.path.join(self.dir, "sequential.json"))
  lock = property(lambda self: os.path.join(self.dir, LOCK_NAME))
  sweep = property(lambda self: os.path.join(self.dir, "sweep.json"))
  claims = property(lambda self: os.path.join(self.dir, ".claims"))
  report_lock = property(lambda self: os.path.join(self.dir, ".report.lock"))
  gate = property(lambda self: os.path.join(self.dir, ".gate"))

  @classmethod
  def of(cls, out: str, exp_name: str) -> "ExpPaths":
    return cls(os.path.join(out, exp_name))

  def arm(self, arm: str) -> str:
    return os.path.join(self.dir, arm)

  def run(self, arm: str, seed: int) -> RunPaths:
    return RunPaths(os.path.join(self.dir, arm, f"seed{seed}"))

  def seeds(self, arm: str) -> list[int]:
    """The seeds with a run directory of this arm."""
    d = self.arm(arm)
    if not os.path.isdir(d):
      return []
    return sorted(int(s[4:]) for s in os.listdir(d) if s.startswith("seed") and s[4:].isdigit())


TMP_PREFIX = ".tmp-"  # the project's temporaries: write_atomic's, and ensure_writable's probe


def holds_files(path: str) -> bool:
  """Whether directory `path` exists and holds anything but the project's temporaries. A worker
  creating a run makes its directory and then writes config.json through a temporary: another
  worker looking at that instant sees a run not yet started, not a damaged one."""
  return os.path.isdir(path) and any(not f.startswith(TMP_PREFIX) for f in os.listdir(path))


def write_atomic(path, data) -> None:
  """Writes `data` (str or bytes) to path via a temporary file in the same directory and a rename:
  a reader (or a kill) never sees half a file, and a failed write (a full disk) leaves none behind.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if os.path.isdir(path) and not os.path.islink(path):
    raise RunError(
        f"{path} is a directory where the project writes a file. Nothing was written there. Move"
        " the directory away (its contents are not the project's) and rerun."
    )
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=TMP_PREFIX)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def ensure_writable(path: str, what: str) -> str:
  """Creates directory `path` if needed and checks a file can be written in it."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=TMP_PREFIX + "write-test-"):
      pass
  except OSError as e:
    reason = e.strerror or type(e).__name__
    if isinstance(e, (NotADirectoryError, FileExistsError)) or e.errno in (
        errno.ENOTDIR,
        errno.EEXIST,
    ):
      reason = "a part of it is a file, not a directory"
    raise RunError(
        f"{what} {path} cannot be used: {reason}. Nothing was trained or written. Pick a "
        "directory you can write to."
    ) from None
  return path


def _busy(exp_dir, holder):
  return (
      f"{exp_dir} is being written by {holder}. One process writes an experiment directory at a "
      "time: wait for it to finish (then add --resume to continue its runs), or pick another "
      "--out directory."
  )


@contextlib.contextmanager
def lock(exp_dir: str):
  """Exclusive lock on exp_dir for the duration; raises RunError if another process holds it."""
  path = ExpPaths(exp_dir).lock
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
      raise RunError(_busy(exp_dir, holder)) from None
    os.ftruncate(fd, 0)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} (since {stamp})\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock


def _holder_line(what: str) -> bytes:
  stamp = datetime.datetime.now().isoformat(timespec="seconds")
  return f"{what} pid {os.getpid()} on {socket.gethostname()} (since {stamp})\n".encode()


def _mount_of(path: str):
  """(fstype, options) of the mount holding path, from /proc/self/mounts (None off Linux)."""
  try:
    with open("/proc/self/mounts") as f:
      mounts = [line.split() for line in f]
  except OSError:
    return None
  path = os.path.realpath(path)
  best = None
  for m in mounts:
    if len(m) >= 4 and (path == m[1] or path.startswith(m[1].rstrip("/") + "/")):
      if best is None or len(m[1]) > len(best[1]):
        best = m
  return (best[2], best[3].split(",")) if best else None


def check_flock(exp_dir: str) -> None:
  """Refuses a directory where flock cannot keep two workers apart: a filesystem that refuses it
  (Lustre mounted noflock, some FUSE mounts), one whose locks are local to each node (Lustre
  localflock, NFSv3 nolock/local_lock), or one where a second open of a locked file still gets it.
  """
  fs = _mount_of(exp_dir)
  if fs:
    fstype, options = fs
    local = (fstype == "lustre" and "localflock" in options) or (
        fstype.startswith("nfs") and ("nolock" in options or "local_lock=all" in options)
    )
    if local:
      raise RunError(
          f"{exp_dir} is on a {fstype} mount with {','.join(o for o in options if 'lock' in o)}:"
          " its locks are local to each machine, so workers on two machines could train the same"
          " run. Mount it with cluster-wide locks (Lustre: -o flock; NFS: without nolock), or use"
          " a directory on another filesystem."
      )
  path = os.path.join(exp_dir, f".flock-probe-{socket.gethostname()}-{os.getpid()}")
  a = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  b = os.open(path, os.O_RDWR)
  try:
    try:
      fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      raise RunError(
          f"{exp_dir} does not support file locks (flock: {e.strerror}); the workers of a sweep"
          " claim runs with them. Use a directory on a filesystem with flock (a local disk; NFSv4;"
          " Lustre mounted with -o flock)."
      ) from None
    try:
      fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
      held = False
    except OSError:
      held = True
    if not held:
      raise RunError(
          f"{exp_dir}: a file locked with flock can be locked again through a second open, so"
          " claims would not keep two workers apart there. Use a directory on a filesystem with"
          " working flock (a local disk; NFSv4; Lustre mounted with -o flock)."
      )
  finally:
    os.close(b)
    os.close(a)
    os.remove(path)


def _other_command(exp_dir, old, new) -> str:
  diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  shown = "; ".join(f"{k}: {old.get(k)!r} (running) vs {new.get(k)!r} (now)" for k in diff[:5])
  return (
      f"{exp_dir} is being trained by a sweep started with other settings ({shown}"
      f"{'; ...' if len(diff) > 5 else ''}). Workers join a sweep only with the same command: wait"
      " for it to finish (then --resume), use its settings, or pick another --out directory."
  )


@contextlib.contextmanager
def join_sweep(exp_dir: str, identity: dict, first_check=lambda: None):
  """Holds exp_dir/.lock shared while the sweep `identity` (flat {key: value} of its arms' configs)
  runs here. Yields True when this process joined workers already running, False when it is the
  first; for the first, `first_check()` runs before anything is written (it may raise, e.g. when
  the directory holds runs and --resume was not given). Raises RunError for another identity."""
  paths = ExpPaths(exp_dir)
  check_flock(exp_dir)
  gate = os.open(paths.gate, os.O_RDWR | os.O_CREAT, 0o644)
  fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(gate, fcntl.LOCK_EX)  # one joiner at a time decides first / joined
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        joined = False
      except OSError:
        joined = True
      if joined:
        try:
          fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held exclusively: a tool that must be alone (experiments.report)
          holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
          raise RunError(_busy(exp_dir, holder)) from None
        old = files.read(paths.sweep, "sweep", root=exp_dir)  # damaged: DamagedFile, exit 2
        old = old.get("identity") if old else None
        if old != identity:
          raise RunError(_other_command(exp_dir, old or {}, identity))
      else:
        first_check()
        write_atomic(paths.sweep, json.dumps({"identity": identity}, indent=1, sort_keys=True))
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_line("a sweep started by"), 0)
        fcntl.flock(fd, fcntl.LOCK_SH)  # others may join now (they wait at the gate meanwhile)
    finally:
      fcntl.flock(gate, fcntl.LOCK_UN)
    yield joined
  finally:
    os.close(fd)
    os.close(gate)


def _claims_damaged(path, e, should_be) -> str:
  if os.path.islink(path):
    what = "it is a symbolic link"
  elif os.path.isdir(path) and should_be.startswith("a plain"):
    what = "it is a directory"
  elif os.path.exists(path) and not os.path.isdir(path) and should_be.startswith("a directory"):
    what = "it is a file, not a directory"
  else:
    what = (e.strerror if e is not None else None) or "it cannot be opened"
  return (
      f"The sweep's claims area {path} cannot be used ({what}): it should be {should_be} that the"
      " workers lock to claim runs. Nothing in it was changed and runs finished before are kept;"
      f" the claims hold no results: once no worker of this sweep is running, move {path} aside (or"
      " remove it) and rerun the command with --resume."
  )


class Claims:
  """The runs this process holds: exclusive flocks on exp_dir/.claims/<arm>.seed<k>."""

  def __init__(self, exp_dir: str):
    self.dir = ExpPaths(exp_dir).claims
    try:
      os.makedirs(self.dir, exist_ok=True)
    except OSError as e:
      raise RunError(_claims_damaged(self.dir, e, "a directory of lock files")) from None
    if os.path.islink(self.dir) or not os.path.isdir(self.dir):
      raise RunError(_claims_damaged(self.dir, None, "a directory of lock files"))
    self.held = {}

  def take(self, runs) -> bool:
    """Claims every (arm, seed) of `runs`, or none of them (returns False)."""
    got = []
    for arm, seed in runs:
      path = os.path.join(self.dir, f"{arm}.seed{seed}")
      try:
        if os.path.islink(path):
          raise IsADirectoryError(errno.EINVAL, "a symbolic link")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
      except OSError as e:
        for g in got:
          self.release([g])
        raise RunError(_claims_damaged(path, e, "a plain lock file")) from None
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        os.close(fd)
        for g in got:
          self.release([g])
        return False
      os.ftruncate(fd, 0)
      os.pwrite(fd, _holder_line("claimed by"), 0)
      self.held[(arm, seed)] = fd
      got.append((arm, seed))
    return True

  def release(self, runs=None) -> None:
    for run in list(self.held) if runs is None else runs:
      fd = self.held.pop(tuple(run), None)
      if fd is not None:
        os.close(fd)  # drops the lock; the file stays (removing it would race a new claimer)

  def holder(self, arm, seed) -> str:
    try:
      with open(os.path.join(self.dir, f"{arm}.seed{seed}")) as f:
        return f.read().strip()
    except OSError:
      return ""


@contextlib.contextmanager
def report_lock(exp_dir: str):
  """Exclusive, waiting: one process at a time writes the sweep's report."""
  fd = os.open(ExpPaths(exp_dir).report_lock, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)
