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


from experiments import bench_eval
from experiments import bench_train
from gen_models import runtime
from gen_models.errors import RunError


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.bench",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--models", default="gaussian1d," + ",".join(bench_train.IMAGE_MODELS))
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


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  log = (
      (lambda s: print(s, file=sys.stderr, flush=True))
      if args.json
      else (lambda s: print(s, flush=True))
  )
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = [m for m in models if m not in bench_train.IMAGE_MODELS + ("gaussian1d",)]
  if unknown:
    print(
        f"error: unknown model(s) {', '.join(unknown)}; choose from gaussian1d,"
        f" {', '.join(bench_train.IMAGE_MODELS)}",
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
  mm = bench_train.matmul_gflops()
  if "gaussian1d" in models:
    results += bench_train.bench_gaussian1d(args, log)
  for model in models:
    if model != "gaussian1d":
      for batch in batches:
        results += bench_train.bench_image_model(model, batch, args, log)

  report = {"results": results, "matmul_gflop_per_s": mm, "allocator": runtime.active_allocator()}
  print(json.dumps(report) if args.json else bench_train.table(report), flush=True)
  return 0
