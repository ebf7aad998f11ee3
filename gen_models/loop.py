"""The one generic training loop.

Steps run in chunks of `train.scan_chunk` steps per dispatch (a `lax.scan`; 1 = a plain jitted
step), the RNG of step s is `fold_in(key, s)`, metrics stay on the device until a log point, and
checkpoints are written at log points only. A run resumed from a checkpoint therefore replays
exactly the steps, batches and log rows an uninterrupted run would have produced.
"""

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import data as data_lib
from gen_models import signals

TRACE_COUNT = {"chunk": 0}  # incremented while tracing: tests assert one trace per run


class Diverged(RuntimeError):
  """A loss became NaN/Inf. The last good checkpoint stays on disk."""

  def __init__(self, step: int, metrics: dict):
    bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
    super().__init__(f"training diverged at step {step}: {bad}")
    self.step = step


class Interrupted(RuntimeError):
  """SIGTERM/SIGINT: a checkpoint was saved at `step`; rerun with --resume to continue."""

  def __init__(self, step):  # None: stopped between runs, nothing in flight
    super().__init__("interrupted" + (f"; checkpoint saved at step {step}" if step is not None else ""))
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


def _body(step_fn, spec, batch_sharding, data, key, hp, state, step):
  rng = jax.random.fold_in(key, step)
  batch = data_lib.sample_batch(spec, data, jax.random.fold_in(rng, 0), step)
  if batch_sharding is not None:  # data parallel: the batch is split over devices, the rest is
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)  # replicated; XLA adds the all-reduces
  return step_fn(state, batch, jax.random.fold_in(rng, 1), hp)


def _chunk(state, data, key, start, hp, step_fn, spec, length, batch_sharding=None):
  TRACE_COUNT["chunk"] += 1
  body = functools.partial(_body, step_fn, spec, batch_sharding, data, key, hp)
  if length == 1:  # no scan: on XLA CPU a conv step inside a while loop runs much slower
    state, metrics = body(state, start)
    return state, jax.tree.map(lambda m: m[None], metrics)
  return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))


@functools.partial(jax.jit, static_argnames=("step_fn", "spec", "length", "batch_sharding"),
                   donate_argnums=(0,))
def run_chunk(state, data, key, start, hp, *, step_fn, spec, length, batch_sharding=None):
  """`length` consecutive steps from `start`; metrics come back stacked, shape (length,).
  With `batch_sharding` (a NamedSharding over a "data" mesh axis) each batch is split across
  the devices and the parameters stay replicated."""
  return _chunk(state, data, key, start, hp, step_fn, spec, length, batch_sharding)


def data_parallel_mesh(batch_size: int):
  """A 1-D "data" mesh over all devices (all hosts' after jax.distributed.initialize()), or None
  with a single device or a batch that does not split evenly."""
  n = jax.device_count()
  if n == 1:
    return None
  if batch_size % n:
    print(f"note: batch {batch_size} does not split over {n} devices; training on one device.")
    return None
  return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


@functools.partial(jax.jit, static_argnames=("step_fn", "spec", "length", "shared_data"),
                   donate_argnums=(0,))
def run_chunk_many(state, data, key, start, hp, *, step_fn, spec, length, shared_data):
  """run_chunk for R runs at once (jax.vmap): state, key and hp carry a leading run axis, and
  so does data unless `shared_data`. Metrics come back with shape (R, length)."""
  fn = functools.partial(_chunk, step_fn=step_fn, spec=spec, length=length)
  return jax.vmap(fn, in_axes=(0, None if shared_data else 0, 0, None, 0))(state, data, key, start, hp)


# train.scan_chunk=0 (auto): steps per dispatch by backend. On XLA CPU (measured with
# `python -m experiments.bench`): the tiny 1-D GAN gains ~300x from fusing 30 steps in a lax.scan
# and the dense autoencoders gain from 50, while conv nets run several times slower inside
# lax.scan than dispatched one step at a time. On GPU/TPU a small step is a fraction of a
# millisecond of device time, so one Python dispatch per step would dominate: every model runs in
# chunks there (the standard remedy; not measured on this project's machines yet).
AUTO_CHUNK = {"cpu": {"mlp1d": 30, "ae_dense": 50}, "cpu_default": 1, "accelerator": 50}


def auto_chunk(arch: str, backend: str) -> int:
  if backend == "cpu":
    return AUTO_CHUNK["cpu"].get(arch, AUTO_CHUNK["cpu_default"])
  return AUTO_CHUNK["accelerator"]


def scan_chunk(cfg, backend: Optional[str] = None) -> int:
  """cfg.train.scan_chunk, or for 0 (auto) the backend's default for this architecture."""
  if cfg.train.scan_chunk > 0:
    return cfg.train.scan_chunk
  return auto_chunk(cfg.model.arch, backend or jax.default_backend())


def chunk_length(cfg) -> int:
  """Steps per dispatch: scan_chunk, shrunk so every log / eval / checkpoint / end step falls on
  a chunk boundary (the length stays the same for the whole run: one compilation)."""
  length = scan_chunk(cfg)
  for every in (cfg.train.log_every, cfg.eval.every, cfg.ckpt.every, cfg.train.steps):
    if every > 0:
      length = math.gcd(length, every)
  return max(1, length)


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


@dataclasses.dataclass
class Run:
  """One training run for `train_many`; `status` / `info` are filled in by the loop."""
  task: Task
  cfg: Any
  data: dict  # device arrays sampled by the step
  key: Any
  tracker: Any
  checkpointer: Any = None
  label: str = ""
  status: str = "running"  # running | finished | diverged
  error: str = ""
  info: dict = dataclasses.field(default_factory=dict)


def train(task: Task, cfg, *, data, key, tracker, checkpointer=None, resume: bool = False,
          label: str = "", progress_every_s: float = 10.0, print_fn=print):
  """Trains one run for cfg.train.steps steps. Returns (state, info); raises Diverged on NaN/Inf
  and Interrupted on SIGTERM / Ctrl-C (after saving a checkpoint)."""
  run = Run(task, cfg, data, key, tracker, checkpointer, label)
  (state,) = train_many([run], resume=resume, progress_every_s=progress_every_s, print_fn=print_fn)
  if run.status == "diverged":
    raise Diverged(run.info["diverged_step"], run.info["diverged_metrics"])
  return state, run.info


def to_host(tree):
  """Host (numpy) copy of a pytree. Arrays replicated over a multi-host mesh are read from this
  process's own copy (jax.device_get refuses arrays that span other hosts' devices)."""
  def leaf(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x) if isinstance(x, jax.Array) else x
  return jax.tree.map(leaf, tree)


def replicate(tree, sharding):
  """Places a pytree replicated on `sharding`'s devices. Multi-host: every process holds the same
  values (same seeds, same data), and each contributes its copy to one global array."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def leaf(x):
    x = x if hasattr(x, "dtype") else np.asarray(x)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(leaf(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))
  return jax.tree.map(leaf, tree)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _slice(tree, r):
  return jax.tree.map(lambda x: x[r], tree)


def train_many(runs: list, *, resume: bool = False, progress_every_s: float = 10.0, print_fn=print):
  """The training loop, for one run or for R runs that share every shape (a sweep's arms and
  seeds), which then train as one jax.vmap'ed program. Each run keeps its own logging,
  evaluation, checkpoints and divergence status (a diverged run stops logging; the others go on).
  Returns the final states (None for diverged runs)."""
  first = runs[0]
  cfg, total, length = first.cfg, first.cfg.train.steps, chunk_length(first.cfg)
  for run in runs[1:]:
    if (run.task.step, run.task.spec, chunk_length(run.cfg), run.cfg.train.steps, run.cfg.train.log_every,
        run.cfg.eval.every, run.cfg.ckpt.every) != (first.task.step, first.task.spec, length, total,
                                                    cfg.train.log_every, cfg.eval.every, cfg.ckpt.every):
      raise ValueError("runs trained together must share shapes, steps and intervals")
  states, starts = [], []
  for run in runs:
    state = run.task.init(jax.random.fold_in(run.key, 1))
    start = 0
    if resume and run.checkpointer is not None:
      restored, meta = run.checkpointer.restore_latest(state)
      if restored is not None:
        state, start = restored, int(meta["step"])
        print_fn(f"[{run.label}] resumed from the checkpoint at step {start}")
    run.tracker.rewind(start)
    run.info = {"start_step": start, "steps": total, "compile_s": None, "train_s": 0.0, "final_eval": {}}
    states.append(state)
    starts.append(start)
  if len(set(starts)) != 1:
    raise ValueError(f"runs trained together must resume from the same step, got {starts}")
  start = starts[0]
  step = start
  chosen = "auto: " if cfg.train.scan_chunk == 0 else ""
  print_fn(f"[{first.label if len(runs) == 1 else f'{len(runs)} runs'}] {length} step(s) per dispatch "
           f"(train.scan_chunk={chosen}{scan_chunk(cfg)} on {jax.default_backend()}"
           + (f", shrunk to fit the log/eval/checkpoint intervals" if length != scan_chunk(cfg) else "") + ")")
  many = len(runs) > 1
  train_keys = [jax.random.fold_in(run.key, 2) for run in runs]
  hps = [jax.tree.map(jnp.asarray, run.task.hparams) for run in runs]
  shared_data = all(run.data is first.data for run in runs)
  if many:
    state, keys, hp = _stack(states), _stack(train_keys), _stack(hps)
    data = first.data if shared_data else _stack([run.data for run in runs])
  else:
    state, keys, hp, data = states[0], train_keys[0], hps[0], first.data
  del states
  batch_sharding = None
  mesh = None if many else data_parallel_mesh(first.task.spec.padded_size)
  if mesh is not None:
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state, data, keys, hp = replicate((state, data, keys, hp), replicated)
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    print_fn(f"[{first.label}] data parallel over {jax.device_count()} devices "
             f"({first.task.spec.padded_size // jax.device_count()} examples each per step)")

  host = {"step": None, "state": None}

  def run_state(r):
    if not many and mesh is None:
      return state
    if host["step"] != step:  # one device->host copy per log/eval point, then cheap numpy slices
      host["step"], host["state"] = step, to_host(state)
    return _slice(host["state"], r) if many else host["state"]

  def evaluate(r, step):
    run = runs[r]
    if run.task.evaluate is None:
      return {}
    t = time.perf_counter()
    metrics = run.task.evaluate(run_state(r), step)
    images = metrics.pop("_images", {})
    label = metrics.pop("_label", "")
    metrics["eval_s"] = time.perf_counter() - t
    shown = {k: v for k, v in metrics.items() if k in _EVAL_SHOWN}
    if shown and not many:
      print_fn(f"[{run.label}] eval at step {step}: " + " ".join(
          f"{k} {v:.4g}" + (f" (floor {metrics[k + '_floor']:.3g})" if k + "_floor" in metrics else "")
          for k, v in shown.items()) + f" {label} ({metrics['eval_s']:.1f}s)".replace("  ", " "))
    run.tracker.log(step, {f"eval/{k}": v for k, v in metrics.items()})
    for name, path in images.items():
      run.tracker.log_image(step, f"eval/{name}", path)
    return metrics

  def diverge(r, step, metrics):
    run = runs[r]
    run.status = "diverged"
    run.info.update(diverged_step=step, diverged_metrics=metrics)
    run.error = str(Diverged(step, metrics))

  def save(r, step):
    run = runs[r]
    if run.checkpointer is None:
      return
    saved = to_host(run_state(r))
    if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(saved) if np.asarray(x).dtype.kind == "f"):
      diverge(r, step, {"parameters": float("nan")})  # never checkpoint a broken state
      return
    run.checkpointer.save(step, saved, {"step": step, "time": time.time()})

  def live():
    return [r for r, run in enumerate(runs) if run.status == "running"]

  # Evaluate at the start step when one is due there: step 0, or a resumed run's checkpoint
  # step (its evaluation row may not have been written: checkpoints come first), or the end.
  if start == total or (cfg.eval.every > 0 and start % cfg.eval.every == 0):
    for r in live():
      runs[r].info["final_eval"] = evaluate(r, start)
  pending = []
  clock = {"mark": time.perf_counter(), "last_print": time.perf_counter(), "window": None, "train_s": 0.0}

  def account():  # adds the time since the last mark to the training time
    jax.block_until_ready(state)
    now = time.perf_counter()
    clock["train_s"] += now - clock["mark"]
    clock["mark"] = now
    return now

  unit = first.task.unit
  examples = sum(run.task.examples_per_step for run in runs)
  label = first.label if not many else f"{len(runs)} runs"
  with signals.handling():
    while step < total and live():
      if many:
        state, metrics = run_chunk_many(state, data, keys, jnp.int32(step), hp, step_fn=first.task.step,
                                        spec=first.task.spec, length=length, shared_data=shared_data)
      else:
        state, metrics = run_chunk(state, data, keys, jnp.int32(step), hp, step_fn=first.task.step,
                                   spec=first.task.spec, length=length, batch_sharding=batch_sharding)
      if clock["window"] is None:  # the first call compiles (or hits the cache): time it alone
        jax.block_until_ready(state)
        now = time.perf_counter()
        for run in runs:
          run.info["compile_s"] = now - clock["mark"]
        clock["mark"], clock["window"] = now, (step + length, now)
      pending.append(metrics)
      step += length
      is_end = step == total
      if step % cfg.train.log_every == 0 or is_end:
        fetched = to_host(pending)
        pending = []
        shown = None
        for r in live():
          run_metrics = [{k: v[r] for k, v in h.items()} for h in fetched] if many else fetched
          means, first_bad = _host_means(run_metrics, step - len(run_metrics) * length)
          runs[r].tracker.log(step, {f"train/{k}": v for k, v in means.items()})
          if first_bad is not None:
            diverge(r, first_bad, means)
            print_fn(f"[{runs[r].label}] DIVERGED: {runs[r].error}")
          elif shown is None:
            shown = means
        now = account()
        if shown is not None and (now - clock["last_print"] >= progress_every_s or is_end):
          done, elapsed = step - clock["window"][0], now - clock["window"][1]
          rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
          eta = (total - step) / rate if rate > 0 else float("nan")
          print_fn(f"[{label}] step {step}/{total} ({100 * step / total:.0f}%) {_format(shown)} | "
                   f"{rate:,.1f} steps/s, {rate * examples:,.0f} {unit}/s | ETA {_eta(eta)}")
          clock["last_print"] = now
        if signals.requested() and not is_end:
          for r in live():
            save(r, step)
          raise Interrupted(step)
      # Checkpoint before evaluating: an evaluation that fails (a full disk, an unusable cache)
      # never costs the training; --resume then only re-evaluates.
      if cfg.ckpt.every > 0 and step % cfg.ckpt.every == 0 or is_end:
        account()
        for r in live():
          save(r, step)
        clock["mark"] = time.perf_counter()
      if cfg.eval.every > 0 and step % cfg.eval.every == 0 or is_end:
        account()
        for r in live():
          runs[r].info["final_eval"] = evaluate(r, step)
        clock["mark"] = time.perf_counter()
  trained = total - start - length
  for run in runs:
    run.info["train_s"] = clock["train_s"]
    run.info["steps_per_s"] = trained / clock["train_s"] if clock["train_s"] > 0 and trained > 0 else None
  for run in runs:
    if run.status == "running":
      run.status = "finished"
  return [run_state(r) if runs[r].status == "finished" else None for r in range(len(runs))]
