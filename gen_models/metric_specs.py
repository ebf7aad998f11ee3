"""One declaration per metric: what each family's evaluation reports and how it is read.

A MetricSpec says how a metric is labelled, which way is better, whether every arm is compared on
it (a verdict metric), whether the console prints it at each evaluation and whether it has a
real-data floor (<name>_floor). The families' report tables, verdict metrics and floors and the
loop's console line are derived from these tuples. Adding an image metric: its function (in
gen_models/metrics/), its MetricSpec in IMAGE, its sentence in the family's notes and
docs/metrics.md, and a test.
"""

import dataclasses
from typing import Optional

from gen_models import metric_names as names


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  name: str
  label: str  # the report table's column header
  lower_is_better: Optional[bool] = None  # None: shown, never ranked, bolded or compared
  compared: bool = False  # every arm is compared with the baseline on it (paired by seed)
  console: bool = False  # printed on the console at each evaluation
  floor: bool = False  # real data's own value is reported beside it (<name>_floor)


def columns(specs) -> list:
  """The report table's columns: [(metric, label, lower is better? / None)]."""
  return [(s.name, s.label, s.lower_is_better) for s in specs]


def compared(specs) -> dict:
  """The verdict metrics: {metric: lower is better?}."""
  return {s.name: s.lower_is_better for s in specs if s.compared}


def floors(specs) -> dict:
  """{metric: its floor's name} of the metrics with a real-data floor."""
  return {s.name: names.floor(s.name) for s in specs if s.floor}


M = MetricSpec
GAN1D = (
    M("w1", "W1 to N(0,1)", True, compared=True, console=True, floor=True),
    M("ks", "KS to N(0,1)", True, compared=True, floor=True),
    M("kl", "hist. KL (seed)", True, console=True, floor=True),
    M("mean", "mean"),
    M("std", "std"),
    M("skew", "skew"),
    M("kurtosis", "excess kurtosis"),
    M("d_loss", "D loss"),
    M("g_loss", "G loss"),
)
IMAGE = (
    M("fid", "FID (classifier)", True, compared=True, console=True, floor=True),
    M("kid", "KID", True, compared=True, console=True, floor=True),
    M("precision", "precision", False, compared=True, console=True, floor=True),
    M("recall", "recall", False, compared=True, console=True, floor=True),
    M("density", "density", False, compared=True, floor=True),
    M("coverage", "coverage", False, compared=True, floor=True),
    M("class_score", "class. score", False, floor=True),
    M("classes_covered", "classes", False, console=True, floor=True),
    M("class_kl", "KL(classes‖uniform)", True, floor=True),
)
GAN_LOSSES = (M("d_loss", "D loss"), M("g_loss", "G loss"))
AUTOENCODER = (
    M("mse", "test MSE", True, compared=True, console=True),
    M("bce", "test BCE", True),
    M("psnr", "PSNR dB", False, console=True),
    M("noisy_psnr", "noisy input PSNR"),
    M("psnr_gain", "PSNR gain", False),
    M("loss", "train loss"),
)
VAE = (
    M("mse", "test MSE", True, compared=True, console=True),
    M("bce", "test BCE", True),
    M("psnr", "PSNR dB", False, console=True),
    M("elbo", "ELBO", False),
    M("recon_nll", "recon. NLL", True),
    M("kl", "KL", console=True),
    M("fid", "prior FID", True, console=True),
    M("classes_covered", "classes", False, console=True),
    M("loss", "train loss"),
)
# The metrics the console prints at each evaluation (by name, in the order the evaluation returns
# them).
CONSOLE = frozenset(s.name for f in (GAN1D, IMAGE, AUTOENCODER, VAE) for s in f if s.console)
