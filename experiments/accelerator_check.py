"""What one accelerator does for the card's sweeps, in under 10 minutes:

  python -m experiments.accelerator_check [--groups 1,11,33] [--samples 2000,10000] [--json]
  experiments/accelerator_check.sh            (the same, with the environment set for a bare box)

1. `dcgan` training throughput at batch 32: one run against vmapped groups of 11 and 33 runs (the
   card sweep's first look is 3 arms x 11 seeds), img/s over all runs of the group.
2. One group evaluation (generation on the device, the 3 shipped Fashion-MNIST extractors, every
   image metric) at 2,000 and 10,000 samples per run, for the largest group; the reference side
   (real features, k-NN radii) timed apart, as a process pays it once.
3. The projected wall time of the card sweep's first look (33 runs x 4,000 steps, evaluations
   every 500 steps: 2,000 samples outside the headline window, 10,000 in it) trained and evaluated
   as one vmapped group.

Needs only jax, flax, optax, numpy and scipy: no network, no dataset (synthetic images stand in
for Fashion-MNIST's; the timings do not depend on the pixels), no wandb, tensorflow-datasets,
orbax, matplotlib or pillow; it writes nothing but the real-data floors' cache (GEN_MODELS_CACHE).
`--toy` runs it at toy size (CI does, on the CPU: tests/test_accelerator_check.py).
"""

import argparse
import json
import sys
import time


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.accelerator_check",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--groups", default="1,11,33", help="vmapped group sizes to time")
  p.add_argument("--samples", default="2000,10000", help="samples per run for the evaluation")
  p.add_argument("--seconds", type=float, default=10.0, help="timing per group size")
  p.add_argument("--toy", action="store_true", help="groups 1,2, 200/400 samples, 1 s (for CI)")
  p.add_argument("--json", action="store_true", help="print one JSON object")
  args = p.parse_args(argv)
  if args.toy:
    args.groups, args.samples, args.seconds = "1,2", "200,400", 1.0
  try:
    args.groups = [int(g) for g in args.groups.split(",") if g.strip()]
    args.samples = [int(s) for s in args.samples.split(",") if s.strip()]
  except ValueError:
    p.error("--groups and --samples take comma-separated integers")
  if not args.groups or min(args.groups) < 1 or not args.samples or min(args.samples) < 200:
    p.error("--groups needs sizes >= 1 and --samples counts >= 200 (the metrics' minimum)")
  return args


def _setup(batch):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments import registry  # pylint: disable=g-import-not-at-top
  from gen_models import config as config_lib  # pylint: disable=g-import-not-at-top
  from gen_models import data as data_lib  # pylint: disable=g-import-not-at-top
  from gen_models import families  # pylint: disable=g-import-not-at-top

  exp = registry.get("dcgan_label_smoothing")  # the card sweep: 3 arms, the book's protocol
  cfg = config_lib.apply_overrides(
      exp.config, {"data.name": "synthetic", "train.batch_size": batch}
  )
  cfg = families.validate(cfg)
  data = data_lib.synthetic(num_train=4096, num_test=10000)
  task = families.make_task(cfg, data, jax.random.key(0))
  return jax, jnp, exp, cfg, data, task


def train_throughput(groups, batch, seconds, log) -> list:
  """img/s of the dcgan step for each vmapped group size (chunks of the backend's auto length)."""
  jax, jnp, _, cfg, data, task = _setup(batch)
  from gen_models import loop  # pylint: disable=g-import-not-at-top

  length = loop.scan_chunk(cfg)
  train = jax.device_put(data["train"])
  out = []
  for r in groups:
    keys = jax.random.split(jax.random.key(1), r)
    state = jax.vmap(task.init)(keys)
    hp = jax.tree.map(lambda v: jnp.broadcast_to(jnp.asarray(v), (r,) + jnp.shape(v)), task.hparams)
    rng = jax.random.split(jax.random.key(2), r)
    kw = dict(step_fn=task.step, spec=task.spec, length=length, shared_data=True)
    t = time.perf_counter()
    state, _ = loop.run_chunk_many(state, train, rng, jnp.int32(0), hp, **kw)
    jax.block_until_ready(state)
    compile_s, step, t = time.perf_counter() - t, length, time.perf_counter()
    while time.perf_counter() - t < seconds or step < 3 * length:
      state, _ = loop.run_chunk_many(state, train, rng, jnp.int32(step), hp, **kw)
      # waited for per chunk: dispatch is asynchronous, so an unwaited loop queues a second's
      # worth of dispatches (hundreds of chunks on the CPU) and then runs them all
      jax.block_until_ready(state)
      step += length
    steps_per_s = (step - length) / (time.perf_counter() - t)
    out.append({
        "runs": r,
        "batch": batch,
        "steps_per_s": steps_per_s,
        "img_per_s": steps_per_s * r * batch,
        "compile_s": compile_s,
        "steps_per_dispatch": length,
    })
    log(
        f"train: {r} run(s) x batch {batch}: {out[-1]['img_per_s']:,.0f} img/s ({steps_per_s:.1f}"
        " steps/s)"
    )
    del state
  return out


def group_evaluation(runs, samples, log) -> list:
  """Seconds for one evaluation of `runs` runs at each sample count: generation on the device and
  Ensemble.group_metrics under the shipped extractors (reference side timed apart)."""
  jax, jnp, _, cfg, data, task = _setup(32)
  from gen_models.families import gan  # pylint: disable=g-import-not-at-top
  from gen_models.families import image_gan  # pylint: disable=g-import-not-at-top
  from gen_models.metrics import features  # pylint: disable=g-import-not-at-top

  ens = features.get("fashion_mnist", data, log=lambda s: None)  # the shipped weights
  states = [task.init(jax.random.key(10 + r)) for r in range(runs)]
  out = []
  for n in samples:

    def one():
      images = jnp.stack([
          image_gan.generate_u8_device(cfg, gan.generator_of(s), jax.random.key(3), n)
          for s in states
      ])
      return ens.group_metrics(images)

    t = time.perf_counter()
    one()  # compilation and the reference side (real features, radii, floors)
    first = time.perf_counter() - t
    t = time.perf_counter()
    one()
    seconds = time.perf_counter() - t
    out.append({"runs": runs, "samples": n, "seconds": seconds, "first_s": first})
    log(
        f"evaluation: {runs} run(s) x {n:,} samples: {seconds:.1f}s (first, with the reference:"
        f" {first:.1f}s)"
    )
  return out


def projection(exp, cfg, train, evals) -> dict:
  """The card sweep's first look (arms x first-look seeds runs) as one vmapped group."""
  from gen_models import config as config_lib  # pylint: disable=g-import-not-at-top

  runs = len(exp.arms) * exp.seeds_on_demand[0]
  group = max(train, key=lambda t: t["runs"])
  steps = config_lib.eval_steps(cfg)
  counts = [config_lib.eval_samples(cfg, s) for s in steps]
  seconds = {e["samples"]: e["seconds"] for e in evals}
  scale = runs / group["runs"]  # group evaluations scale with the runs scored
  eval_s = sum(seconds.get(n, max(seconds.values()) * n / max(seconds)) for n in counts) * scale
  train_s = cfg.train.steps / group["steps_per_s"] * scale
  return {
      "runs": runs,
      "steps": cfg.train.steps,
      "evaluations_per_run": len(steps),
      "samples": counts,
      "group_measured": group["runs"],
      "train_s": train_s,
      "eval_s": eval_s,
      "total_s": train_s + eval_s,
      "eval_share": eval_s / (train_s + eval_s),
  }


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  log = lambda s: print(s, file=sys.stderr if args.json else sys.stdout, flush=True)
  import jax  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  log(f"devices: {jax.devices()}")
  train = train_throughput(args.groups, 32, args.seconds, log)
  evals = group_evaluation(max(args.groups), args.samples, log)
  _, _, exp, cfg, _, _ = _setup(32)
  proj = projection(exp, cfg, train, evals)
  report = {
      "device": str(jax.devices()[0]),
      "backend": jax.default_backend(),
      "train": train,
      "evaluation": evals,
      "first_look": proj,
      "check_s": time.perf_counter() - t0,
  }
  if args.json:
    print(json.dumps(report, indent=1))
    return 0
  base = train[0]["img_per_s"]
  log("\n| runs in the group | img/s (all runs) | vs 1 run | steps/s | compile s |")
  log("|---|---|---|---|---|")
  for t in train:
    log(
        f"| {t['runs']} | {t['img_per_s']:,.0f} | {t['img_per_s'] / base:.1f}x |"
        f" {t['steps_per_s']:.1f} | {t['compile_s']:.1f} |"
    )
  log("\n| group evaluation | seconds | first (with the reference side) |")
  log("|---|---|---|")
  for e in evals:
    log(
        f"| {e['runs']} runs x {e['samples']:,} samples | {e['seconds']:.1f} | {e['first_s']:.1f} |"
    )
  log(
      f"\nFirst look of the card sweep ({proj['runs']} runs x {proj['steps']:,} steps,"
      f" {proj['evaluations_per_run']} evaluations each), projected from the group of"
      f" {proj['group_measured']}: training {proj['train_s'] / 60:.1f} min, evaluation"
      f" {proj['eval_s'] / 60:.1f} min, total {proj['total_s'] / 60:.1f} min (evaluation"
      f" {proj['eval_share']:.0%}). This check took {report['check_s']:.0f} s."
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
