"""The one generic training loop.

Steps run in chunks of `train.scan_chunk` steps per dispatch (a `lax.scan`; 1 = a plain jitted
step), the RNG of step s is `fold_in(key, s)`, metrics stay on the device until a log point, and
checkpoints are written at log points only. A run resumed from a checkpoint therefore replays
exactly the steps, batches and log rows an uninterrupted run would have produced.
"""

import dataclasses
import functools
import math
import signal
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import data as data_lib

TRACE_COUNT = {"chunk": 0}  # incremented while tracing: tests assert one trace per run


class Diverged(RuntimeError):
  """A loss became NaN/Inf. The last good checkpoint stays on disk."""

  def __init__(self, step: int, metrics: dict):
    bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
    super().__init__(f"training diverged at step {step}: {bad}")
    self.step = step


class Interrupted(RuntimeError):
  """SIGTERM/SIGINT: a checkpoint was saved at `step`; rerun with --resume to continue."""

  def __init__(self, step: int):
    super().__init__(f"interrupted; checkpoint saved at step {step}")
    self.step = step


@dataclasses.dataclass
class Task:
  """What the loop needs from a model family (built in gen_models.tasks)."""
  init: Callable[[Any], Any]  # key -> state
  step: Callable  # module-level pure (state, batch, rng, hp) -> (state, metrics)
  spec: data_lib.BatchSpec
  hparams: dict  # traced hyperparameters
  evaluate: Optional[Callable[[Any, int], dict]] = None  # (state, step) -> host metrics
  examples_per_step: int = 1
  unit: str = "ex"  # what examples_per_step counts, for progress lines (ex, img)


def _body(step_fn, spec, data, key, hp, state, step):
  rng = jax.random.fold_in(key, step)
  batch = data_lib.sample_batch(spec, data, jax.random.fold_in(rng, 0), step)
  return step_fn(state, batch, jax.random.fold_in(rng, 1), hp)


@functools.partial(jax.jit, static_argnames=("step_fn", "spec", "length"), donate_argnums=(0,))
def run_chunk(state, data, key, start, hp, *, step_fn, spec, length):
  """`length` consecutive steps from `start`; metrics come back stacked, shape (length,)."""
  TRACE_COUNT["chunk"] += 1
  body = functools.partial(_body, step_fn, spec, data, key, hp)
  if length == 1:  # no scan: on XLA CPU a conv step inside a while loop runs much slower
    state, metrics = body(state, start)
    return state, jax.tree.map(lambda m: m[None], metrics)
  return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))


def chunk_length(cfg) -> int:
  """Steps per dispatch: scan_chunk, shrunk so every log / eval / checkpoint / end step falls on
  a chunk boundary (the length stays the same for the whole run: one compilation)."""
  length = cfg.train.scan_chunk
  for every in (cfg.train.log_every, cfg.eval.every, cfg.ckpt.every, cfg.train.steps):
    if every > 0:
      length = math.gcd(length, every)
  return max(1, length)


class _StopFlag:
  """Turns SIGTERM / SIGINT into a flag the loop checks at log points (it then checkpoints)."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    if self.signum is not None:  # a second Ctrl-C: stop now
      raise KeyboardInterrupt
    self.signum = signum
    print("\nStopping at the next log point to save a checkpoint (press Ctrl-C again to abort "
          "without saving)...", flush=True)

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


def _host_means(pending: list, start_step: int) -> tuple[dict, Optional[int]]:
  """Means of the metrics stacked over the steps since the last log point, and the first step
  whose metrics are not finite (None if all are)."""
  stacked = {k: np.concatenate([np.asarray(m[k]) for m in pending]) for k in pending[0]}
  bad = np.zeros(len(next(iter(stacked.values()))), bool)
  for v in stacked.values():
    bad |= ~np.isfinite(v)
  first_bad = int(start_step + np.argmax(bad) + 1) if bad.any() else None
  return {k: float(np.mean(v)) for k, v in stacked.items()}, first_bad


# Evaluation metrics printed at each evaluation (all are logged).
_EVAL_SHOWN = ("fid", "kid", "precision", "recall", "classes_covered", "w1", "kl", "mse", "psnr")

# Progress lines show these first (in this order), then any others.
_ORDER = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "loss")


def _format(metrics: dict) -> str:
  keys = [k for k in _ORDER if k in metrics] + sorted(k for k in metrics if k not in _ORDER)
  return " ".join(f"{k} {metrics[k]:.4g}" for k in keys)


def _eta(seconds: float) -> str:
  if not seconds == seconds:  # nan
    return "?"
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
      f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def train(task: Task, cfg, *, data, key, tracker, checkpointer=None, resume: bool = False,
          label: str = "", progress_every_s: float = 10.0, print_fn=print):
  """Trains `task` for cfg.train.steps steps. Returns (state, info).

  data: device arrays for sampling ({"x", ...}); key: the run's training key.
  info: {"steps", "start_step", "compile_s", "train_s", "steps_per_s", "final_eval"}.
  """
  total = cfg.train.steps
  length = chunk_length(cfg)
  state = task.init(jax.random.fold_in(key, 1))
  start = 0
  if resume and checkpointer is not None:
    restored, meta = checkpointer.restore_latest(state)
    if restored is not None:
      state, start = restored, int(meta["step"])
      print_fn(f"[{label}] resumed from the checkpoint at step {start}")
  tracker.rewind(start)
  train_key = jax.random.fold_in(key, 2)
  hp = jax.tree.map(jnp.asarray, task.hparams)
  info = {"start_step": start, "steps": total, "compile_s": None, "train_s": 0.0, "final_eval": {}}

  def evaluate(step):
    if task.evaluate is None:
      return {}
    t = time.perf_counter()
    metrics = task.evaluate(state, step)
    images = metrics.pop("_images", {})
    metrics["eval_s"] = time.perf_counter() - t
    shown = {k: v for k, v in metrics.items() if k in _EVAL_SHOWN}
    if shown:
      print_fn(f"[{label}] eval at step {step}: " + " ".join(
          f"{k} {v:.4g}" + (f" (floor {metrics[k + '_floor']:.3g})" if k + "_floor" in metrics else "")
          for k, v in shown.items()) + f" ({metrics['eval_s']:.1f}s)")
    tracker.log(step, {f"eval/{k}": v for k, v in metrics.items()})
    for name, path in images.items():
      tracker.log_image(step, f"eval/{name}", path)
    return metrics

  def save(step):
    if checkpointer is None:
      return
    if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state))
               if np.asarray(x).dtype.kind == "f"):
      raise Diverged(step, {"parameters": float("nan")})  # never checkpoint a broken state
    checkpointer.save(step, state, {"step": step, "time": time.time()})

  if start == 0 and total > 0 and cfg.eval.every > 0:
    evaluate(0)
  step, pending = start, []
  clock = {"mark": time.perf_counter(), "last_print": time.perf_counter(), "window": None}

  def account():  # adds the time since the last mark to the training time
    jax.block_until_ready(state)
    now = time.perf_counter()
    info["train_s"] += now - clock["mark"]
    clock["mark"] = now
    return now

  with _StopFlag() as stop:
    while step < total:
      state, metrics = run_chunk(state, data, train_key, jnp.int32(step), hp,
                                 step_fn=task.step, spec=task.spec, length=length)
      if info["compile_s"] is None:  # the first call compiles (or hits the cache): time it alone
        jax.block_until_ready(state)
        now = time.perf_counter()
        info["compile_s"] = now - clock["mark"]
        clock["mark"], clock["window"] = now, (step + length, now)
      pending.append(metrics)
      step += length
      is_end = step == total
      if step % cfg.train.log_every == 0 or is_end:
        means, first_bad = _host_means(pending, step - len(pending) * length)
        pending = []
        tracker.log(step, {f"train/{k}": v for k, v in means.items()})
        if first_bad is not None:
          raise Diverged(first_bad, means)
        now = account()
        if now - clock["last_print"] >= progress_every_s or is_end:
          done, elapsed = step - clock["window"][0], now - clock["window"][1]
          rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
          eta = (total - step) / rate if rate > 0 else float("nan")
          print_fn(f"[{label}] step {step}/{total} ({100 * step / total:.0f}%) {_format(means)} | "
                   f"{rate:,.1f} steps/s, {rate * task.examples_per_step:,.0f} {task.unit}/s | ETA {_eta(eta)}")
          clock["last_print"] = now
        if stop.signum is not None and not is_end:
          save(step)
          raise Interrupted(step)
      if cfg.eval.every > 0 and step % cfg.eval.every == 0 or is_end:
        account()
        info["final_eval"] = evaluate(step)
        clock["mark"] = time.perf_counter()
      if cfg.ckpt.every > 0 and step % cfg.ckpt.every == 0 or is_end:
        account()
        save(step)
        clock["mark"] = time.perf_counter()
  info["steps_per_s"] = ((total - start - length) / info["train_s"]
                         if info["train_s"] > 0 and total - start > length else None)
  if total == start and task.evaluate is not None:  # nothing to train (steps=0 or already done)
    info["final_eval"] = evaluate(step)
  return state, info
