"""Run as a subprocess by tests/test_runtime.py: configures the process like an entry point does
and reports the allocator it ended up with (from the environment and from the loaded libraries)."""

import json
import os

from gen_models import runtime

if __name__ == "__main__":
  runtime.configure("tests.alloc_probe")
  with open("/proc/self/maps") as f:
    maps = f.read()
  print(
      json.dumps({
          "active": runtime.active_allocator(),
          "reexec": os.environ.get("GEN_MODELS_REEXEC", ""),
          "tcmalloc_loaded": "libtcmalloc" in maps,
          "mimalloc_loaded": "libmimalloc" in maps,
          "tunables": os.environ.get("GLIBC_TUNABLES", ""),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
      })
  )
