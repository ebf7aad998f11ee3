"""Write generated images from a saved run, for scoring with other tools.

  python -m experiments.sample --run runs/<exp>/<arm>/seed<k> --n 10000 --out FILE.npz [--seed 0]

FILE.npz holds `images`: uint8 (N, 28, 28), the generator's output mapped to 0..255 exactly as the
evaluation sees it (tanh outputs via (x + 1) / 2), and `step`: the checkpoint's training step.
"""

import argparse
import sys

import jax
import numpy as np

from experiments import cli
from gen_models import families
from gen_models import runs
from gen_models.errors import RunError


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.sample",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--run", required=True, help="a run directory, runs/<exp>/<arm>/seed<k>")
  p.add_argument("--n", type=int, default=10000)
  p.add_argument("--out", required=True, help="output .npz file")
  p.add_argument("--seed", type=int, default=0, help="sampling seed (latent noise)")
  return p.parse_args(argv), p


def main(argv=None) -> int:
  args, p = parse_args(sys.argv[1:] if argv is None else argv)

  def work():
    if args.n < 1:
      raise RunError("--n must be at least 1.")
    cli.check_writable_file(args.out, "The directory of --out")  # before the work, not after it

    cfg, state, _, _, step = runs.load_run(args.run)
    family = families.of(cfg)
    if family.sample is None:
      raise RunError(
          f"{args.run} (model.arch={cfg.model.arch}) cannot be sampled: {family.cannot_sample}."
      )
    images = family.sample(cfg, state, jax.random.key(args.seed), args.n)
    np.savez_compressed(args.out, images=images, step=step)
    print(f"wrote {args.out}: images uint8 {images.shape} from step {step} of {args.run}")
    return 0

  return cli.guarded(cli.checked_backend(work))
