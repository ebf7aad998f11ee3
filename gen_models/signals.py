"""SIGTERM / SIGINT for the whole life of a command, not just its training loop.

The first signal sets a flag: the training loop saves a checkpoint at its next log point and
stops, and the runner still writes the sweep's summary and report before exiting. A second
signal aborts at once (os._exit): everything the project writes is either complete on disk
(checkpoints are renamed into place on commit, JSON and reports are replaced atomically) or
absent, so nothing half-written survives an abort.
"""

import contextlib
import os
import signal
import sys
import threading

ABORT_EXIT_CODE = 130
_STATE = {"signum": None, "depth": 0}


def _handle(signum, frame):
  del frame
  if _STATE["signum"] is not None:
    sys.stderr.write("\nSecond interrupt: aborting now, without saving (rerun with --resume).\n")
    sys.stderr.flush()
    os._exit(ABORT_EXIT_CODE)  # pylint: disable=protected-access
  _STATE["signum"] = signum
  sys.stderr.write(
      f"\n{signal.Signals(signum).name}: stopping at the next log point to save a checkpoint, "
      "then writing the report (send it again to abort without saving)...\n"
  )
  sys.stderr.flush()


@contextlib.contextmanager
def handling():
  """Installs the handlers for the duration (main thread only; elsewhere signals keep their
  defaults). Nested uses share one flag; the outermost exit restores the old handlers."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  old = {}
  if _STATE["depth"] == 0:
    _STATE["signum"] = None
    for sig in (signal.SIGTERM, signal.SIGINT):
      old[sig] = signal.signal(sig, _handle)
  _STATE["depth"] += 1
  try:
    yield
  finally:
    _STATE["depth"] -= 1
    if _STATE["depth"] == 0:
      for sig, handler in old.items():
        signal.signal(sig, handler)
      _STATE["signum"] = None


def requested() -> bool:
  return _STATE["signum"] is not None
