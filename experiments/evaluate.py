"""`python -m experiments.evaluate`: score a saved run, or images, with the project's metrics.

The command is experiments/commands/evaluate.py. This entry shim installs the allocator (a re-exec:
gen_models.runtime) before jax is imported, so the command's modules import at the top.
"""

import sys

from experiments import entry

if __name__ == "__main__":
  sys.exit(entry.main("evaluate"))
