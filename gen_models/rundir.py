"""Output paths: the run-directory layout, checked before anything is compiled, and one writer per
experiment directory.

The layout is spelled out here only (ExpPaths, RunPaths); every other module asks them:

  <out>/<exp>/                 summary.json, report.md, eval_noise.json, .lock, the sweep's figures
  <out>/<exp>/<arm>/seed<k>/   config.json, result.json, metrics.jsonl, checkpoints/, samples/

`ensure_writable(path, what)` creates a directory and proves it can be written, or raises a
RunError that says which path and what to do. `lock(exp_dir)` holds an exclusive advisory lock
(fcntl.flock on exp_dir/.lock) for the life of a command: a second process writing into the same
experiment directory is refused at once. The kernel releases the lock when its holder exits in
any way (crash and SIGKILL included), so a lock is never stale.
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


def read_json(path, default=None):
  """The JSON value in path, or `default` when it is missing, unreadable or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    return default


def write_atomic(path, data) -> None:
  """Writes `data` (str or bytes) to path via a temporary file in the same directory and a rename:
  a reader (or a kill) never sees half a file, and a failed write (a full disk) leaves none behind.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
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
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
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


def refuse_if_locked(exp_dir: str) -> None:
  """Raises lock()'s RunError if another process holds exp_dir's lock; writes nothing."""
  path = ExpPaths(exp_dir).lock
  if not os.path.exists(path):
    return
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError:
    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
    raise RunError(_busy(exp_dir, holder)) from None
  finally:
    os.close(fd)
