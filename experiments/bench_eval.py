"""`python -m experiments.bench --eval-samples 2000,10000`: one dcgan evaluation's image metrics
(the 3 shipped extractors), today's numpy path against the device path, per component and in
total, at each sample count, and a group of 4 runs against 4 single evaluations; each on one
pinned core and on all cores (a child process per setting, `--cores 1,all`).

Per component and extractor (summed over the extractors): numpy `features` (the LeNet forward,
results to the host), `fid`, `kid`, `pr` (precision/recall), `dc` (density/coverage), `class`;
device `features` (kept on the device), `fid` (mean/cov on the device, the square root on the
host), `kid`, `prdc` (precision, recall, density and coverage from one set of shared distances),
`class`. `total` is each path as the training loop runs it (the device one: Ensemble.group_metrics,
features included). The real side (features, radii, floors) is computed in a warm-up round first,
as every process does once, and timed apart (`reference_s`).
"""

import json
import os
import statistics
import subprocess
import sys
import time

GROUP = 4


def _timed(fn):
  t = time.perf_counter()
  out = fn()
  return time.perf_counter() - t, out


def _dcgan(data_name, overrides=None):
  """(cfg, data, task) of the dcgan experiment on this dataset, with these overrides."""
  import jax  # pylint: disable=g-import-not-at-top
  from experiments import registry  # pylint: disable=g-import-not-at-top
  from gen_models import config as config_lib  # pylint: disable=g-import-not-at-top
  from gen_models import data as data_lib  # pylint: disable=g-import-not-at-top
  from gen_models import families  # pylint: disable=g-import-not-at-top

  base = config_lib.apply_overrides(registry.get("dcgan").config, {"data.name": data_name})
  cfg = families.validate(config_lib.apply_overrides(base, overrides or {}))
  data = data_lib.load(cfg, log=lambda s: None)
  return cfg, data, families.make_task(cfg, data, jax.random.key(0))


def measure(counts, data_name, rounds, pause, log) -> dict:
  """The measurements in this process (its CPU affinity as it is)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gen_models.families import gan  # pylint: disable=g-import-not-at-top
  from gen_models.families import image_gan  # pylint: disable=g-import-not-at-top
  from gen_models.metrics import device  # pylint: disable=g-import-not-at-top
  from gen_models.metrics import features  # pylint: disable=g-import-not-at-top
  from gen_models.metrics import fid  # pylint: disable=g-import-not-at-top

  cfg, data, task = _dcgan(data_name)
  ens = features.get(data_name, data, lambda s: None)
  g = gan.generator_of(task.init(jax.random.key(0)))
  images = {}
  for n in counts:  # GROUP runs' worth of images (an untrained G: different latents per run)
    images[n] = np.stack(
        [image_gan.generate_u8(cfg, g, jax.random.key(100 + r), n) for r in range(GROUP)]
    )

  def numpy_parts(x, n):
    parts = dict.fromkeys(("features", "fid", "kid", "pr", "dc", "class"), 0.0)
    for k, member in enumerate(ens.members):
      real = ens.real(k, n)[1]
      s, (probs, feats) = _timed(lambda: member(x))
      parts["features"] += s
      parts["fid"] += _timed(lambda: fid.fid(real, feats))[0]
      parts["kid"] += _timed(lambda: fid.kid(real, feats))[0]
      parts["pr"] += _timed(lambda: fid.precision_recall(real, feats))[0]
      parts["dc"] += _timed(lambda: fid.density_coverage(real, feats))[0]
      parts["class"] += _timed(lambda: fid.class_stats(probs))[0]
    return parts

  def device_parts(x, n):
    parts = dict.fromkeys(("features", "fid", "kid", "prdc", "class"), 0.0)
    xd = jax.device_put(x[None])
    for k, member in enumerate(ens.members):
      ref = ens.reference(k, n)
      s, (probs, feats) = _timed(
          lambda: jax.block_until_ready(features.predict_device(member.model, member.params, xd[0]))
      )
      parts["features"] += s
      for part in ("fid", "kid", "prdc", "class"):
        parts[part] += _timed(lambda: device.time_component(ref, feats[None], probs[None], part))[0]
      parts["fid"] += _timed(lambda: fid.frechet_distance(ref.mu, ref.cov, ref.mu, ref.cov))[0]
    return parts

  out = {"counts": {}}
  for n in counts:  # warm-up: compilation and the real side, once per process
    x = images[n]
    t0 = time.perf_counter()
    ens.metrics_numpy(x[0])
    numpy_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens.group_metrics(x[:1])
    device_ref = time.perf_counter() - t0
    ens.group_metrics(x)  # the other programs' compilations
    device_parts(x[0], n)
    out["counts"][n] = {"reference_s": {"numpy": numpy_ref, "device": device_ref}}
    log(f"warm {n:,}: numpy first evaluation {numpy_ref:.1f}s (real side included)")
  rows = {n: {"numpy": [], "device": [], "group": [], "singles": []} for n in counts}
  for r in range(rounds):
    for n in counts:
      x = images[n]
      time.sleep(pause)
      p = numpy_parts(x[0], n)
      p["total"] = _timed(lambda: ens.metrics_numpy(x[0]))[0]
      rows[n]["numpy"].append(p)
      time.sleep(pause)
      d = device_parts(x[0], n)
      d["total"] = _timed(lambda: ens.group_metrics(x[:1]))[0]
      rows[n]["device"].append(d)
      rows[n]["group"].append(_timed(lambda: ens.group_metrics(x))[0])
      rows[n]["singles"].append(sum(_timed(lambda: ens.group_metrics(x[i : i + 1]))[0]
                                    for i in range(GROUP)))  # fmt: skip
      log(
          f"round {r + 1} {n:,} samples: numpy {p['total']:.2f}s, device {d['total']:.2f}s,"
          f" group of {GROUP} {rows[n]['group'][-1]:.2f}s vs {GROUP} singles"
          f" {rows[n]['singles'][-1]:.2f}s"
      )
  med = lambda rs, k: statistics.median(r[k] for r in rs)
  for n in counts:
    rs = rows[n]
    out["counts"][n].update({
        "numpy": {k: med(rs["numpy"], k) for k in rs["numpy"][0]},
        "device": {k: med(rs["device"], k) for k in rs["device"][0]},
        "group_s": statistics.median(rs["group"]),
        "singles_s": statistics.median(rs["singles"]),
        "rounds": rounds,
    })
  out["extractors"] = len(ens.members)
  out["group"] = GROUP
  return out


def _cores(spec: str) -> list:
  avail = sorted(os.sched_getaffinity(0))
  out = []
  for c in spec.split(","):
    c = c.strip()
    if c == "all":
      out.append(("all", avail))
    elif c.isdigit() and 1 <= int(c) <= len(avail):
      out.append((c, avail[-int(c) :]))
    else:
      raise ValueError(f"--cores {spec!r}: give 'all' or a count from 1 to {len(avail)}")
  return out


def compare(args, log) -> dict:
  """Runs `measure` in a child process per core setting (pinned with sched_setaffinity)."""
  counts = [int(c) for c in args.eval_samples.split(",") if c.strip()]
  report = {"data": args.data, "settings": []}
  for label, cores in _cores(args.cores):
    log(f"--- {label} core(s): {cores}")
    code = (
        "import json, sys; from experiments import bench_eval as b;"
        f" print(json.dumps(b.measure({counts!r}, {args.data!r}, {args.rounds}, {args.pause},"
        " lambda s: print(s, file=sys.stderr, flush=True))))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda c=cores: os.sched_setaffinity(0, c),
        check=True,
    )
    report["settings"].append({"cores": label, **json.loads(p.stdout.strip().splitlines()[-1])})
  return report


def table(report) -> str:
  lines = [
      (
          f"dcgan evaluation on {report['data']}, {report['settings'][0]['extractors']} extractors,"
          " seconds (median over rounds):"
      ),
      "",
      "| cores | samples | path | features | FID | KID | P/R | D/C | class | total | speed-up |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for s in report["settings"]:
    for n, c in s["counts"].items():
      np_, dv = c["numpy"], c["device"]
      lines.append(
          f"| {s['cores']} | {int(n):,} | numpy | {np_['features']:.2f} | {np_['fid']:.2f} |"
          f" {np_['kid']:.2f} | {np_['pr']:.2f} | {np_['dc']:.2f} | {np_['class']:.3f} |"
          f" {np_['total']:.2f} | |"
      )
      lines.append(
          f"| {s['cores']} | {int(n):,} | device | {dv['features']:.2f} | {dv['fid']:.2f} |"
          f" {dv['kid']:.2f} | {dv['prdc']:.2f} (P/R/D/C shared) | | {dv['class']:.3f} |"
          f" {dv['total']:.2f} | {np_['total'] / dv['total']:.1f}x |"
      )
  group = report["settings"][0]["group"]
  lines += [
      "",
      (
          f"| cores | samples | group of {group} runs | as single runs | first evaluation (real"
          " side): numpy / device |"
      ),
      "|---|---|---|---|---|",
  ]
  for s in report["settings"]:
    for n, c in s["counts"].items():
      lines.append(
          f"| {s['cores']} | {int(n):,} | {c['group_s']:.2f} s | {c['singles_s']:.2f} s"
          f" ({c['singles_s'] / c['group_s']:.2f}x) | {c['reference_s']['numpy']:.1f} s /"
          f" {c['reference_s']['device']:.1f} s |"
      )
  return "\n".join(lines)


def draws(n, data_name, rounds, log) -> dict:
  """Seconds to draw GROUP dcgan runs' n evaluation images each (image_gan's eval_images, what
  loop._group_images runs): GROUP single draws, one vmapped program (the accelerator path), one
  lax.map program; median over rounds, after a warm-up."""
  import jax  # pylint: disable=g-import-not-at-top

  cfg, _, task = _dcgan(data_name, {"eval.num_samples": n})
  keys = jax.numpy.stack([jax.random.key(r) for r in range(GROUP)])
  states = jax.vmap(task.init)(keys)
  step = cfg.train.steps
  draw = lambda s, k: task.eval_images(s, k, step)
  ways = {
      "singles": lambda: [
          draw(jax.tree.map(lambda x, r=r: x[r], states), keys[r]) for r in range(GROUP)
      ],
      "vmap": lambda: jax.vmap(draw)(states, keys),
      "lax.map": lambda: jax.lax.map(lambda a: draw(*a), (states, keys)),
  }
  out = {}
  for name, fn in ways.items():
    jax.block_until_ready(fn())
    out[name] = statistics.median(
        _timed(lambda fn=fn: jax.block_until_ready(fn()))[0] for _ in range(rounds)
    )
    log(f"{name}: {out[name]:.2f}s")
  return {"samples": n, "group": GROUP, "backend": jax.default_backend(), "seconds": out}


def draw_table(report) -> str:
  s = report["seconds"]
  return "\n".join([
      (
          f"drawing {report['group']} dcgan runs' {report['samples']:,} evaluation images each"
          f" ({report['backend']}), seconds (median):"
      ),
      "",
      "| single draws | vmap | lax.map |",
      "|---|---|---|",
      (
          f"| {s['singles']:.2f} | {s['vmap']:.2f} ({s['vmap'] / s['singles']:.2f}x) |"
          f" {s['lax.map']:.2f} ({s['lax.map'] / s['singles']:.2f}x) |"
      ),
  ])
