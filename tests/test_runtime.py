"""The allocator and XLA settings the entry points apply (GEN_MODELS_ALLOCATOR,
GEN_MODELS_TUNING)."""

import json
import os
import resource
import subprocess
import sys

import pytest

from gen_models import runtime
from gen_models.errors import RunError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _probe(**env):
  base = {
      k: v
      for k, v in os.environ.items()
      if k
      not in (
          "LD_PRELOAD",
          "GLIBC_TUNABLES",
          "GEN_MODELS_REEXEC",
          "GEN_MODELS_ALLOCATOR",
          "GEN_MODELS_TUNING",
          "XLA_FLAGS",
      )
  }
  out = subprocess.run(
      [sys.executable, "-m", "tests.alloc_probe"],
      cwd=ROOT,
      env={**base, **env},
      capture_output=True,
      text=True,
      timeout=120,
      check=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_mimalloc_needs_no_system_package_and_is_really_loaded():
  assert runtime.mimalloc_path()  # shipped by the cmeel-mimalloc wheel, a dependency
  got = _probe(GEN_MODELS_ALLOCATOR="mimalloc")
  assert got["active"] == "mimalloc" and got["mimalloc_loaded"] and got["reexec"] == "1"


def test_glibc_tunables_and_none():
  got = _probe(GEN_MODELS_ALLOCATOR="glibc-tunables")
  assert got["active"] == "glibc-tunables" and runtime.GLIBC_TUNABLES in got["tunables"]
  assert not got["mimalloc_loaded"] and not got["tcmalloc_loaded"]
  got = _probe(GEN_MODELS_ALLOCATOR="none")
  assert got["active"] == "none" and not got["reexec"]


def test_auto_picks_the_first_available_and_tuning_0_turns_everything_off():
  want = next(a for a in runtime.ALLOCATOR_ORDER if runtime.allocator_env(a, {}))
  got = _probe()
  assert got["active"] == want and got[f"{want}_loaded" if want != "glibc-tunables" else "active"]
  off = _probe(GEN_MODELS_TUNING="0")
  assert (
      off["active"] == "none"
      and not off["reexec"]
      and not off["mimalloc_loaded"]
      and not off["tcmalloc_loaded"]
  )
  assert "xla_cpu_experimental_ynn_fusion_type" not in off["xla_flags"]


@pytest.mark.skipif(
    not runtime.tcmalloc_path(), reason="libtcmalloc-minimal4 is not installed here"
)
def test_tcmalloc_when_installed():
  got = _probe(GEN_MODELS_ALLOCATOR="tcmalloc")
  assert got["active"] == "tcmalloc" and got["tcmalloc_loaded"]


def test_an_unavailable_allocator_falls_back_to_none(monkeypatch):
  monkeypatch.setattr(runtime, "TCMALLOC_PATHS", ("/nonexistent/libtcmalloc.so",))
  assert runtime.choose_allocator("tcmalloc") == "none"
  assert runtime.choose_allocator("auto") in ("mimalloc", "glibc-tunables")


def test_an_address_space_limit_jax_cannot_start_under_is_refused():

  with pytest.raises(RunError, match=r"ulimit -v\) is 1.4 GiB"):
    runtime.check_address_space(int(1.4 * 2**30))
  runtime.check_address_space(resource.RLIM_INFINITY)
  runtime.check_address_space(runtime.MIN_ADDRESS_SPACE)
