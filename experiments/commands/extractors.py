"""Train the feature-extractor ensemble of a dataset and ship it with the package.

  python -m experiments.extractors --dataset fashion_mnist [--data-dir DIR]
  python -m experiments.extractors --show fashion_mnist

Writes gen_models/metrics/weights/<dataset>-lenet-v<k>-s<seed>.npz and their manifest.json entry
(sha256, test accuracy). The image metrics of every later run load these files and check their
hashes, so FIDs from different machines are computed by the very same networks.
"""

import argparse
import json
import sys

from experiments import cli
from gen_models import data as data_lib
from gen_models.metrics import features

# the registry's 28x28 image sets (gen_models.data.DATASETS)
_IMAGE_SETS = tuple(n for n, d in data_lib.DATASETS.items() if d.read is data_lib.load_images_of)


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog="python -m experiments.extractors",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--dataset", choices=_IMAGE_SETS, help="train and ship this dataset's ensemble")
  p.add_argument("--data-dir", default="", help="as data.dir")
  p.add_argument(
      "--show",
      choices=_IMAGE_SETS,
      help="print the ensemble a run on this dataset would use",
  )
  return p.parse_args(argv), p


def main(argv=None) -> int:
  args, p = parse_args(sys.argv[1:] if argv is None else argv)

  if not args.show and not args.dataset:
    p.error("give --dataset or --show")

  def work():
    if args.show:
      data = data_lib.load_images(args.show, args.data_dir, log=lambda s: None)
      print(json.dumps(features.get(args.show, data).info(), indent=1))
      return 0
    data = data_lib.load_images(args.dataset, args.data_dir)
    print(json.dumps(features.write_shipped(args.dataset, data), indent=1))
    return 0

  return cli.guarded(cli.checked_backend(work))
