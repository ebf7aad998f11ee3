"""Why does a GAN's k-NN recall say what it says? Diagnostics for one saved run.

  python -m experiments.diagnose --run runs/<exp>/<arm>/seed<k> [--n 10000]

Under each feature extractor: precision/recall at several k, the median k-NN radius of the real
and the generated features (small generated radii = samples crowded together: low diversity),
the median distance from a real image to its nearest generated one, and the same metrics after
a 3x3 median filter on the generated images (if recall recovers, pixel-level speckle pushes the
samples off the real manifold: a generator artifact, not a recall bug). Prints JSON.
"""

import argparse
import json
import sys

import jax
import numpy as np
from scipy import ndimage

from experiments import cli
from gen_models import config as config_lib
from gen_models import families
from gen_models import runs
from gen_models.errors import RunError
from gen_models.metrics import features
from gen_models.metrics import fid


def _radii(x, k):

  return fid._knn_radii(np.asarray(x, np.float32), k)  # pylint: disable=protected-access


def _nearest(queries, points, block=2048):

  q, p = np.asarray(queries, np.float32), np.asarray(points, np.float32)
  # pylint: disable-next=protected-access
  return np.concatenate(
      [np.sqrt(fid._sq_dists(q[i : i + block], p).min(1)) for i in range(0, len(q), block)]
  )


def diagnose(images_u8, ensemble, ks=(3, 10, 50)) -> dict:

  n = min(len(images_u8), len(ensemble.data["test"]["x"]))
  filtered = np.stack([ndimage.median_filter(im, size=3) for im in images_u8[:n]])
  out = []
  for e, member in enumerate(ensemble.members):
    real = ensemble.real(e, n)[1]
    row = {"extractor": member.name}
    for name, imgs in (("generated", images_u8[:n]), ("median_filtered", filtered)):
      feats = member(imgs)[1]
      row[name] = {
          f"k{k}": dict(zip(("precision", "recall"), fid.precision_recall(real, feats, k)))
          for k in ks
      }
      row[name]["fid"] = fid.fid(real, feats)
      row[name]["median_knn_radius_k3"] = float(np.median(_radii(feats, 3)))
      row[name]["median_real_to_nearest_generated"] = float(np.median(_nearest(real, feats)))
    row["real_median_knn_radius_k3"] = float(np.median(_radii(real, 3)))
    out.append(row)
  return {"images": n, "per_extractor": out}


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.diagnose",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--run", required=True)
  p.add_argument(
      "--n", type=int, default=10000, help="generated images (at least 200; default 10000)"
  )
  return p.parse_args(argv), p


def main(argv=None) -> int:
  args, p = parse_args(sys.argv[1:] if argv is None else argv)

  minimum = config_lib.MIN_EVAL_SAMPLES_IMAGES

  def work():
    if args.n < minimum:
      raise RunError(
          f"--n {args.n} is too few: the diagnostics (FID, k-NN radii up to k=50) need at least "
          f"{minimum} generated images (the default is 10000)."
      )

    cfg, state, data, key, step = runs.load_run(args.run)
    family = families.of(cfg)
    if family.sample is None:
      raise RunError(
          f"{args.run} (model.arch={cfg.model.arch}) has no generated images:"
          f" {family.cannot_sample}."
      )
    if len(data["test"]["x"]) < minimum:
      raise RunError(
          f"the {cfg.data.name} test split has {len(data['test']['x'])} images; the diagnostics"
          f" need at least {minimum}."
      )
    images = family.sample(cfg, state, jax.random.fold_in(families.eval_key(key), 3), args.n)
    out = {
        "run": args.run,
        "step": step,
        **diagnose(images, features.get(cfg.data.name, data, lambda s: None)),
    }
    print(json.dumps(out, indent=1))
    return 0

  return cli.guarded(cli.checked_backend(work))
