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
from gen_models import metric_names as names
from gen_models import metric_specs as specs
from gen_models import models
from gen_models import signals


class Diverged(RuntimeError):
  """A loss became NaN/Inf. The last good checkpoint stays on disk."""

  def __init__(self, step: int, metrics: dict):
    bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
    super().__init__(f"training diverged at step {step}: {bad}")
    self.step = step


class Interrupted(RuntimeError):
  """SIGTERM/SIGINT: a checkpoint was saved at `step`; rerun with --resume to continue."""

  def __init__(self, step):  # None: stopped between runs, nothing in flight
    super().__init__(
        "interrupted" + (f"; checkpoint saved at step {step}" if step is not None else "")
    )
    self.step = step


@dataclasses.dataclass
class Task:
  """What the loop needs from a model family (built by gen_models.families)."""

  init: Callable[[Any], Any]  # key -> state
  step: Callable  # module-level pure (state, batch, rng, hp) -> (state, metrics)
  spec: data_lib.BatchSpec
  hparams: dict  # traced hyperparameters
  evaluate: Optional[Callable[[Any, int], dict]] = None  # (state, step) -> host metrics
  # (state, key, step) -> the device arrays `evaluate` scores (e.g. generated images), pure in
  # state and key: a vmapped group draws them for all its live runs in one program and hands each
  # run's to evaluate(state, step, images=...)
  eval_images: Optional[Callable] = None
  examples_per_step: int = 1
  unit: str = "ex"  # what examples_per_step counts, for progress lines (ex, img)
  cost_per_step: dict = dataclasses.field(default_factory=dict)  # {name: count}, e.g. d_updates


_FLOPS = {}  # (step, spec, argument shapes) -> FLOPs: arms sharing a program are lowered once


def step_flops(run, state, start: int, lower_chunk: Optional[Callable] = None):
  """FLOPs of one training step of `run` (sampling the batch included), from XLA's cost analysis
  of the lowered, unoptimised step: a count of the program, the same on every machine. None where
  the backend gives no estimate. `lower_chunk`: lowers the one-step chunk training will compile,
  whose program is the step alone (the same count, checked for every experiment's arms): the
  training call then reuses its trace instead of the step being traced twice."""
  hp = jax.tree.map(jnp.asarray, run.task.hparams)
  args = (run.data, run.key, hp, state, jnp.int32(start))
  # the tree structure holds the static parts (a TrainState's apply_fn: the model itself)
  shapes = tuple((jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(args))
  key = (run.task.step, run.task.spec, jax.tree.structure(args), shapes)
  if key not in _FLOPS:
    if lower_chunk is None:
      body = jax.jit(functools.partial(_body, run.task.step, run.task.spec, None))
      lower_chunk = lambda: body.lower(*args)
    _FLOPS[key] = _lowered_flops(lower_chunk)
  return _FLOPS[key]


def _lowered_flops(lower):
  try:
    cost = lower().cost_analysis()
  except Exception:  # pylint: disable=broad-except (an estimate is optional, training is not)
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  flops = cost.get("flops") if isinstance(cost, dict) else None
  return float(flops) if flops is not None and flops >= 0 else None


def _body(step_fn, spec, batch_sharding, data, key, hp, state, step):
  rng = jax.random.fold_in(key, step)
  batch = data_lib.sample_batch(spec, data, jax.random.fold_in(rng, 0), step)
  if batch_sharding is not None:  # data parallel: the batch is split over devices, the rest is
    # replicated; XLA adds the all-reduces
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  return step_fn(state, batch, jax.random.fold_in(rng, 1), hp)


def _chunk(state, data, key, start, hp, step_fn, spec, length, batch_sharding=None):
  body = functools.partial(_body, step_fn, spec, batch_sharding, data, key, hp)
  if length == 1:  # no scan: on XLA CPU a conv step inside a while loop runs much slower
    state, metrics = body(state, start)
    return state, jax.tree.map(lambda m: m[None], metrics)
  return jax.lax.scan(body, state, start + jnp.arange(length, dtype=jnp.int32))


@functools.partial(
    jax.jit, static_argnames=("step_fn", "spec", "length", "batch_sharding"), donate_argnums=(0,)
)
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


@functools.partial(
    jax.jit, static_argnames=("step_fn", "spec", "length", "shared_data"), donate_argnums=(0,)
)
def run_chunk_many(state, data, key, start, hp, *, step_fn, spec, length, shared_data):
  """run_chunk for R runs at once (jax.vmap): state, key and hp carry a leading run axis, and
  so does data unless `shared_data`. Metrics come back with shape (R, length)."""
  fn = functools.partial(_chunk, step_fn=step_fn, spec=spec, length=length)
  return jax.vmap(fn, in_axes=(0, None if shared_data else 0, 0, None, 0))(
      state, data, key, start, hp
  )


# train.scan_chunk=0 (auto): steps per dispatch by backend. On XLA CPU (measured with
# `python -m experiments.bench`): the tiny 1-D GAN gains ~300x from fusing 30 steps in a lax.scan
# and the dense autoencoders gain from 50, while conv nets run several times slower inside
# lax.scan than dispatched one step at a time. On GPU/TPU a small step is a fraction of a
# millisecond of device time, so one Python dispatch per step would dominate: every model runs in
# chunks there (the standard remedy; not measured on this project's machines yet).
# Each architecture declares its CPU chunk when it registers (gen_models.models.registry).
ACCELERATOR_CHUNK = 50


def auto_chunk(arch: str, backend: str) -> int:
  if backend == "cpu":
    return models.arch(arch).cpu_chunk
  return ACCELERATOR_CHUNK


def scan_chunk(cfg, backend: Optional[str] = None) -> int:
  """cfg.train.scan_chunk, or for 0 (auto) the backend's default for this architecture."""
  if cfg.train.scan_chunk > 0:
    return cfg.train.scan_chunk
  return auto_chunk(cfg.model.arch, backend or jax.default_backend())


def vmap_runs(cfg, backend: Optional[str] = None) -> bool:
  """cfg.train.vmap_runs, or for None (auto) whether the architecture vectorises on this backend:
  on for the conv GANs on GPU/TPU, off on CPU."""
  if cfg.train.vmap_runs is not None:
    return cfg.train.vmap_runs
  backend = backend or jax.default_backend()
  return backend != "cpu" and models.arch(cfg.model.arch).vmap_on_accelerators


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

# Progress lines show the losses first, then the step's other metrics in the order it returns them.
_ORDER = ("d_loss", "g_loss", "loss")


def _format(metrics: dict) -> str:
  keys = [k for k in _ORDER if k in metrics] + [k for k in metrics if k not in _ORDER]
  return " ".join(f"{k} {metrics[k]:.4g}" for k in keys)


def _eta(seconds: float) -> str:
  if not seconds == seconds:  # nan
    return "?"
  seconds = int(round(seconds))
  return (
      f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
      if seconds >= 3600
      else (f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")
  )


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


@jax.jit
def _stack(trees):
  """The trees stacked leaf by leaf, in one compiled program (eagerly, one per leaf shape)."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _slice(tree, r):
  return jax.tree.map(lambda x: x[r], tree)


def _check_compatible(runs, length):
  first, cfg = runs[0], runs[0].cfg
  want = (
      first.task.step,
      first.task.spec,
      length,
      cfg.train.steps,
      cfg.train.log_every,
      cfg.eval.every,
      cfg.ckpt.every,
  )
  for run in runs[1:]:
    c = run.cfg
    if (
        run.task.step,
        run.task.spec,
        chunk_length(c),
        c.train.steps,
        c.train.log_every,
        c.eval.every,
        c.ckpt.every,
    ) != want:
      raise ValueError("runs trained together must share shapes, steps and intervals")


def _placed_like_fresh(state):
  """Restored arrays come back committed to a device, a fresh state's are not: left so, the first
  chunk's outputs (committed like their inputs) change the step's signature and a resumed run
  compiles its step twice. One host copy per resume."""
  return jax.tree.map(
      lambda x: jnp.asarray(np.asarray(x)) if isinstance(x, jax.Array) else x, state
  )


def init_or_restore(runs, resume: bool, print_fn=print):
  """Each run's initial state, or its latest checkpoint with --resume; rewinds its log to the
  start step. Returns (states, start step shared by all runs)."""
  states, starts = [], []
  for run in runs:
    state = run.task.init(jax.random.fold_in(run.key, 1))
    start, prior_s = 0, 0.0
    if resume and run.checkpointer is not None:
      restored, meta = run.checkpointer.restore_latest(state)
      if restored is not None:
        state, start = _placed_like_fresh(restored), int(meta["step"])
        prior_s = float(meta.get("train_s", 0.0))
        print_fn(f"[{run.label}] resumed from the checkpoint at step {start}")
    run.tracker.rewind(start)
    run.info = {
        "start_step": start,
        "steps": run.cfg.train.steps,
        "compile_s": None,
        "train_s": 0.0,
        "train_s_before": prior_s,  # training seconds of the earlier processes (the checkpoint's)
        "final_eval": {},
    }
    states.append(state)
    starts.append(start)
  if len(set(starts)) != 1:
    raise ValueError(f"runs trained together must resume from the same step, got {starts}")
  return states, starts[0]


@dataclasses.dataclass
class Group:
  """The device-side state of runs training together (stacked along a leading run axis when there
  are several), and the step they have reached."""

  runs: list
  state: Any
  data: Any
  keys: Any
  hp: Any
  step: int
  length: int
  shared_data: bool = True
  mesh: Any = None
  batch_sharding: Any = None
  train_s: float = 0.0  # this process's training seconds so far (the clock's)
  _host: tuple = (None, None)  # (step, host copy of state)

  @property
  def many(self) -> bool:
    return len(self.runs) > 1

  def live(self) -> list:
    return [r for r, run in enumerate(self.runs) if run.status == "running"]

  def state_of(self, r):
    """Run r's state (one device->host copy per step for stacked or sharded states)."""
    if not self.many and self.mesh is None:
      return self.state
    if self._host[0] != self.step:
      self._host = (self.step, to_host(self.state))
    return _slice(self._host[1], r) if self.many else self._host[1]


def place(runs, states, start, length, print_fn=print) -> Group:
  """Puts the runs' states, data, keys and traced hyperparameters on the device(s): stacked for a
  vmapped group, replicated over a "data" mesh for one run on several devices."""
  group = _placed(runs, states, start, length, print_fn)
  # One run on one device at a step per dispatch: counted in the program advance() compiles.
  lower = None
  if not group.many and group.mesh is None and length == 1:
    args, kwargs = _chunk_call(group)
    lower = lambda: run_chunk.lower(*args, **kwargs)
  flops = step_flops(runs[0], states[0], start, lower)  # the runs share every shape
  for run in runs:
    run.info["flops_per_step"] = flops
  return group


def _placed(runs, states, start, length, print_fn) -> Group:
  first = runs[0]
  keys = [jax.random.fold_in(run.key, 2) for run in runs]
  hps = [jax.tree.map(jnp.asarray, run.task.hparams) for run in runs]
  shared = all(run.data is first.data for run in runs)
  if len(runs) > 1:
    return Group(
        runs,
        _stack(states),
        first.data if shared else _stack([run.data for run in runs]),
        _stack(keys),
        _stack(hps),
        start,
        length,
        shared,
    )
  group = Group(runs, states[0], first.data, keys[0], hps[0], start, length)
  mesh = data_parallel_mesh(first.task.spec.padded_size)
  if mesh is not None:
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    group.state, group.data, group.keys, group.hp = replicate(
        (group.state, group.data, group.keys, group.hp), replicated
    )
    group.mesh = mesh
    group.batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    print_fn(
        f"[{first.label}] data parallel over {jax.device_count()} devices "
        f"({first.task.spec.padded_size // jax.device_count()} examples each per step)"
    )
  return group


def _chunk_call(group: Group) -> tuple:
  """run_chunk's (args, kwargs) for one run's next dispatch. Lowering with these (step_flops) and
  calling with them (advance) is one trace: jit's caches key on every argument as passed."""
  task = group.runs[0].task
  # The step as a numpy scalar: the same int32 argument (one trace), without the device array
  # jnp.int32 builds per dispatch (90 -> 15 us a dispatch, most of a 1-D GAN's step at chunk 1).
  args = (group.state, group.data, group.keys, np.int32(group.step), group.hp)
  kwargs = dict(
      step_fn=task.step, spec=task.spec, length=group.length, batch_sharding=group.batch_sharding
  )
  return args, kwargs


def advance(group: Group):
  """One dispatch: group.length steps for every run. Returns the metrics, still on the device."""
  task = group.runs[0].task
  if group.many:
    group.state, metrics = run_chunk_many(
        group.state,
        group.data,
        group.keys,
        np.int32(group.step),  # a numpy scalar, as in _chunk_call
        group.hp,
        step_fn=task.step,
        spec=task.spec,
        length=group.length,
        shared_data=group.shared_data,
    )
  else:
    args, kwargs = _chunk_call(group)
    group.state, metrics = run_chunk(*args, **kwargs)
  group.step += group.length
  return metrics


def log_metrics(group: Group, pending: list, print_fn=print):
  """Writes each live run's training means since the last log point; marks runs whose metrics
  went non-finite as diverged. Returns the means of the first run still running (or None)."""
  fetched = to_host(pending)
  shown = None
  for r in group.live():
    run = group.runs[r]
    run_metrics = [{k: v[r] for k, v in h.items()} for h in fetched] if group.many else fetched
    means, first_bad = _host_means(run_metrics, group.step - len(run_metrics) * group.length)
    run.tracker.log(group.step, {names.train(k): v for k, v in means.items()})
    if first_bad is not None:
      _diverge(run, first_bad, means)
      print_fn(f"[{run.label}] DIVERGED: {run.error}")
    elif shown is None:
      shown = means
  return shown


def _diverge(run, step, metrics):
  run.status = "diverged"
  run.info.update(diverged_step=step, diverged_metrics=metrics)
  run.error = str(Diverged(step, metrics))


def save(group: Group):
  """Checkpoints every live run at group.step; a state with non-finite parameters is never saved
  (the run is marked diverged and keeps its last good checkpoint)."""
  for r in group.live():
    run = group.runs[r]
    if run.checkpointer is None:
      continue
    saved = to_host(group.state_of(r))
    if not all(
        np.all(np.isfinite(x)) for x in jax.tree.leaves(saved) if np.asarray(x).dtype.kind == "f"
    ):
      _diverge(run, group.step, {"parameters": float("nan")})
      continue
    meta = {"step": group.step, "time": time.time(), "train_s": _train_s(run, group)}
    run.checkpointer.save(group.step, saved, meta)


def _train_s(run, group) -> float:
  return run.info.get("train_s_before", 0.0) + group.train_s


def cost_row(run, group) -> dict:
  """Cumulative compute at group.step: the task's per-step counts times the steps, FLOPs and the
  training seconds of every process that trained the run."""
  out = {names.cost(k): v * group.step for k, v in run.task.cost_per_step.items()}
  if run.info.get("flops_per_step") is not None:
    out[names.cost("flops")] = run.info["flops_per_step"] * group.step
  out[names.cost("train_s")] = _train_s(run, group)
  return out


def _score_together(done: list):
  """The metrics an evaluation left to be scored with the group's other runs: an entry
  "_score": (key, samples, scorer) is replaced by scorer(stacked samples of every run with that
  key)[i], once per key (the image metrics: one device program for all the group's runs). Each
  run's eval_s gets an equal share of the scoring time."""
  by_key = {}
  for i, (_, metrics, _) in enumerate(done):
    if "_score" in metrics:
      by_key.setdefault(metrics["_score"][0], []).append(i)
  for members in by_key.values():
    t = time.perf_counter()
    scorer = done[members[0]][1]["_score"][2]
    scored = scorer(jnp.stack([done[i][1]["_score"][1] for i in members]))
    share = (time.perf_counter() - t) / len(members)
    for i, extra in zip(members, scored):
      r, metrics, seconds = done[i]
      del metrics["_score"]
      metrics.update(extra)
      done[i] = (r, metrics, seconds + share)
  return done


def _group_images(group: Group, live: list, side_by_side=None) -> tuple:
  """({run: its evaluation images}, seconds) for a vmapped group whose tasks draw images
  (Task.eval_images): one program over the stacked states and keys of the live runs, side by
  side (vmap), on an accelerator. ({}, 0) where the runs draw their own, one by one: always on a
  CPU, where drawing 4 dcgan runs' images together took 1.3-1.5x the time of 4 single draws,
  vmapped or under lax.map (`python -m experiments.bench --draw-samples 2000`)."""
  tasks = [group.runs[r].task for r in live]
  side_by_side = jax.default_backend() != "cpu" if side_by_side is None else side_by_side
  if not side_by_side or not group.many or group.mesh is not None or not live:
    return {}, 0.0
  if any(t.evaluate is None or t.eval_images is None for t in tasks):
    return {}, 0.0
  t = time.perf_counter()
  idx = jnp.asarray(live)
  states = jax.tree.map(lambda x: x[idx], group.state)
  keys = jnp.stack([group.runs[r].key for r in live])
  draw = jax.vmap(lambda state, key: tasks[0].eval_images(state, key, group.step))
  images = draw(states, keys)
  return {r: jax.tree.map(lambda x, i=i: x[i], images) for i, r in enumerate(live)}, (
      time.perf_counter() - t
  ) / len(live)


def evaluate(group: Group, print_fn=print):
  """Runs each live run's evaluation at group.step: a vmapped group's images drawn for all its
  runs at once (_group_images), the parts its task defers ("_score") scored for the whole group
  at once; logs it (and its images)."""
  done = []
  live = group.live()
  drawn, share = _group_images(group, live)
  for r in live:
    run = group.runs[r]
    if run.task.evaluate is None:
      continue
    t = time.perf_counter()
    extra = {"images": drawn[r]} if r in drawn else {}
    metrics = run.task.evaluate(group.state_of(r), group.step, **extra)
    done.append((r, metrics, time.perf_counter() - t + (share if r in drawn else 0.0)))
  for r, metrics, seconds in _score_together(done):
    run = group.runs[r]
    images = metrics.pop("_images", {})
    label = metrics.pop("_label", "")
    metrics["eval_s"] = seconds
    shown = {k: v for k, v in metrics.items() if k in specs.CONSOLE}
    if shown and not group.many:
      print_fn(
          f"[{run.label}] eval at step {group.step}: "
          + " ".join(
              f"{k} {v:.4g}"
              + (f" (floor {metrics[names.floor(k)]:.3g})" if names.floor(k) in metrics else "")
              for k, v in shown.items()
          )
          + f" {label} ({metrics['eval_s']:.1f}s)".replace("  ", " ")
      )
    row = {names.evaluation(k): v for k, v in metrics.items()}
    run.info["cost"] = cost_row(run, group)
    run.tracker.log(group.step, {**row, **run.info["cost"]})
    for name, path in images.items():
      run.tracker.log_image(group.step, names.evaluation(name), path)
    run.info["final_eval"] = metrics


class Clock:
  """Training time (evaluations and checkpoints excluded), the first dispatch's compile time apart,
  and when to print a progress line."""

  def __init__(self, every_s: float):
    self.every_s, self.train_s, self.window = every_s, 0.0, None
    self.mark = self.last_print = time.perf_counter()

  def first_dispatch(self, group: Group):
    """Call after the first dispatch: its time (compilation) is not training time."""
    jax.block_until_ready(group.state)
    now = time.perf_counter()
    for run in group.runs:
      run.info["compile_s"] = now - self.mark
    self.mark, self.window = now, (group.step, now)

  def stop(self, group: Group) -> float:
    """Adds the time since the last mark to the training time (waits for the device)."""
    jax.block_until_ready(group.state)
    now = time.perf_counter()
    self.train_s += now - self.mark
    self.mark = now
    group.train_s = self.train_s  # what the next checkpoint and evaluation rows record
    return now

  def restart(self):
    self.mark = time.perf_counter()

  def progress(self, group: Group, shown: dict, now: float, print_fn, force: bool):
    if shown is None or not (force or now - self.last_print >= self.every_s):
      return
    total = group.runs[0].cfg.train.steps
    done, elapsed = group.step - self.window[0], now - self.window[1]
    rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
    eta = (total - group.step) / rate if rate > 0 else float("nan")
    examples = sum(run.task.examples_per_step for run in group.runs)
    label = group.runs[0].label if not group.many else f"{len(group.runs)} runs"
    print_fn(
        f"[{label}] step {group.step}/{total} ({100 * group.step / total:.0f}%) {_format(shown)} | "
        f"{rate:,.1f} steps/s, {rate * examples:,.0f} {group.runs[0].task.unit}/s | ETA {_eta(eta)}"
    )
    self.last_print = now


_SYNC_POINT = {"id": 0}  # how many stop decisions this process has made: equal on every process


def stop_requested() -> bool:
  """Whether to stop at this log point for a SIGTERM / Ctrl-C. With several processes (one
  multi-host run) the decision is collective: every process reaches the same log points in the same
  order and decides there together, so they checkpoint and stop at the same step (a process that
  stopped alone would leave the others waiting in the next step's collectives). jax.distributed
  takes SIGTERM itself as a preemption notice, which its sync point shares; Ctrl-C (and a SIGTERM
  this module's handler saw) is shared with an all-gather of each process's flag."""
  flag = signals.requested()
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  _SYNC_POINT["id"] += 1
  try:
    preempted = multihost_utils.reached_preemption_sync_point(_SYNC_POINT["id"])
  except RuntimeError:  # no preemption service in this jax.distributed setup
    preempted = False
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag)))) or preempted


def _due(every: int, step: int) -> bool:
  return every > 0 and step % every == 0


def train_many(runs: list, *, resume: bool = False, progress_every_s: float = 10.0, print_fn=print):
  """The training loop, for one run or for R runs that share every shape (a sweep's arms and
  seeds), which then train as one jax.vmap'ed program. Each run keeps its own logging,
  evaluation, checkpoints and divergence status (a diverged run stops logging; the others go on).
  Returns the final states (None for diverged runs); raises Interrupted on SIGTERM / Ctrl-C after
  checkpointing."""
  cfg, length = runs[0].cfg, chunk_length(runs[0].cfg)
  total = cfg.train.steps
  _check_compatible(runs, length)
  states, start = init_or_restore(runs, resume, print_fn)
  chosen = "auto: " if cfg.train.scan_chunk == 0 else ""
  print_fn(
      f"[{runs[0].label if len(runs) == 1 else f'{len(runs)} runs'}] {length} step(s) per dispatch "
      f"(train.scan_chunk={chosen}{scan_chunk(cfg)} on {jax.default_backend()}"
      + (", shrunk to fit the log/eval/checkpoint intervals" if length != scan_chunk(cfg) else "")
      + "; train.vmap_runs="
      + ("auto: " if cfg.train.vmap_runs is None else "")
      + ("on" if vmap_runs(cfg) else "off")
      + ")"
  )
  group = place(runs, states, start, length, print_fn)
  del states
  # Evaluate at the start step when one is due there: step 0, or a resumed run's checkpoint step
  # (its evaluation row may not have been written: checkpoints come first), or the end.
  if start == total or _due(cfg.eval.every, start):
    evaluate(group, print_fn)
  clock, pending = Clock(progress_every_s), []
  with signals.handling():
    while group.step < total and group.live():
      pending.append(advance(group))
      if clock.window is None:
        clock.first_dispatch(group)
      is_end = group.step == total
      if _due(cfg.train.log_every, group.step) or is_end:
        shown = log_metrics(group, pending, print_fn)
        pending = []
        clock.progress(group, shown, clock.stop(group), print_fn, force=is_end)
        if not is_end and stop_requested():
          save(group)
          raise Interrupted(group.step)
      # Checkpoint before evaluating: an evaluation that fails (a full disk, an unusable cache)
      # never costs the training; --resume then only re-evaluates.
      if _due(cfg.ckpt.every, group.step) or is_end:
        clock.stop(group)
        save(group)
        clock.restart()
      if _due(cfg.eval.every, group.step) or is_end:
        clock.stop(group)
        evaluate(group, print_fn)
        clock.restart()
  trained = total - start - length
  for run in runs:
    run.info["train_s"] = clock.train_s
    run.info["steps_per_s"] = trained / clock.train_s if clock.train_s > 0 and trained > 0 else None
    if run.status == "running":
      run.status = "finished"
  return [group.state_of(r) if run.status == "finished" else None for r, run in enumerate(runs)]
