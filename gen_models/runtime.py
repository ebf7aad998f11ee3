"""Process-level settings that make XLA CPU fast here, applied by the entry points before jax
is imported (GEN_MODELS_TUNING=0 turns them off; measured by `python -m experiments.bench
--allocators`):

- A caching allocator. glibc returns large freed buffers to the OS, so every step page-faults its
  temporaries in again; on these machines a minor fault costs ~2 us and a DCGAN step spent more
  time faulting than computing. The process re-executes itself once with the allocator set:
  GEN_MODELS_ALLOCATOR=auto (default) picks the first available of ALLOCATOR_ORDER (fastest
  first, as measured): mimalloc (the `cmeel-mimalloc` wheel, a dependency: needs no root and no
  system package), then tcmalloc (Debian: libtcmalloc-minimal4). Or name one: mimalloc |
  tcmalloc | glibc-tunables (glibc's malloc kept from trimming) | none.
- XLA CPU flags (only on the jaxlib versions they were measured on): convolutions through XLA's
  Eigen kernels rather than the YNNPACK/XNNPACK library fusions, which ran the seed DCGANs'
  convolutions 1.2-1.3x slower here; matmuls stay on YNNPACK, which is faster for them.
"""

from importlib import metadata
import os
import resource
import subprocess
import sys
import sysconfig

from gen_models.errors import RunError

TCMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
CPU_FLAGS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    "xla_cpu_experimental_xnn_fusion_type": "",
}
FLAGS_TESTED_ON = ("0.10.",)  # jaxlib versions that know these flags (XLA aborts on unknown flags)


ALLOCATORS = ("auto", "tcmalloc", "mimalloc", "glibc-tunables", "none")
# auto: fastest first, as measured side by side (`python -m experiments.bench --allocators ...`,
# README: Speed): mimalloc and tcmalloc within noise of each other, 1.24-1.28x plain glibc on the
# dcgan step; glibc's tunables gained nothing, so auto never picks them.
ALLOCATOR_ORDER = ("mimalloc", "tcmalloc")
# glibc: serve big buffers from the heap (mmap threshold at its 32 MiB maximum) and never give
# freed memory back to the OS (trim threshold 4 GiB), so a step's temporaries stay mapped.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def enabled() -> bool:
  return os.environ.get("GEN_MODELS_TUNING", "1") != "0"


def tcmalloc_path():
  return next((p for p in TCMALLOC_PATHS if os.path.exists(p)), None)


def mimalloc_path():
  """libmimalloc from the cmeel-mimalloc wheel in this environment (no root needed)."""

  for root in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
    for name in ("libmimalloc.so.3", "libmimalloc.so.2", "libmimalloc.so"):
      path = os.path.join(root, "cmeel.prefix", "lib", name)
      if os.path.exists(path):
        return path
  return None


def allocator_env(name: str, env=None) -> dict:
  """The environment variables that select allocator `name` (empty if it is not available)."""
  env = os.environ if env is None else env
  preload = env.get("LD_PRELOAD", "")
  if name in ("tcmalloc", "mimalloc"):
    lib = tcmalloc_path() if name == "tcmalloc" else mimalloc_path()
    return {"LD_PRELOAD": ":".join(filter(None, [lib, preload]))} if lib else {}
  if name == "glibc-tunables":
    return {
        "GLIBC_TUNABLES": ":".join(filter(None, [env.get("GLIBC_TUNABLES", ""), GLIBC_TUNABLES]))
    }
  return {}


def choose_allocator(requested: str = None) -> str:
  """The allocator this process should run with: the requested one if available, else (auto) the
  first available of ALLOCATOR_ORDER."""
  requested = requested or os.environ.get("GEN_MODELS_ALLOCATOR", "auto")
  if requested not in ALLOCATORS:
    print(
        f"WARNING: GEN_MODELS_ALLOCATOR={requested!r} is not one of {', '.join(ALLOCATORS)}; using"
        " auto.",
        file=sys.stderr,
    )
    requested = "auto"
  if requested == "none":
    return "none"
  for name in ALLOCATOR_ORDER if requested == "auto" else (requested,):
    if allocator_env(name, {}):
      return name
  return "none"


def active_allocator() -> str:
  """Which allocator the current process runs with."""
  preload = os.environ.get("LD_PRELOAD", "")
  if "tcmalloc" in preload:
    return "tcmalloc"
  if "mimalloc" in preload:
    return "mimalloc"
  if GLIBC_TUNABLES in os.environ.get("GLIBC_TUNABLES", ""):
    return "glibc-tunables"
  return "none"


def xla_flags(current: str, jaxlib_version: str) -> str:
  """XLA_FLAGS with our CPU flags added, unless the user set those flags or jaxlib is untested."""
  if not jaxlib_version.startswith(FLAGS_TESTED_ON):
    return current
  extra = [f"--{k}={v}" for k, v in CPU_FLAGS.items() if k not in current]
  return " ".join(([current] if current else []) + extra)


def _jaxlib_version() -> str:
  try:

    return metadata.version("jaxlib")
  except Exception:  # pylint: disable=broad-except
    return ""


def configure(module: str = None) -> None:
  """Call first thing in an entry point. `module` ("experiments.run", ...) enables the one-time
  re-exec that installs the allocator (the dynamic loader reads LD_PRELOAD and GLIBC_TUNABLES only
  at start); without it only XLA_FLAGS are set."""
  if not enabled():
    return
  os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""), _jaxlib_version())
  if not module or os.environ.get("GEN_MODELS_REEXEC") or "jax" in sys.modules:
    return
  name = choose_allocator()
  if name == "none" or active_allocator() == name:
    return
  env = dict(os.environ, GEN_MODELS_REEXEC="1", **allocator_env(name))
  try:
    os.execve(sys.executable, [sys.executable, "-m", module] + sys.argv[1:], env)
  except OSError:
    pass  # carry on without it


def _env_problem(text: str):

  return RunError(text + " Nothing was written.")


# The virtual address space (ulimit -v) below which JAX/XLA and TensorStore cannot start their
# thread pools: measured here, a tiny dcgan run aborted (SIGABRT, no message) at 2.5 GB and
# `experiments.sample` at 1.9 GB, both finished at 3 GB. A limit on address space is not one on
# memory: an unlimited process of this project resides in well under 1 GB.
MIN_ADDRESS_SPACE = 4 << 30


def check_address_space(limit=None) -> None:
  """Refuses an address-space limit (ulimit -v) too small for JAX to run, before it aborts the
  process from a thread it cannot start (a crash no handler can turn into a message)."""

  soft = resource.getrlimit(resource.RLIMIT_AS)[0] if limit is None else limit
  if soft != resource.RLIM_INFINITY and soft < MIN_ADDRESS_SPACE:
    raise _env_problem(
        f"The address-space limit of this process (ulimit -v) is {soft / 2**30:.1f} GiB; JAX and"
        " the checkpoint reader reserve more virtual memory than that for their threads and would"
        f" abort part-way. Raise it to at least {MIN_ADDRESS_SPACE >> 30} GiB (`ulimit -v"
        " unlimited`, or the job's memory setting) and rerun; to cap real memory use a cgroup"
        " (e.g. systemd-run -p MemoryMax=, or your scheduler's --mem) instead. Checkpoints and"
        " runs on disk were not touched."
    )


def check_environment(env=None) -> None:
  """Checks the GEN_MODELS_* variables before anything runs; raises RunError naming the variable."""
  env = os.environ if env is None else env
  check_address_space()
  dist = env.get("GEN_MODELS_DISTRIBUTED", "")
  if dist not in ("", "0", "1"):
    raise _env_problem(
        f"GEN_MODELS_DISTRIBUTED={dist[:60]!r} is not 0 or 1. Set it to 1 for a multi-host job "
        "(every process calls jax.distributed.initialize()), or unset it."
    )
  coord = env.get("GEN_MODELS_COORDINATOR", "")
  if dist == "1" and coord:
    host, _, port = coord.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise _env_problem(
          f"GEN_MODELS_COORDINATOR={coord[:80]!r} is not host:port (e.g. node1:12345)."
      )
    n, i = env.get("GEN_MODELS_NUM_PROCESSES", ""), env.get("GEN_MODELS_PROCESS_ID", "")
    if not n.isdigit() or int(n) < 1:
      raise _env_problem(
          f"GEN_MODELS_NUM_PROCESSES={n[:40]!r}: with GEN_MODELS_COORDINATOR set it must be the "
          "number of processes in the job (an integer >= 1)."
      )
    if not i.isdigit() or int(i) >= int(n):
      raise _env_problem(
          f"GEN_MODELS_PROCESS_ID={i[:40]!r}: with GEN_MODELS_COORDINATOR set it must be this "
          f"process's index, an integer from 0 to {int(n) - 1}."
      )
  if "GEN_MODELS_CACHE" in env and not env["GEN_MODELS_CACHE"].strip():
    raise _env_problem(
        "GEN_MODELS_CACHE is set but empty. Unset it (the default is ~/.cache/gen_models) or "
        "give a directory."
    )
  tuning = env.get("GEN_MODELS_TUNING", "1")
  if tuning not in ("0", "1"):
    raise _env_problem(
        f"GEN_MODELS_TUNING={tuning[:40]!r} is not 0 or 1 (0 turns off the allocator and XLA "
        "flags this project sets for speed)."
    )


def _user_xla_flags(flags: str) -> str:
  """XLA_FLAGS less the CPU flags this module adds itself."""
  return " ".join(t for t in flags.split() if t.lstrip("-").split("=", 1)[0] not in CPU_FLAGS)


def check_backend() -> str:
  """The JAX backend this process will use, checked before anything is written: a JAX_PLATFORMS
  this machine lacks, or XLA_FLAGS that XLA refuses (it aborts the process on an unknown flag),
  raise RunError instead of a traceback or an abort mid-run."""

  flags = _user_xla_flags(os.environ.get("XLA_FLAGS", ""))
  if flags:  # XLA would abort this process: try them in a child first
    probe = subprocess.run(
        [sys.executable, "-c", "import jax; jax.devices()"],
        capture_output=True,
        text=True,
        env=dict(os.environ, GEN_MODELS_REEXEC="1"),
        timeout=300,
    )
    if probe.returncode != 0:
      said = [l for l in probe.stderr.splitlines() if "flag" in l.lower() or "error" in l.lower()][
          -2:
      ]
      raise _env_problem(
          f"XLA rejects XLA_FLAGS={flags[:200]!r}: "
          + (" ".join(said)[:400] or f"exit {probe.returncode}")
          + ". Fix or unset XLA_FLAGS (see `python -c 'import jax'` with it for XLA's own words)."
      )
  import jax  # pylint: disable=g-import-not-at-top

  try:
    jax.devices()
  except Exception as e:  # pylint: disable=broad-except
    platforms = os.environ.get("JAX_PLATFORMS", "")
    msg = (str(e).splitlines() or [f"{type(e).__name__}: no backend could be started"])[0][:300]
    raise _env_problem(
        f"JAX cannot start its backend ({msg}). JAX_PLATFORMS={platforms!r} asks for a backend this"
        " machine or this install lacks: unset JAX_PLATFORMS (or set it to cpu), or install the"
        " accelerator build with `JAX_EXTRA=cuda ./launch.sh setup` (or JAX_EXTRA=tpu)."
    ) from None
  return jax.default_backend()


def init_distributed() -> None:
  """Multi-host training: joins the job's processes with jax.distributed.initialize(). Set
  GEN_MODELS_DISTRIBUTED=1 (launch.sh does it for `--distributed`). On SLURM and Cloud TPU pods
  JAX finds the coordinator itself; elsewhere set GEN_MODELS_COORDINATOR=host:port,
  GEN_MODELS_NUM_PROCESSES and GEN_MODELS_PROCESS_ID. CPU processes talk through gloo."""
  if os.environ.get("GEN_MODELS_DISTRIBUTED", "0") in ("0", ""):
    return
  import jax  # pylint: disable=g-import-not-at-top

  if os.environ.get("JAX_PLATFORMS", "") == "cpu" or not any(
      os.path.exists(p) for p in ("/dev/nvidia0", "/dev/accel0")
  ):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  if os.environ.get("GEN_MODELS_COORDINATOR"):
    kwargs = dict(
        coordinator_address=os.environ["GEN_MODELS_COORDINATOR"],
        num_processes=int(os.environ["GEN_MODELS_NUM_PROCESSES"]),
        process_id=int(os.environ["GEN_MODELS_PROCESS_ID"]),
    )
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    said = (str(e).splitlines() or [type(e).__name__])[0][:200]
    where = (
        "JAX could not find the job's coordinator by itself"
        if not kwargs
        else f"joining the job at GEN_MODELS_COORDINATOR={kwargs['coordinator_address']} failed"
    )
    raise RunError(
        f"GEN_MODELS_DISTRIBUTED=1, but {where} ({said}). It does so only inside a SLURM job (srun)"
        " or on a Cloud TPU pod; elsewhere set GEN_MODELS_COORDINATOR=host:port (process 0's"
        " address), GEN_MODELS_NUM_PROCESSES (the processes in the job) and"
        " GEN_MODELS_PROCESS_ID (this process's index) on every process, or unset"
        " GEN_MODELS_DISTRIBUTED for a single-process run. Nothing was written."
    ) from None


def is_main_process() -> bool:
  """Only process 0 of a multi-host job writes logs, figures and reports (all processes take part
  in training and in checkpoint writes)."""
  import jax  # pylint: disable=g-import-not-at-top

  return jax.process_index() == 0
