"""`--workers N`: N worker processes of one sweep on this machine, each pinned to its share of the
CPU cores (or given one GPU each), with one merged progress view.

Every worker runs the same `python -m experiments.run` command (without --workers) and claims
runs on its own (gen_models.rundir.Claims), so this launcher only starts them, prefixes their
output with the worker's number, forwards SIGTERM / SIGINT, and ends when they all have.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from experiments import registry
from gen_models import models
from gen_models import rundir


def strip_workers(argv: list) -> list:
  """argv without its --workers flag (either spelling)."""
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a == "--workers":
      skip = True
    elif not a.startswith("--workers="):
      out.append(a)
  return out


def gpus() -> list:
  """The GPUs a worker can be given, one each: CUDA_VISIBLE_DEVICES, else nvidia-smi's list."""
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  if visible is not None:
    return [g for g in visible.split(",") if g.strip()]
  if not shutil.which("nvidia-smi"):
    return []
  try:
    lines = subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20
    ).stdout.splitlines()
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(lines) if line.startswith("GPU ")]


def resolve(flag: str, exp_name: str) -> int:
  """The number of workers --workers FLAG asks for. auto: one per GPU where there are GPUs (each
  worker then vmaps its runs); on a CPU one per core for the conv GANs, where two one-core workers
  measured faster than one two-core process (docs/speed.md); else 1 (the 1-D GAN vmaps a whole
  sweep in one process, the autoencoders are unmeasured)."""
  if flag != "auto":
    try:
      n = int(flag)
    except ValueError:
      n = 0
    if n < 1:
      raise ValueError(f"--workers {flag!r}: give a number N >= 1, or auto.")
    return n
  devices = gpus()
  if devices:
    return len(devices)
  try:
    arch = models.arch(registry.get(exp_name).config.model.arch)
  except Exception:  # pylint: disable=broad-except (an unknown experiment is reported later)
    return 1
  return len(os.sched_getaffinity(0)) if arch.worker_per_core else 1


def cpu_shares(n: int, cpus=None) -> list:
  """The cores of each of n workers: this process's cores split into n contiguous, near-equal
  parts (a core is never shared while there are enough)."""
  cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
  if n > len(cpus):
    return [[cpus[i % len(cpus)]] for i in range(n)]
  bounds = [round(i * len(cpus) / n) for i in range(n + 1)]
  return [cpus[bounds[i] : bounds[i + 1]] for i in range(n)]


def plan(n: int) -> list:
  """[(description, env overrides, cores or None)] per worker."""
  devices = gpus()
  if devices:
    if n > len(devices):
      raise ValueError(
          f"--workers {n} asks for more workers than the {len(devices)} GPU(s) here (one each)."
      )
    return [(f"GPU {devices[i]}", {"CUDA_VISIBLE_DEVICES": devices[i]}, None) for i in range(n)]
  shares = cpu_shares(n)
  return [(f"cores {','.join(map(str, c))}", {}, c) for c in shares]


def _pump(k: int, stream, lock) -> None:
  for line in stream:
    with lock:
      sys.stdout.write(f"[w{k}] {line}")
      sys.stdout.flush()


def launch(argv: list, n: int) -> int:
  """Runs n workers of `python -m experiments.run ARGV`; returns 0 when all exited 0, else the
  first non-zero exit status."""
  argv = strip_workers(argv)
  t0 = time.perf_counter()
  procs, threads, lock = [], [], threading.Lock()
  layout = plan(n)
  print(
      f"--workers {n}: "
      + "; ".join(f"w{k} on {what}" for k, (what, _, _) in enumerate(layout))
      + ". Each claims runs of the sweep; their output is prefixed [wK].",
      flush=True,
  )
  for k, (_, env, cores) in enumerate(layout):
    env = dict(os.environ, PYTHONUNBUFFERED="1", GEN_MODELS_WORKER=f"{k}/{n}", **env)
    preexec = (lambda c=cores: os.sched_setaffinity(0, c)) if cores else None
    p = subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec,
    )
    procs.append(p)
    t = threading.Thread(target=_pump, args=(k, p.stdout, lock), daemon=True)
    t.start()
    threads.append(t)
    if k == 0:  # the first starts the sweep (and checks the directory); the rest join it
      _wait_for_sweep(argv, p)

  def forward(signum, frame):
    del frame
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)

  old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    codes = [p.wait() for p in procs]
  finally:
    for s, h in old.items():
      signal.signal(s, h)
  for t in threads:
    t.join(timeout=5)
  bad = [(k, c) for k, c in enumerate(codes) if c != 0]
  print(
      f"--workers {n}: all workers ended in {time.perf_counter() - t0:.1f}s"
      + (
          "; exit status " + ", ".join(f"w{k} {c}" for k, c in bad)
          if bad
          else ", each with status 0"
      ),
      flush=True,
  )
  return bad[0][1] if bad else 0


def _wait_for_sweep(argv, first, timeout_s=600.0) -> None:
  """Waits until the first worker has started the sweep (its sweep.json exists) or exited, so a
  refusal (runs on disk without --resume, say) is reported once, not by every worker."""

  out, exp = "runs", None
  for i, a in enumerate(argv):
    if a.startswith("--exp="):
      exp = a.split("=", 1)[1]
    elif a == "--exp" and i + 1 < len(argv):
      exp = argv[i + 1]
    elif a.startswith("--out="):
      out = a.split("=", 1)[1]
    elif a == "--out" and i + 1 < len(argv):
      out = argv[i + 1]
  if exp is None:
    return
  path = rundir.ExpPaths.of(out, exp).sweep
  before = os.path.getmtime(path) if os.path.exists(path) else None
  deadline = time.time() + timeout_s
  while first.poll() is None and time.time() < deadline:
    if os.path.exists(path) and os.path.getmtime(path) != before:
      return
    time.sleep(0.2)
