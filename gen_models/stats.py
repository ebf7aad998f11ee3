"""Paired comparisons of sweep arms over seeds, and the verdicts the reports print.

Seed k of every arm shares its initial parameters, data order and evaluation latents (all come
from jax.random.key(seed)): common random numbers. So arm A is compared with the baseline B
through the per-seed differences d_k = A_k - B_k of a metric:

- p-value: scipy's exact sign-flip permutation test of mean(d) = 0 (every sign pattern for
  n <= 14 seeds, a fixed-seed Monte Carlo sample beyond), two-sided; Holm-corrected across the
  comparisons of a sweep.
- interval: the sign-flip test inverted at the level Holm tested the comparison at (alpha / m for
  the smallest p of m, ...; holm_levels): every shift delta for which d - delta is not rejected.
  The test assumes the differences are symmetric about their mean (not distribution-free for the
  mean: skewed differences make it approximate). With few seeds no sign pattern is rare enough
  (2 / 2^n >= level) and the interval is unbounded; a verdict needs at least 6 seeds (more under
  Holm).
- verdict: "better" / "worse" when the Holm-corrected p < alpha, which is exactly when the
  interval excludes 0; else "no difference detected (|diff| < X, ...)", X the largest |value| in
  the interval.

References: Henderson et al. 2018; Agarwal et al. 2021 (rliable); Lucic et al. 2018.
"""

import functools
import itertools
import math
from typing import Optional

import numpy as np
from scipy import stats as sp_stats

ALPHA = 0.05


def _mean(x, axis=-1):
  return np.mean(x, axis=axis)


N_RESAMPLES = 20_000  # scipy enumerates every sign pattern while 2^n <= this (n <= 14)
EXACT_UP_TO = int(math.log2(N_RESAMPLES))


@functools.lru_cache(maxsize=None)
def _flips(n: int) -> np.ndarray:
  """(n, 2^n) bool: which observations each sign pattern flips."""
  return np.array(list(itertools.product((False, True), repeat=n)), bool).T.copy()


def _exact_p(d: np.ndarray) -> float:
  """scipy.stats.permutation_test's exact two-sided p of sign_flip_p, without its per-call
  enumeration of the patterns (1.5 ms a call; an interval's bisection makes hundreds of calls).
  The same values in the same memory layout go through the same np.mean, so every pattern's
  mean, and with it every tie scipy breaks with its 100-eps tolerance, is bit-identical to
  scipy's (tests/test_stats.py checks the p-values against scipy's with ==)."""
  n = len(d)
  # scipy stacks (d, -d) per observation and reads the first of each pair back through a
  # (patterns, n) view with these strides (the mean's summation order follows the layout): the
  # same view here, whose second halves are never read
  both = np.empty((n, 2**n, 2))
  both[..., 0] = np.where(_flips(n), -d[:, None], d[:, None])
  null = np.mean(both.transpose(2, 1, 0)[0], axis=-1)
  observed = np.mean(d, axis=-1)
  gamma = np.abs(np.finfo(np.float64).eps * 100 * observed)
  less = np.count_nonzero(null <= observed + gamma) / 2**n
  greater = np.count_nonzero(null >= observed - gamma) / 2**n
  return float(np.clip(min(less, greater) * 2, 0.0, 1.0))


def sign_flip_p(diffs) -> float:
  """Two-sided p-value of mean(diffs) = 0 under random sign flips (scipy.stats.permutation_test:
  every sign pattern up to EXACT_UP_TO seeds, computed here the way scipy does; a fixed-seed
  Monte Carlo sample of N_RESAMPLES patterns beyond, by scipy)."""
  d = np.asarray(diffs, np.float64)
  if len(d) < 2 or not np.any(d):  # one seed cannot show anything
    return 1.0
  if len(d) <= EXACT_UP_TO and np.all(np.isfinite(d)):
    return _exact_p(d)
  res = sp_stats.permutation_test(
      (d,),
      _mean,
      permutation_type="samples",
      alternative="two-sided",
      vectorized=True,
      n_resamples=N_RESAMPLES,
      random_state=0,
  )
  return float(min(1.0, res.pvalue))


def sign_flip_interval(diffs, alpha: float = ALPHA, tol: float = 1e-6, p_value=None):
  """(low, high): the shifts delta not rejected by the sign-flip test of diffs - delta at level
  alpha (the test inverted: delta is rejected when its p-value is below alpha, as a verdict is),
  so the interval excludes 0 exactly when the test at this level rejects. (-inf, inf) when n is
  too small for any rejection at this level. p_value: the test's p function (default
  sign_flip_p; a sequential design passes the one it was calibrated for)."""
  p_value = p_value or sign_flip_p
  d = np.asarray(diffs, np.float64)
  n = len(d)
  # the smallest p any shift can reach: every difference of one sign
  if n < 2 or 2.0 / 2**n >= alpha or p_value(np.ones(n)) >= alpha:
    return -math.inf, math.inf
  center = float(np.mean(d))
  spread = float(np.max(np.abs(d - center))) + 1e-12
  accept = lambda delta: p_value(d - delta) >= alpha

  def edge(direction):
    inside, outside = center, center + direction * spread
    while accept(outside):  # beyond every difference all signs agree: rejected for n >= 6
      inside, outside = outside, outside + direction * spread
    while abs(outside - inside) > tol * (spread + abs(center)):
      mid = 0.5 * (inside + outside)
      inside, outside = (mid, outside) if accept(mid) else (inside, mid)
    return inside

  lo, hi = edge(-1.0), edge(1.0)
  # The accepted shifts need not be one interval: 0 is inside exactly when it is accepted.
  if accept(0.0):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
  else:
    lo, hi = (lo, min(hi, -tol * spread)) if center < 0 else (max(lo, tol * spread), hi)
  return lo, hi


def holm_levels(p_values, alpha: float = ALPHA) -> list:
  """The level Holm's step-down procedure tests each p-value at (input order): alpha / (m - r) for
  the r-th smallest while every smaller one was rejected, and after the first that was not, that
  step's level for all the rest. An interval at this level excludes 0 exactly when Holm rejects."""
  p = np.asarray(p_values, np.float64)
  m = len(p)
  out = np.empty(m)
  stopped = None
  for r, i in enumerate(np.argsort(p, kind="stable")):
    level = alpha / (m - r) if stopped is None else stopped
    if stopped is None and not p[i] < level:
      stopped = level
    out[i] = level
  return out.tolist()


def holm(p_values) -> list:
  """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
  p = np.asarray(p_values, np.float64)
  m = len(p)
  order = np.argsort(p, kind="stable")
  adjusted = np.empty(m)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p[i]))
    adjusted[i] = running
  return adjusted.tolist()


def _num(x: float) -> str:
  return f"{x:.3g}" if math.isfinite(x) else "∞"


def min_seeds(m: int, alpha: float = ALPHA) -> int:
  """Fewest seeds for which an exact sign-flip test can reach Holm-corrected p < alpha with m
  comparisons in the family (the smallest two-sided p-value is 2 / 2^n)."""
  n = 1
  while 2.0 / 2**n * m >= alpha:
    n += 1
  return n


def verdict(
    mean_diff: float,
    ci_low: float,
    ci_high: float,
    p_holm: float,
    lower_is_better: bool,
    n: int,
    m: int = 1,
    alpha: float = ALPHA,
    diffs=None,
) -> str:
  if diffs is not None and not np.any(np.asarray(diffs)):
    return "no difference detected (identical in every seed)"
  if p_holm < alpha:  # the Holm-level interval then excludes 0 (holm_levels)
    improved = (mean_diff < 0) == lower_is_better
    return "better" if improved else "worse"
  x = max(abs(ci_low), abs(ci_high))
  need = min_seeds(m, alpha)
  more = f"; at least {need} seeds are needed for any verdict" if n < need else ""
  return f"no difference detected (|diff| < {_num(x)}, Holm-adjusted 95% interval{more})"


def compare(
    arm_values: dict,
    baseline: str,
    metrics: dict,
    alpha: float = ALPHA,
    families: Optional[dict] = None,
) -> list:
  """Paired comparisons of every arm with `baseline`.

  arm_values: {arm: {metric: {seed: value}}}; metrics: {metric: lower_is_better}.
  Only seeds finished in both arms are paired. families: {metric: family name}; by default each
  metric is its own family. Holm's correction runs over the comparisons of a family (the arms'
  comparisons on its metrics), and each interval is at the level Holm tested
  its comparison at (holm_levels), so better/worse <=> the interval excludes 0. The sign-flip test
  assumes the paired differences are symmetric about their mean under the null. Returns the
  summary.json `comparisons` entries."""
  out = []
  for arm, values in arm_values.items():
    if arm == baseline:
      continue
    for metric, lower in metrics.items():
      a, b = values.get(metric, {}), arm_values[baseline].get(metric, {})
      seeds = sorted(set(a) & set(b))
      if not seeds:
        continue
      d = np.array([a[s] - b[s] for s in seeds], np.float64)
      out.append({
          "arm": arm,
          "baseline": baseline,
          "metric": metric,
          "lower_is_better": lower,
          "n": len(seeds),
          "seeds": seeds,
          "diffs": d.tolist(),
          "mean_diff": float(np.mean(d)),
          "p": sign_flip_p(d),
      })
  families = families or {m: m for m in metrics}
  for name in dict.fromkeys(families[m] for m in metrics):
    family = [c for c in out if families[c["metric"]] == name]
    ps = [c["p"] for c in family]
    for c, adj, level in zip(family, holm(ps), holm_levels(ps, alpha)):
      c["p_holm"] = adj
      c["level"] = level  # the interval's level: the one Holm tested this comparison at
      c["ci_low"], c["ci_high"] = sign_flip_interval(c["diffs"], level)
      c["verdict"] = verdict(
          c["mean_diff"],
          c["ci_low"],
          c["ci_high"],
          adj,
          c["lower_is_better"],
          c["n"],
          len(family),
          alpha,
          c["diffs"],
      )
  return out
