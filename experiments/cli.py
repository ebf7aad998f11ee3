"""What every command-line tool shares: its errors become one paragraph and an exit code.

Exit 2: bad input or an environment problem the user can fix (a full disk, a read-only path, a
missing backend), with a message that says what to do. Exit 1: a genuine internal error, with
its traceback. Nothing a tool wrote before the error is removed.
"""

import errno
import os
import sys
import traceback

from gen_models import checkpoint
from gen_models import data as data_lib
from gen_models import rundir
from gen_models import runtime
from gen_models import tracking
from gen_models.config import ConfigError
from gen_models.errors import RunError
from gen_models.metrics.features import ExtractorError

# errno values that mean "this path cannot be written here", each with what to do about it.
_PATH_ERRORS = {
    errno.ENOSPC: "there is no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted (a read-only or immutable path?)",
    errno.ENAMETOOLONG: "the path is too long",
}


def user_errors() -> tuple:
  """The exception types whose message is written for the user (imported lazily: jax-free)."""

  return (
      ConfigError,
      RunError,
      data_lib.DataError,
      tracking.TrackingError,
      ExtractorError,
      checkpoint.CheckpointEnvironmentError,
  )


def path_error(e: BaseException):
  """(errno, path) of an OSError that says a path cannot be written, found anywhere in e's chain
  (orbax and tensorstore wrap the OSError in their own exceptions), or None."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _PATH_ERRORS:
      return e.errno, e.filename
    if "No space left on device" in str(e):
      return errno.ENOSPC, None
    e = e.__cause__ or e.__context__
  return None


def path_message(code: int, path) -> str:
  where = f" while writing {path}" if path else ""
  return (
      f"{_PATH_ERRORS[code]}{where}. Everything written before it is kept (finished runs,"
      " checkpoints, metrics.jsonl; a checkpoint or report is written atomically, so none is"
      " half-written). "
      + (
          "Free some space (or give --out a directory on another disk) and rerun the same command"
          " with --resume."
          if code in (errno.ENOSPC, errno.EDQUOT)
          else (
              "Make the path writable, or give a path you can write to, and rerun (add --resume to"
              " continue runs)."
          )
      )
  )


def checked_backend(fn):
  """fn, after the environment and the JAX backend are checked (gen_models.runtime)."""

  def wrapped():

    runtime.check_environment()
    runtime.check_backend()
    return fn()

  return wrapped


def guarded(fn, *, unexpected_hint: str = "") -> int:
  """fn()'s exit code; a user error or an unwritable path prints one paragraph and returns 2, any
  other exception its traceback and returns 1."""

  try:
    return fn()
  except (ConfigError, RunError) as e:  # before user_errors(), which imports jax
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, user_errors()):
      print(f"error: {e}", file=sys.stderr)
      return 2
    found = path_error(e)
    if found:
      print(f"error: {path_message(*found)}", file=sys.stderr)
      return 2
    traceback.print_exc()
    print(
        "error: the command stopped on the unexpected error above."
        + (f" {unexpected_hint}" if unexpected_hint else ""),
        file=sys.stderr,
    )
    return 1


def check_writable_file(path: str, what: str) -> None:
  """Raises RunError unless a file can be created at `path` (its directory is created)."""

  rundir.ensure_writable(os.path.dirname(os.path.abspath(path)) or ".", what)
