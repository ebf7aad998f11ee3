"""Score a saved run's latest checkpoint, or any set of images, with the project's metrics.

  python -m experiments.evaluate --run runs/<exp>/<arm>/seed<k> [--n 10000]
  python -m experiments.evaluate --npz FILE.npz --data fashion_mnist [--data-dir DIR]

--run prints the metrics as JSON and writes them to <run>/eval_step<k>.json. --npz scores images
from anywhere (uint8 (N, 28, 28) under the key `images`, e.g. another code base's samples) with
the same feature-extractor ensemble and test split as the project's runs, so the numbers share a
scale with this repository's reports.
"""

import argparse
import json
import os
import sys
import time
import zipfile
import zlib

import numpy as np

from experiments import cli
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import rundir
from gen_models import runs
from gen_models.config import ConfigError
from gen_models.errors import RunError
from gen_models.metrics import features


def _score_npz(path, dataset, data_dir):

  how = "Save the images with np.savez(FILE, images=uint8 array of shape (N, 28, 28))."
  try:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
      raise RunError(
          f"{path} is a single .npy array, not an .npz archive with an 'images' entry. {how}"
      )
    with loaded as f:
      if "images" not in f.files:
        raise RunError(
            f"{path} has no array named 'images' (it has: {', '.join(f.files) or 'none'}). {how}"
        )
      images = f["images"]
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
    raise RunError(
        f"{path} cannot be read as an .npz file ({type(e).__name__}: {str(e)[:200]}): it is"
        f" damaged, truncated or of another format. {how}"
    ) from None
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
    raise RunError(
        f"{path}: 'images' is {images.dtype} {images.shape}; expected uint8 (N, 28, 28) with pixel"
        " values 0..255 (convert floats in [0, 1] with (x * 255).round().astype(np.uint8))."
    )
  if len(images) < config_lib.MIN_EVAL_SAMPLES_IMAGES:
    raise RunError(
        f"{path} holds {len(images)} images; the metrics need at least "
        f"{config_lib.MIN_EVAL_SAMPLES_IMAGES}."
    )
  data = data_lib.load_images(dataset, data_dir, log=lambda s: None)
  ensemble = features.get(dataset, data, log=lambda s: print(s, file=sys.stderr))
  metrics = ensemble.metrics(images)
  return {
      "npz": path,
      "dataset": dataset,
      "images": int(len(images)),
      "extractors": ensemble.info(),
      "reference": f"the first {metrics['num_samples']} images of the {dataset} test split",
      "metrics": metrics,
  }


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.evaluate",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--run", help="a run directory, runs/<exp>/<arm>/seed<k>")
  src.add_argument("--npz", help="an .npz file with uint8 images (N, 28, 28) under 'images'")
  p.add_argument(
      "--n",
      type=int,
      default=None,
      help="--run: generated samples (default: the run's eval.num_samples)",
  )
  p.add_argument(
      "--data", choices=("mnist", "fashion_mnist"), help="--npz: the dataset the images imitate"
  )
  p.add_argument("--data-dir", default="", help="--npz: as data.dir")
  return p.parse_args(argv), p


def main(argv=None) -> int:
  args, p = parse_args(sys.argv[1:] if argv is None else argv)

  def work():
    if args.npz:
      if not args.data:
        raise RunError(
            "--npz needs --data mnist|fashion_mnist: the dataset whose test split and feature "
            "extractors score the images."
        )
      print(json.dumps(_score_npz(args.npz, args.data, args.data_dir), indent=1))
      return 0
    # it writes eval_step<k>.json there: check before the work, not after it
    if os.path.isdir(args.run):
      rundir.ensure_writable(args.run, "The run directory (--run), where the scores are written,")
    cfg, state, data, key, step = runs.load_run(args.run)
    if args.n is not None:  # validated like --set eval.num_samples (minimum sample counts)
      cfg = families.validate(config_lib.set_key(cfg, "eval.num_samples", args.n))
      if args.n == 0:
        raise ConfigError(
            "--n 0 scores nothing: give the number of samples to generate (at least "
            f"{config_lib.MIN_EVAL_SAMPLES_IMAGES} for images)."
        )
    t = time.perf_counter()
    metrics = families.of(cfg).evaluate_saved(cfg, state, data, key)
    out = {"run": args.run, "step": step, "eval_s": time.perf_counter() - t, "metrics": metrics}
    info = families.of(cfg).extractor_info(cfg, data)
    if info:
      out["extractors"] = info
    rundir.write_atomic(os.path.join(args.run, f"eval_step{step}.json"), json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0

  return cli.guarded(cli.checked_backend(work))
