"""Training throughput (`python -m experiments.bench`): our jitted step beside the same step in
TensorFlow and PyTorch (--peers), the 1-D GAN's whole seed protocol, and the machine's dense-matmul
FLOP/s, with the table they print."""

import statistics
import time

import jax
import jax.numpy as jnp

from experiments import registry
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import loop

IMAGE_MODELS = ("mlp_gan", "dcgan", "dcgan_transpose", "dcgan_atienza")


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
