"""What every entry shim (experiments/run.py, ...) does: install the allocator, then the command.

The dynamic loader reads LD_PRELOAD and GLIBC_TUNABLES only when a process starts, so
gen_models.runtime.configure re-execs the process under the allocator, and must do so before jax
(and its thread pools) is loaded: hence a shim that imports nothing heavy, and the command
imported only after it.
"""

import importlib

from gen_models import runtime


def main(command: str) -> int:
  """Runs experiments.commands.<command>.main() under the allocator (re-exec'ing once)."""
  runtime.configure(f"experiments.{command}")
  return importlib.import_module(f"experiments.commands.{command}").main()
