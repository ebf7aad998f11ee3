"""What every entry shim (experiments/run.py, ...) does: install the allocator, then the command.

The dynamic loader reads LD_PRELOAD and GLIBC_TUNABLES only when a process starts, so
gen_models.runtime.configure re-execs the process under the allocator, and must do so before jax
(and its thread pools) is loaded: hence a shim that imports nothing heavy, and the command
imported only after it.
"""

import importlib
import sys

from gen_models import runtime
from gen_models.errors import RunError


def main(command: str) -> int:
  """Runs experiments.commands.<command>.main() under the allocator (re-exec'ing once). An
  address-space limit too small for the command's libraries is refused before they load (they
  would fail to map, with a traceback instead of the fix)."""
  runtime.configure(f"experiments.{command}")
  try:
    runtime.check_address_space()
  except RunError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return importlib.import_module(f"experiments.commands.{command}").main()
