"""`python -m experiments.sample`: write generated images from a saved run.

The command is experiments/commands/sample.py. This entry shim installs the allocator (a re-exec:
gen_models.runtime) before jax is imported, so the command's modules import at the top.
"""

import sys

from experiments import entry

if __name__ == "__main__":
  sys.exit(entry.main("sample"))
