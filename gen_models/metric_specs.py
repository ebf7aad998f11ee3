"""One declaration per metric: what each family's evaluation reports and how it is read.

A MetricSpec says how a metric is labelled, which way is better, whether every arm is compared on
it (a verdict metric), whether the console prints it at each evaluation, whether it has a
real-data floor (<name>_floor) and what it is (its note in the report). The families' report
tables, verdict metrics, floors and metric notes and the loop's console line are derived from
these tuples. Adding an image metric: its function (in gen_models/metrics/), its MetricSpec in
IMAGE, its paragraph in docs/metrics.md, and a test.
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
  # What it is, for the report's notes: a Markdown template with the fields of gen_models.notes
  # ({n}, {log}, the family's floors, ...); "" where the family's own notes say it
  note: str = ""


def columns(specs) -> list:
  """The report table's columns: [(metric, label, lower is better? / None)]."""
  return [(s.name, s.label, s.lower_is_better) for s in specs]


def compared(specs) -> dict:
  """The verdict metrics: {metric: lower is better?}."""
  return {s.name: s.lower_is_better for s in specs if s.compared}


def notes(specs) -> str:
  """The report's notes on these metrics: one bullet per metric with a note, in table order."""
  return "".join(f"- **{s.label}**: {s.note}\n" for s in specs if s.note)


def floors(specs) -> dict:
  """{metric: its floor's name} of the metrics with a real-data floor."""
  return {s.name: names.floor(s.name) for s in specs if s.floor}


def _named(specs, name) -> MetricSpec:
  return next(s for s in specs if s.name == name)


M = MetricSpec
_TRAINING_MEAN = "mean over the last {log} training steps."
GAN1D = (
    M(
        "w1",
        "W1 to N(0,1)",
        True,
        compared=True,
        console=True,
        floor=True,
        note=(
            "exact Wasserstein-1 distance between the empirical distribution of {n:,} generated"
            " samples and N(0,1) itself (not another sample). Floor (what {n:,} true N(0,1) draws"
            " score, median of 20 draws): {w1_floor:.4f}."
        ),
    ),
    M(
        "ks",
        "KS to N(0,1)",
        True,
        compared=True,
        floor=True,
        note=(
            "Kolmogorov-Smirnov statistic of the same {n:,} samples against N(0,1). Floor:"
            " {ks_floor:.4f}."
        ),
    ),
    M(
        "kl",
        "hist. KL (seed)",
        True,
        console=True,
        floor=True,
        note=(
            "the seed's metric, KL(real || fake) on 100 histogram bins taken from the 1000 real"
            " samples, with {k:,} generated samples. Two independent draws of N(0,1) already score"
            " **{kl_floor:.3f}** (median of 200 pairs), so values near that floor cannot tell a"
            " good generator from a perfect one; use W1 and KS to rank arms."
        ),
    ),
    M("mean", "mean", note="of the {n:,} generated samples (N(0,1): 0)."),
    M("std", "std", note="of the same samples (N(0,1): 1)."),
    M("skew", "skew", note="of the same samples (N(0,1): 0)."),
    M("kurtosis", "excess kurtosis", note="of the same samples (N(0,1): 0)."),
    M("d_loss", "D loss", note=_TRAINING_MEAN),
    M("g_loss", "G loss", note=_TRAINING_MEAN),
)
IMAGE = (
    M(
        "fid",
        "FID (classifier)",
        True,
        compared=True,
        console=True,
        floor=True,
        note="Fréchet distance of a classifier's 128-d penultimate features.",
    ),
    M(
        "kid",
        "KID",
        True,
        compared=True,
        console=True,
        floor=True,
        note=(
            "unbiased MMD² with a cubic polynomial kernel on the same features (mean over 100"
            " subsets of 1000)."
        ),
    ),
    M(
        "precision",
        "precision",
        False,
        compared=True,
        console=True,
        floor=True,
        note=(
            "the share of generated images inside the real images' k-NN manifold (k = 3,"
            " Kynkäänniemi et al. 2019)."
        ),
    ),
    M(
        "recall",
        "recall",
        False,
        compared=True,
        console=True,
        floor=True,
        note="the share of real images inside the generated images' k-NN manifold (k = 3).",
    ),
    M(
        "density",
        "density",
        False,
        compared=True,
        floor=True,
        note=(
            "how many real images' k-NN balls hold each generated image, over k (k = 5, Naeem et"
            " al. 2020): about 1 when the two sets match."
        ),
    ),
    M(
        "coverage",
        "coverage",
        False,
        compared=True,
        floor=True,
        note=(
            "the share of real images whose k-NN ball (k = 5) holds a generated image (Naeem et"
            " al. 2020); from the real balls only, so an outlier among the generated images cannot"
            " stretch it as it stretches recall."
        ),
    ),
    M(
        "class_score",
        "class. score",
        False,
        floor=True,
        note=(
            "exp E KL(p(y|x) ‖ p(y)) from the classifier's softmax (the Inception-Score analogue,"
            " at most 10)."
        ),
    ),
    M(
        "classes_covered",
        "classes",
        False,
        console=True,
        floor=True,
        note="classes predicted for at least 1% of the images.",
    ),
    M(
        "class_kl",
        "KL(classes‖uniform)",
        True,
        floor=True,
        note=(
            "0 when all classes are equally frequent, log 10 = 2.30 when one class takes"
            " everything (mode collapse)."
        ),
    ),
)
GAN_LOSSES = (M("d_loss", "D loss"), M("g_loss", "G loss"))
AUTOENCODER = (
    M(
        "mse",
        "test MSE",
        True,
        compared=True,
        console=True,
        note=(
            "mean squared error per pixel over the whole test split ({test_n:,} images), as Keras"
            " reports it."
        ),
    ),
    M("bce", "test BCE", True, note="binary cross-entropy per pixel on the same images."),
    M(
        "psnr",
        "PSNR dB",
        False,
        console=True,
        note="10 log10(1/MSE) per image, in dB, averaged over the images.",
    ),
    M("noisy_psnr", "noisy input PSNR"),
    M("psnr_gain", "PSNR gain", False),
    M("loss", "train loss", note=_TRAINING_MEAN),
)
VAE = (  # the autoencoders' reconstruction metrics, the VAE's own, and prior samples' image metrics
    *(_named(AUTOENCODER, name) for name in ("mse", "bce", "psnr")),
    M(
        "elbo",
        "ELBO",
        False,
        note=(
            "-(reconstruction NLL summed over pixels + KL) per image, in nats, with one posterior"
            " sample; reconstructions use the posterior mean."
        ),
    ),
    M(
        "recon_nll",
        "recon. NLL",
        True,
        note=(
            "the decoder's negative log-likelihood of the image, summed over pixels (one"
            " posterior sample)."
        ),
    ),
    M("kl", "KL", console=True, note="KL(q(z|x) ‖ N(0, I)) per image, in nats."),
    M(
        "fid",
        "prior FID",
        True,
        console=True,
        note=(
            "prior samples (z ~ N(0, I), decoder means) scored with the GANs' classifier FID"
            " ({n:,} samples), so a VAE and the GANs compare in one table; not comparable to"
            " Inception FID."
        ),
    ),
    M(
        "classes_covered",
        "classes",
        False,
        console=True,
        note=_named(IMAGE, "classes_covered").note,
    ),
    _named(AUTOENCODER, "loss"),
)
# The metrics the console prints at each evaluation (by name, in the order the evaluation returns
# them).
CONSOLE = frozenset(s.name for f in (GAN1D, IMAGE, AUTOENCODER, VAE) for s in f if s.console)
