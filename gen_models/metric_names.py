"""Metric names: the one module that builds and parses them.

A metric's name carries meaning in its prefix and suffixes, and every other module asks this one
instead of slicing strings:

  train/<m>       a training mean over a log interval (a metrics.jsonl column)
  eval/<m>        an evaluation (a metrics.jsonl column)
  cost/<m>        cumulative compute up to an evaluation (g_updates, d_updates, real_images,
                  fake_images, flops, train_s), on the evaluation's row
  <m>_e<k>        <m> under feature extractor k of the ensemble (<m> alone: their mean)
  <m>_last<k>     a run's headline value: the mean of its last k evaluations of <m>
  <m>_floor       what real data scores on <m> at the same sample counts
  <m>_real        <m> of the real training sample itself (the 1-D GAN)

The parsers match whole suffixes (`_e<digits>` at the end), so a metric whose own name contains
"_e" (say `density_est`) is never taken for a per-extractor variant.
"""

import re
from typing import Optional

TRAIN = "train/"
EVAL = "eval/"
COST = "cost/"  # cumulative compute at an evaluation: updates, images, FLOPs, training seconds
# Columns that measure this machine's time, not what the run computed: identical runs differ here.
TIMINGS = ("eval/eval_s", "cost/train_s")
_EXTRACTOR = re.compile(r"^(?P<base>.+)_e(?P<k>\d+)$")
_HEADLINE = re.compile(r"^(?P<base>.+)_last(?P<k>\d+)$")


def train(name: str) -> str:
  return TRAIN + name


def evaluation(name: str) -> str:
  return EVAL + name


def per_extractor(name: str, k: int) -> str:
  return f"{name}_e{k}"


def headline(name: str, k: int) -> str:
  return f"{name}_last{k}"


def floor(name: str) -> str:
  return f"{name}_floor"


def real(name: str) -> str:
  return f"{name}_real"


def split_extractor(key: str) -> tuple[str, Optional[int]]:
  """'fid_e2' -> ('fid', 2); 'fid' -> ('fid', None)."""
  m = _EXTRACTOR.match(key)
  return (m["base"], int(m["k"])) if m else (key, None)


def split_headline(key: str) -> tuple[str, Optional[int]]:
  """'fid_e2_last3' -> ('fid_e2', 3); 'fid' -> ('fid', None)."""
  m = _HEADLINE.match(key)
  return (m["base"], int(m["k"])) if m else (key, None)


def compared_variants(metrics, compared) -> list[str]:
  """The names in `metrics` that are a compared metric or one of its per-extractor variants."""
  return [m for m in metrics if split_extractor(m)[0] in compared]


def extractors_in(names) -> int:
  """How many extractors the per-extractor variants among `names` come from (0 if none)."""
  ks = [split_extractor(split_headline(n)[0])[1] for n in names]
  return max([k + 1 for k in ks if k is not None], default=0)


def cost(name: str) -> str:
  return COST + name


def is_eval_row(row: dict) -> bool:
  return any(k.startswith(EVAL) for k in row)


def is_train_row(row: dict) -> bool:
  return any(k.startswith(TRAIN) for k in row)


def unprefixed(row: dict, prefix: str) -> dict:
  """{m: value} of the row's columns under prefix (train/ or eval/)."""
  return {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
