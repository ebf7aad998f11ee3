"""Output paths: checked before anything is compiled, and one writer per experiment directory.

`ensure_writable(path, what)` creates a directory and proves it can be written, or raises a
RunError that says which path and what to do. `lock(exp_dir)` holds an exclusive advisory lock
(fcntl.flock on exp_dir/.lock) for the life of a command: a second process writing into the same
experiment directory is refused at once. The kernel releases the lock when its holder exits in
any way (crash and SIGKILL included), so a lock is never stale.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile

from gen_models.errors import RunError

LOCK_NAME = ".lock"


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
  path = os.path.join(exp_dir, LOCK_NAME)
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
  path = os.path.join(exp_dir, LOCK_NAME)
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
