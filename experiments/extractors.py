"""`python -m experiments.extractors`: train and ship a dataset's feature-extractor ensemble.

The command is experiments/commands/extractors.py. This entry shim installs the allocator (a
re-exec: gen_models.runtime) before jax is imported, so the command's modules import at the top.
"""

import sys

from experiments import entry

if __name__ == "__main__":
  sys.exit(entry.main("extractors"))
