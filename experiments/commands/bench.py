"""Training-throughput benchmarks, measured side by side in one process.

  python -m experiments.bench [--models gaussian1d,mlp_gan,dcgan,...] [--batch 64,256] [--peers]
                              [--reference] [--rounds 3] [--seconds 3] [--json]
  python -m experiments.bench --eval-samples 2000,10000 [--data fashion_mnist] [--rounds 3]
  python -m experiments.bench --draw-samples 2000 [--rounds 3]
                              [--cores 1,all]

For every image model and batch: our jitted step (after compilation, compile time reported
apart) and, with --peers, the same architecture and step in TensorFlow 2 (tf.function +
GradientTape) and PyTorch eager, measured in alternating rounds (median over rounds).
`gaussian1d` times the full seed protocol (3000 steps) with our fused lax.scan loop and, with
--peers, the seed notes' own Keras predict + train_on_batch loop. FLOP/s come from XLA's cost
analysis of the compiled step, next to the machine's dense-matmul FLOP/s.
Prints a table, or with --json one JSON object: {"results": [...], "matmul_gflop_per_s": ...}.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

from experiments import bench_eval
from experiments import registry
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from gen_models import runtime
from gen_models.errors import RunError

IMAGE_MODELS = ("mlp_gan", "dcgan", "dcgan_transpose", "dcgan_atienza")


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.bench",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--models", default="gaussian1d," + ",".join(IMAGE_MODELS))
  p.add_argument("--batch", default="64,256", help="comma-separated batch sizes for image models")
  p.add_argument(
      "--peers", action="store_true", help="also TensorFlow, PyTorch and the Keras seed loop"
  )
  p.add_argument(
      "--reference",
      action="store_true",
      help="also our impl=reference models (the layers as written, no speed rewrites)",
  )
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument(
      "--seconds", type=float, default=3.0, help="measuring time per round and framework"
  )
  p.add_argument("--pause", type=float, default=1.0, help="idle seconds before each measurement")
  p.add_argument("--json", action="store_true")
  p.add_argument(
      "--allocators",
      help=(
          "compare allocators side by side instead (e.g. none,glibc-tunables,mimalloc,"
          "tcmalloc): one fresh process per measurement, alternating, --rounds of each"
      ),
  )
  p.add_argument(
      "--eval-samples",
      help=(
          "time one dcgan evaluation (the image metrics under every shipped extractor) at each of"
          " these sample counts instead (e.g. 2000,10000): the numpy path against the device"
          " path per component, and a group of 4 runs; --rounds of each (experiments/bench_eval.py)"
      ),
  )
  p.add_argument(
      "--cores",
      default="1,all",
      help="for --eval-samples: core settings, each in a pinned child process (default 1,all)",
  )
  p.add_argument("--data", default="fashion_mnist", help="dataset for --eval-samples")
  p.add_argument(
      "--draw-samples",
      type=int,
      help=(
          "time drawing a group of 4 dcgan runs' evaluation images (this many each) instead: 4"
          " single draws, one vmapped program, one lax.map program; --rounds of each"
      ),
  )
  return p.parse_args(argv)


def compare_allocators(args, log) -> dict:
  """Our step's img/s under each allocator: a fresh process per measurement (an allocator is
  chosen when a process starts), the allocators alternating round by round; median per allocator."""

  names = [a.strip() for a in args.allocators.split(",") if a.strip()]
  bad = [a for a in names if a not in runtime.ALLOCATORS]
  if bad:
    raise SystemExit(
        f"error: unknown allocator(s) {', '.join(bad)}; choose from {', '.join(runtime.ALLOCATORS)}"
    )
  runs = {a: [] for a in names}
  for rnd in range(args.rounds):
    for a in names:
      env = {
          k: v
          for k, v in os.environ.items()
          if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", "GEN_MODELS_REEXEC")
      }
      env["GEN_MODELS_ALLOCATOR"] = a
      cmd = [
          sys.executable,
          "-m",
          "experiments.bench",
          "--models",
          args.models,
          "--batch",
          args.batch,
          "--rounds",
          "1",
          "--seconds",
          str(args.seconds),
          "--pause",
          str(args.pause),
          "--json",
      ]
      out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
      res = json.loads(out.stdout.strip().splitlines()[-1])
      for r in res["results"]:
        r["allocator"] = res.get("allocator", a)
      runs[a].append(res["results"])
      log(
          f"round {rnd + 1}: {a} ({res.get('allocator')}): "
          + ", ".join(
              f"{r['model']} b{r['batch']} {r['img_per_s']:,.0f} img/s"
              for r in res["results"]
              if r["framework"] == "jax"
          )
      )
  results = []
  for a, rounds in runs.items():
    for i, r in enumerate(rounds[0]):
      samples = [rr[i]["img_per_s"] for rr in rounds]
      results.append({**r, "img_per_s": statistics.median(samples), "img_per_s_rounds": samples})
  return {"results": results}


def matmul_gflops(n=2048, reps=10):

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    out = f(a)
  out.block_until_ready()
  return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


class JaxStep:
  """Our training step for an experiment's model at a batch size, on synthetic 28x28 data."""

  def __init__(self, exp_name, batch, impl="fast"):

    self.jax, self.loop, self.batch = jax, loop, batch
    cfg = config_lib.apply_overrides(
        registry.get(exp_name).config,
        {"data.name": "synthetic", "train.batch_size": batch, "model.impl": impl},
    )
    data = data_lib.load(cfg, log=lambda s: None)
    self.task = families.make_task(cfg, data, jax.random.key(0))
    self.data = jax.device_put(data["train"])
    self.hp = jax.tree.map(jnp.asarray, self.task.hparams)
    self.key = jax.random.key(2)
    self.state = self.task.init(jax.random.key(1))
    self.n = 0
    args = (self.state, self.data, self.key, jnp.int32(0), self.hp)
    kwargs = dict(step_fn=self.task.step, spec=self.task.spec, length=1)
    t = time.perf_counter()
    compiled = loop.run_chunk.lower(*args, **kwargs).compile()
    self.step_once()
    jax.block_until_ready(self.state)
    self.compile_s = time.perf_counter() - t
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops = float(cost.get("flops", 0.0)) if cost else 0.0

  def step_once(self):
    self.state, _ = self.loop.run_chunk(
        self.state,
        self.data,
        self.key,
        self.jax.numpy.int32(self.n),
        self.hp,
        step_fn=self.task.step,
        spec=self.task.spec,
        length=1,
    )
    self.n += 1

  def measure(self, seconds):
    self.step_once()  # one untimed step: caches and thread pools warm again
    self.jax.block_until_ready(self.state)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds or n < 3:
      self.step_once()
      n += 1
    self.jax.block_until_ready(self.state)
    return n / (time.perf_counter() - t)


class PeerStep:

  def __init__(self, module, arch, batch):
    self.batch = batch
    self.step = module.make_step(arch, batch)
    t = time.perf_counter()
    for _ in range(3):
      out = self.step()
    _sync(out)
    self.compile_s = time.perf_counter() - t

  def measure(self, seconds):
    _sync(self.step())  # one untimed step: caches and thread pools warm again
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds or n < 3:
      out = self.step()
      n += 1
    _sync(out)
    return n / (time.perf_counter() - t)


def _sync(out):
  """Waits for the step: TF returns (async) tensors; PyTorch eager has finished already."""
  first = out[0]
  if hasattr(first, "detach"):
    first.detach().item()
  else:
    first.numpy()


def bench_image_model(model, batch, args, log):
  """Alternating rounds of every framework for one (model, batch)."""
  runners = {("jax", "fast"): JaxStep(model, batch)}
  if args.reference:
    runners[("jax", "reference")] = JaxStep(model, batch, impl="reference")
  if args.peers:
    from experiments.peers import tf_gans, torch_gans  # pylint: disable=g-import-not-at-top

    runners[("tensorflow", "keras")] = PeerStep(tf_gans, model, batch)
    runners[("pytorch", "eager")] = PeerStep(torch_gans, model, batch)
  rates = {k: [] for k in runners}
  for r in range(args.rounds):
    for k, runner in runners.items():
      # PyTorch's OpenMP and TensorFlow's worker threads spin-wait for a while after their last
      # op; a short pause keeps them from eating the next framework's measuring time.
      time.sleep(args.pause)
      rates[k].append(runner.measure(args.seconds))
    log(
        f"  {model} batch {batch} round {r + 1}: "
        + ", ".join(f"{fw}/{v} {rates[(fw, v)][-1] * batch:.0f} img/s" for fw, v in runners)
    )
  out = []
  for (fw, variant), runner in runners.items():
    steps = statistics.median(rates[(fw, variant)])
    flops = getattr(runner, "flops", None)
    out.append({
        "model": model,
        "framework": fw,
        "variant": variant,
        "batch": batch,
        "img_per_s": steps * batch,
        "steps_per_s": steps,
        "compile_s": runner.compile_s,
        "gflop_per_s": flops * steps / 1e9 if flops else None,
        "rounds": [x * batch for x in rates[(fw, variant)]],
    })
  return out


def bench_gaussian1d(args, log):
  """The seed protocol, 3000 steps: our fused loop vs the seed's Keras loop."""

  cfg = registry.get("gaussian1d").config
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  dev = jax.device_put(data["train"])
  hp = jax.tree.map(jnp.asarray, task.hparams)
  chunk, total = 300, cfg.train.steps  # 100 epochs per dispatch

  def protocol():
    state = task.init(jax.random.key(1))
    for start in range(0, total, chunk):
      state, _ = loop.run_chunk(
          state,
          dev,
          jax.random.key(2),
          jnp.int32(start),
          hp,
          step_fn=task.step,
          spec=task.spec,
          length=chunk,
      )
    jax.block_until_ready(state)

  t = time.perf_counter()
  protocol()
  compile_s = time.perf_counter() - t
  state = task.init(jax.random.key(1))  # XLA counts a scan body once: cost one step
  cost = (
      loop.run_chunk.lower(
          state,
          dev,
          jax.random.key(2),
          jnp.int32(0),
          hp,
          step_fn=task.step,
          spec=task.spec,
          length=1,
      )
      .compile()
      .cost_analysis()
  )
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  walls, keras = [], []
  for r in range(args.rounds):
    t = time.perf_counter()
    protocol()
    walls.append(time.perf_counter() - t)
    if args.peers:
      from experiments.peers import keras_seed_1d  # pylint: disable=g-import-not-at-top

      epochs = 20
      keras.append(keras_seed_1d.run_epochs(epochs) / (3 * epochs) * total)
    log(
        f"  gaussian1d round {r + 1}: ours {walls[-1]:.3f} s / 3000 steps"
        + (f", Keras seed loop {keras[-1]:.1f} s (projected from 60 steps)" if keras else "")
    )
  wall = statistics.median(walls)
  examples = 1000 / 3  # real samples per step
  out = [{
      "model": "gaussian1d",
      "framework": "jax",
      "variant": "lax.scan x300",
      "batch": 333,
      "img_per_s": total * examples / wall,
      "steps_per_s": total / wall,
      "compile_s": compile_s,
      "gflop_per_s": float(cost.get("flops", 0)) * total / wall / 1e9 if cost else None,
      "protocol_wall_s": wall,
  }]
  if keras:
    kw = statistics.median(keras)
    out.append({
        "model": "gaussian1d",
        "framework": "keras-seed",
        "variant": "predict+train_on_batch",
        "batch": 333,
        "img_per_s": total * examples / kw,
        "steps_per_s": total / kw,
        "compile_s": None,
        "gflop_per_s": None,
        "protocol_wall_s": kw,
    })
  return out


def table(report) -> str:
  lines = [
      f"dense f32 matmul (2048^3): {report['matmul_gflop_per_s']:.0f} GFLOP/s",
      "",
      "| model | batch | framework | img/s | steps/s | compile s | GFLOP/s | ours / theirs |",
      "|---|---|---|---|---|---|---|---|",
  ]
  ours = {
      (r["model"], r["batch"]): r
      for r in report["results"]
      if r["framework"] == "jax" and r["variant"] != "reference"
  }
  for r in report["results"]:
    base = ours.get((r["model"], r["batch"]))
    ratio = f"{base['img_per_s'] / r['img_per_s']:.2f}x" if base and r is not base else ""
    fw = r["framework"] + (f" ({r['variant']})" if r.get("variant") else "")
    gf = f"{r['gflop_per_s']:.0f}" if r.get("gflop_per_s") else "-"
    cs = f"{r['compile_s']:.1f}" if r.get("compile_s") is not None else "-"
    extra = f" ({r['protocol_wall_s']:.3g} s / 3000 steps)" if "protocol_wall_s" in r else ""
    lines.append(
        f"| {r['model']} | {r['batch']} | {fw} | {r['img_per_s']:,.0f}{extra} | "
        f"{r['steps_per_s']:,.1f} | {cs} | {gf} | {ratio} |"
    )
  return "\n".join(lines)


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  log = (
      (lambda s: print(s, file=sys.stderr, flush=True))
      if args.json
      else (lambda s: print(s, flush=True))
  )
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = [m for m in models if m not in IMAGE_MODELS + ("gaussian1d",)]
  if unknown:
    print(
        f"error: unknown model(s) {', '.join(unknown)}; choose from gaussian1d,"
        f" {', '.join(IMAGE_MODELS)}",
        file=sys.stderr,
    )
    return 2
  try:
    batches = [int(b) for b in args.batch.split(",") if b.strip()]
  except ValueError:
    batches = []
  if not batches or min(batches) < 1 or (args.rounds < 1 or args.seconds <= 0):
    print(
        f"error: --batch {args.batch!r} --rounds {args.rounds} --seconds {args.seconds}: give"
        " comma-separated batch sizes >= 1 (e.g. --batch 64,256), --rounds >= 1 and --seconds"
        " > 0.",
        file=sys.stderr,
    )
    return 2

  try:
    runtime.check_environment()
    runtime.check_backend()
  except RunError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.draw_samples:

    report = bench_eval.draws(args.draw_samples, args.data, args.rounds, log)
    print(json.dumps(report, indent=1) if args.json else bench_eval.draw_table(report))
    return 0
  if args.eval_samples:

    try:
      report = bench_eval.compare(args, log)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    print(json.dumps(report, indent=1) if args.json else bench_eval.table(report))
    return 0
  if args.allocators:
    report = compare_allocators(args, log)
    lines = ["| model | batch | allocator | img/s (median) | rounds |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['model']} | {r['batch']} | {r['allocator']} | {r['img_per_s']:,.0f} | "
        + ", ".join(f"{v:,.0f}" for v in r["img_per_s_rounds"])
        + " |"
        for r in report["results"]
    ]
    print(json.dumps(report) if args.json else "\n".join(lines), flush=True)
    return 0
  results = []
  mm = matmul_gflops()
  if "gaussian1d" in models:
    results += bench_gaussian1d(args, log)
  for model in models:
    if model != "gaussian1d":
      for batch in batches:
        results += bench_image_model(model, batch, args, log)

  report = {"results": results, "matmul_gflop_per_s": mm, "allocator": runtime.active_allocator()}
  print(json.dumps(report) if args.json else table(report), flush=True)
  return 0
