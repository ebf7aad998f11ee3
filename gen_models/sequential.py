"""Seeds on demand as a group-sequential design: looks fixed in advance, error spent across them.

Testing at 5% after every batch of seeds and stopping at the first verdict is optional stopping:
under no difference it declares one in about 15% of sweeps. A design instead fixes the looks
before the first one (the seeds per arm at each: start, start + batch, ..., budget) and gives each
look k a two-sided level a_k of O'Brien-Fleming shape,

    a_k = 2 (1 - Phi(c * sqrt(n_K / n_k))),

small at the early looks and close to alpha at the last, with c calibrated by simulation for the
exact sign-flip test at exactly these looks, so that the chance of any false verdict over all
looks is at most alpha. With m comparisons (arms against one baseline) the looks run Holm's step-
down with the levels of a design calibrated for the comparisons still open (m, m - 1, ...: the
group-sequential Holm procedure of Maurer & Bretz 2013), all calibrated on the shared-baseline
null. A comparison decided at a look keeps its verdict. With a smallest effect of interest delta,
a comparison whose interval at its look's level lies inside (-delta, delta) is decided
"equivalent": the two one-sided tests (Lakens 2017) at that level.
"""

import dataclasses
import functools
import itertools
import math
from typing import Optional

import numpy as np
from scipy import stats as sp_stats

from gen_models import stats

# every sign pattern up to here, a fixed sample beyond (stats.sign_flip_p, scipy's, is exact to 14)
EXACT_UP_TO = 13
MC_PATTERNS = 4096
SIMS = 10_000  # null sweeps per calibration and distribution: Monte Carlo error of 5% is 0.22%
# The level a calibration aims at: alpha less one Monte Carlo standard error of its own sweeps, so
# that the rate on fresh sweeps (not the calibration's) stays at or below alpha.
MARGIN_SE = 1.0
# The null distributions of the paired differences a design is calibrated on (the worst of them
# sets the levels), as independent comparisons: arms compared with a shared baseline are
# positively correlated, which only lowers the family-wise rate, so independence is the
# conservative case. Skewed differences (an arm that changes the shape of the metric's
# distribution, not its mean) are left out: calibrating for them too left the first look of a
# 4-comparison card sweep (11 seeds) unable to reach any verdict; docs/metrics.md gives their rate.
NULLS = ("normal", "t3")
BOOT = 999  # bootstrap resamples of the equivalence test's skew check
# The largest design a command accepts: calibrating it takes seconds (about 14 s on one core for
# 4 comparisons and 19 looks up to 100 seeds), and no GAN sweep here affords more seeds per arm.
MAX_SEEDS = 100
MAX_LOOKS = 20


@functools.lru_cache(maxsize=None)
def _patterns(n: int) -> np.ndarray:
  """Half of the sign patterns the test counts: a pattern and its negation give the same |sum|,
  so each stands for both. Every pattern up to EXACT_UP_TO seeds, a fixed sample beyond."""
  if n <= EXACT_UP_TO:
    return np.array([(1.0,) + t for t in itertools.product((1.0, -1.0), repeat=n - 1)], np.float32)
  s = np.random.default_rng(0).choice((1.0, -1.0), (MC_PATTERNS // 2, n)).astype(np.float32)
  s[0] = 1.0  # the observed signs are one of the patterns
  return s


def sign_flip_p_many(d) -> np.ndarray:
  """Two-sided sign-flip p-values of mean = 0 for each row of d (B, n): the test of
  stats.sign_flip_p, vectorised (exact up to 13 seeds, equal to it there; beyond, MC_PATTERNS
  fixed patterns, half of them the others' negations)."""
  d = np.asarray(d, np.float32)
  s = _patterns(d.shape[1])
  out = np.empty(len(d))
  for i in range(0, len(d), 2048):  # blocks whose (block, patterns) products stay in cache
    x = d[i : i + 2048]
    t = np.abs(x.sum(axis=1, keepdims=True)) * (1 - 1e-5)
    out[i : i + 2048] = (np.abs(x @ s.T) >= t).sum(axis=1) / len(s)
  return np.where(np.all(d == 0, axis=1), 1.0, out)


def design_p(diffs) -> float:
  """The p-value a design decides on: sign_flip_p_many of one comparison, the very test its
  levels were calibrated for (stats.sign_flip_p, scipy's, draws other random patterns beyond 14
  seeds: at n 14-21 the two differ by up to 0.02, enough to move a calibrated rate)."""
  d = np.asarray(diffs, np.float64)
  if len(d) < 2:
    return 1.0
  return float(sign_flip_p_many(d[None])[0])


def obf_levels(looks, c: float) -> tuple:
  """Two-sided per-look levels of O'Brien-Fleming shape with constant c."""
  return tuple(float(2 * sp_stats.norm.sf(c * math.sqrt(looks[-1] / n))) for n in looks)


# log-normal shapes: skewness 6.2, 0.78 and 1.75
SIGMA = {"lognormal": 1.0, "skewed": 0.25, "very skewed": 0.5}


def draw(rng, kind: str, shape) -> np.ndarray:
  """Standardised noise of one kind, mean 0 and sd 1: "normal", "t3" (heavy tails), "lognormal"
  (sigma 1: skewness 6.2) or "skewed" (log-normal, sigma 0.25: skewness 0.78, more than the
  0.3-0.6 of the paired FID differences in docs/results) or "very skewed" (sigma 0.5: 1.75)."""
  if kind == "normal":
    return rng.normal(size=shape)
  if kind == "t3":
    return rng.standard_t(3, size=shape) / math.sqrt(3.0)
  if kind in SIGMA:
    v = SIGMA[kind] ** 2
    x = rng.lognormal(0.0, SIGMA[kind], size=shape)
    return (x - math.exp(v / 2)) / math.sqrt((math.exp(v) - 1) * math.exp(v))
  raise ValueError(f"unknown noise kind {kind!r}; use normal, t3, lognormal or skewed")


def _null_p(looks, m: int, sims: int, seed: int, kind: str = "normal") -> np.ndarray:
  """p-values (m, looks, sims) of m independent comparisons under no difference."""
  d = draw(np.random.default_rng(seed), kind, (m, sims, looks[-1]))
  return np.stack([[sign_flip_p_many(d[j][:, :n]) for n in looks] for j in range(m)])


def fwer(p: np.ndarray, levels) -> float:
  """The share of null sweeps with a false verdict at some look: Holm at look k rejects something
  exactly when the smallest of the m p-values is below levels[k] / m (decide's first step)."""
  m = p.shape[0]
  return float(np.mean(np.any(p.min(axis=0) < np.asarray(levels)[:, None] / m, axis=0)))


@dataclasses.dataclass(frozen=True)
class Design:
  looks: tuple  # seeds per arm at each look
  m: int  # comparisons (arms against the baseline) on the primary metric
  alpha: float
  levels: dict  # {comparisons still open: per-look levels}, each calibrated for that many
  spent: dict  # {comparisons still open: simulated false-verdict rate over all looks}
  delta: Optional[float] = None  # smallest effect of interest for an equivalence verdict

  def look(self, n: int) -> Optional[int]:
    """The index of the look with n paired seeds, or None when n is off the design."""
    return self.looks.index(n) if n in self.looks else None

  def to_dict(self) -> dict:
    return {
        "looks": list(self.looks),
        "m": self.m,
        "alpha": self.alpha,
        "delta": self.delta,
        "levels": {str(k): list(v) for k, v in self.levels.items()},
        "spent": {str(k): v for k, v in self.spent.items()},
        "boundary": "O'Brien-Fleming shape",
    }

  @classmethod
  def from_dict(cls, d: dict) -> "Design":
    return cls(
        tuple(d["looks"]),
        int(d["m"]),
        float(d["alpha"]),
        {int(k): tuple(v) for k, v in d["levels"].items()},
        {int(k): float(v) for k, v in d["spent"].items()},
        d.get("delta"),
    )

  def describe(self) -> str:
    lv = self.levels[self.m]
    return (
        f"{len(self.looks)} looks at {', '.join(map(str, self.looks))} seeds per arm; family-wise"
        f" per-look levels (O'Brien-Fleming shape, {self.m} comparison(s); Holm's first step tests"
        f" each comparison at level / {self.m}) {', '.join(f'{a:.2g}' for a in lv)}; simulated"
        f" false-verdict rate over all looks {self.spent[self.m]:.3f} (alpha {self.alpha})"
        + (f"; equivalence within ±{self.delta:g}" if self.delta else "")
    )


def looks_of(start: int, batch: int, budget: int) -> tuple:
  """The looks a seeds-on-demand command fixes: start, start + batch, ..., up to the budget."""
  looks = list(range(start, budget + 1, batch))
  if looks[-1] != budget:
    looks.append(budget)
  return tuple(looks)


@functools.lru_cache(maxsize=32)
def calibrate(
    looks: tuple,
    m: int,
    alpha: float = stats.ALPHA,
    delta: Optional[float] = None,
    sims: int = SIMS,
    seed: int = 0,
) -> Design:
  """The design for these looks and m comparisons: for each number j of open comparisons the
  smallest O'Brien-Fleming constant whose simulated false-verdict rate, the worst over NULLS, is
  at most alpha less MARGIN_SE standard errors. The first j of the same m simulated comparisons
  serve every j, so a design's levels for j do not depend on m."""
  target = alpha - MARGIN_SE * math.sqrt(alpha * (1 - alpha) / sims)
  ps = [_null_p(looks, m, sims, seed + i, kind) for i, kind in enumerate(NULLS)]
  levels, spent = {}, {}
  for j in range(1, m + 1):
    rate = lambda c: max(fwer(p[:j], obf_levels(looks, c)) for p in ps)
    lo, hi = 0.5, 6.0  # the rate falls as c grows
    for _ in range(40):
      mid = 0.5 * (lo + hi)
      lo, hi = (lo, mid) if rate(mid) <= target else (mid, hi)
    levels[j], spent[j] = obf_levels(looks, hi), rate(hi)
  return Design(tuple(looks), m, alpha, levels, spent, delta)


def step_down(p, design: Design, look: int, unrejected) -> tuple:
  """Holm's step-down at one look for B sweeps at once: p (B, j) the open comparisons' design
  p-values, unrejected (B,) how many of the design's m comparisons no earlier look rejected.
  Step r tests the r-th smallest p at the level of a design for the comparisons left
  (unrejected - r), shared by them; after the first step that does not reject, that step's level
  holds for the rest. Returns (rejected (B, j) bool, level (B, j)), in p's order. decide runs
  this for one sweep; the simulations (gen_models.design_sim) for many."""
  p = np.atleast_2d(np.asarray(p, np.float64))
  b, j = p.shape
  order = np.argsort(p, axis=1, kind="stable")
  ps = np.take_along_axis(p, order, axis=1)
  left = np.maximum(1, np.asarray(unrejected).reshape(-1, 1) - np.arange(j))  # (B, j)
  table = np.array([design.levels[max(i, 1)][look] / max(i, 1) for i in range(design.m + 1)])
  step_level = table[left]
  passed = ps < step_level
  first_fail = np.where(passed.all(axis=1), j, np.argmin(passed, axis=1))
  at = np.minimum(np.arange(j)[None, :], first_fail[:, None])
  level = np.take_along_axis(step_level, np.minimum(at, j - 1), axis=1)
  rejected = np.arange(j)[None, :] < first_fail[:, None]
  out_rej, out_level = np.empty_like(rejected), np.empty_like(level)
  np.put_along_axis(out_rej, order, rejected, axis=1)
  np.put_along_axis(out_level, order, level, axis=1)
  return out_rej, out_level


def _skew(d: np.ndarray) -> np.ndarray:
  """The adjusted sample skewness of each row (scipy.stats.skew, bias=False); 0 where constant."""
  with np.errstate(all="ignore"):
    g = sp_stats.skew(d, axis=-1, bias=False)
  return np.nan_to_num(g, nan=0.0)


def equivalent(d, delta: float, level) -> np.ndarray:
  """Whether each row of paired differences d (B, n) shows |mean| < delta at this level: the two
  one-sided sign-flip tests (TOST, Lakens 2017) at the shifts +-delta', and a studentized
  bootstrap (bootstrap-t) interval inside +-delta' too, where delta' = delta / (1 + |skewness|).
  Why both: the sign-flip test assumes differences symmetric about their mean; with right-skewed
  differences whose mean is +delta a sample that misses the rare large value looks equivalent
  (measured: 16% of such sweeps at per-seed sd 16 with the plain test). The bootstrap-t interval
  widens on the side of the skew and the margin shrinks with the sample's skewness; together
  they keep a false equivalence under 5% for log-normal differences as for normal ones
  (tests/test_sequential.py)."""
  d = np.atleast_2d(np.asarray(d, np.float64))
  b, n = d.shape
  level = np.broadcast_to(np.asarray(level, np.float64), (b,))
  margin = delta / (1.0 + np.abs(_skew(d)))
  mean = d.mean(axis=1)
  shift = margin[:, None]
  ok = (np.abs(mean) < margin) & (sign_flip_p_many(d - shift) < level)
  ok &= sign_flip_p_many(d + shift) < level
  idx = np.random.default_rng(0).integers(0, n, (BOOT, n))
  sd = d.std(axis=1, ddof=1)
  for i in np.flatnonzero(ok):  # a bootstrap only where the tests already agree
    r = d[i][idx]
    t = (r.mean(axis=1) - mean[i]) / np.maximum(r.std(axis=1, ddof=1), 1e-12 * (sd[i] + 1e-300))
    lo_q, hi_q = np.quantile(t * math.sqrt(n), [level[i] / 2, 1 - level[i] / 2])
    low, high = mean[i] - hi_q * sd[i] / math.sqrt(n), mean[i] - lo_q * sd[i] / math.sqrt(n)
    ok[i] = -margin[i] < low and high < margin[i]
  return ok


def look_diffs_many(a, b, lower_is_better: bool) -> np.ndarray:
  """Paired differences a - b (B, n) of B sweeps at one look, NaN marking a run that diverged:
  a diverged run counts as the worst outcome, the worst value either arm reached at this look
  in its sweep (the largest where lower is better), so an arm that diverges where the baseline
  does not loses that seed's pair and two diverged runs tie. That value depends on the two arms'
  runs only through their pooled values, which swapping the arms within a seed leaves unchanged:
  under no difference the sign-flip test stays exact."""
  a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
  pooled = np.concatenate([a, b], axis=1)
  seen = ~np.isnan(pooled)
  worst = np.where(seen, pooled, -np.inf if lower_is_better else np.inf)
  worst = worst.max(axis=1) if lower_is_better else worst.min(axis=1)
  worst = np.where(seen.any(axis=1), worst, 0.0)[:, None]  # every run diverged: all pairs tie
  return np.where(np.isnan(a), worst, a) - np.where(np.isnan(b), worst, b)


def look_diffs(a: dict, b: dict, seeds, lower_is_better: bool) -> Optional[np.ndarray]:
  """look_diffs_many for one comparison at a look with these seeds. a, b: {seed: value, or None
  for a run that diverged}. None when a seed has no run yet in either arm: the comparison waits
  for a later look (never a test on fewer seeds than the look's)."""
  if any(s not in a or s not in b for s in seeds):
    return None
  value = lambda v: math.nan if v is None else float(v)
  return look_diffs_many(
      [[value(a[s]) for s in seeds]], [[value(b[s]) for s in seeds]], lower_is_better
  )[0]


def decide(comps: list, design: Design, look: int, decided: dict) -> dict:
  """Decisions at one look: {arm: {"verdict" (None = still open), "level", "ci_low", "ci_high",
  "look", "n", "p", "mean_diff"}}. comps: the primary metric's comparisons testable at this look
  (each with "arm", "diffs" at the look's seeds, "lower_is_better"); decided: earlier looks'
  decisions with a verdict, kept as they are. The open comparisons are tested by Holm's step-down
  (step_down) on the design's p (design_p); better/worse exactly when the interval at that level
  (the same test inverted) excludes 0; equivalence by `equivalent` at that level."""
  out = {arm: d for arm, d in decided.items() if d.get("verdict")}
  rejected_before = sum(d["verdict"] in ("better", "worse") for d in out.values())
  unrejected = design.m - rejected_before  # an equivalence verdict recycles no error
  open_ = [c for c in comps if c["arm"] not in out]
  if not open_:
    return out
  diffs = [np.asarray(c["diffs"], np.float64) for c in open_]
  p = np.array([[design_p(d) for d in diffs]])
  rejected, levels = step_down(p, design, look, [unrejected])
  for c, d, pv, rej, level in zip(open_, diffs, p[0], rejected[0], levels[0]):
    level = float(level)
    lo, hi = stats.sign_flip_interval(d, level, p_value=design_p)
    mean = float(np.mean(d))
    verdict = None
    if rej:
      verdict = "better" if (mean < 0) == c["lower_is_better"] else "worse"
    elif (
        design.delta
        and -design.delta < lo
        and hi < design.delta
        and equivalent(d[None], design.delta, level)[0]
    ):
      verdict = f"equivalent within ±{design.delta:g}"
    out[c["arm"]] = {
        "verdict": verdict,
        "level": level,
        "ci_low": lo,
        "ci_high": hi,
        "look": look,
        "n": len(d),
        "p": float(pv),
        "mean_diff": mean,
    }
  return out


def power(
    design: Design,
    effect: float,
    sd: float,
    m: Optional[int] = None,
    sims: int = 2000,
    seed: int = 0,
) -> float:
  """The chance that the design gives a verdict on one of m comparisons when that arm's paired
  differences are N(effect, sd) per seed: Holm's first step at every look (level / m), a lower
  bound. m defaults to the design's; a design calibrated for one comparison with m > 1 is the
  quick approximation the planner uses (the levels differ by under 10%)."""
  m = m or design.m
  if sd <= 0:
    return 1.0 if effect else 0.0
  d = np.random.default_rng(seed).normal(effect, sd, size=(sims, design.looks[-1]))
  p = np.stack([sign_flip_p_many(d[:, :n]) for n in design.looks])  # (looks, sims)
  levels = np.asarray(design.levels[design.m])[:, None] / m
  return float(np.mean(np.any(p < levels, axis=0)))


def seeds_for_power(
    start: int, batch: int, m: int, effect: float, sd: float, target: float = 0.8, limit: int = 60
) -> Optional[int]:
  """The smallest budget (seeds per arm at the last look, the same start and batch) whose design
  reaches `target` power at this effect, or None if not even `limit` seeds do. Planning only:
  each candidate design is calibrated for one comparison (1,000 null sweeps) and tested at level/m.
  """
  budgets = list(range(start + batch, limit + 1, batch))
  if not budgets or effect == 0:
    return None
  design = lambda n: calibrate(looks_of(start, batch, n), 1, sims=1000)
  ok = lambda n: power(design(n), abs(effect), sd, m=m, sims=1000) >= target
  if not ok(budgets[-1]):
    return None
  lo, hi = 0, len(budgets) - 1  # power grows with the budget: bisect for the first that suffices
  while lo < hi:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if ok(budgets[mid]) else (mid + 1, hi)
  return budgets[lo]


def seeds_range(diffs, start, batch, m, effect=None, conf=0.8, limit=60) -> dict:
  """What a pilot's paired differences support about the budget for 80% power, as a range, not a
  point: a pilot of 11 seeds puts the true sd anywhere in a wide interval, and the seeds needed
  grow with its square. The sd's `conf` interval (chi-square, normal differences) and, when
  `effect` is None (the effect seen), the mean's `conf` t-interval give the range's ends: the
  fewest seeds (the smallest sd, the largest |effect|) and the most (the largest sd, the smallest
  |effect|; None = over `limit`, also when the effect's interval reaches 0). Returns {"point",
  "low", "high", "sd", "sd_low", "sd_high", "effect", "effect_low", "effect_high"}."""
  d = np.asarray(diffs, np.float64)
  n, sd = len(d), float(np.std(d, ddof=1))
  tail = (1 - conf) / 2
  sd_low = sd * math.sqrt((n - 1) / sp_stats.chi2.ppf(1 - tail, n - 1))
  sd_high = sd * math.sqrt((n - 1) / sp_stats.chi2.ppf(tail, n - 1))
  if effect is None:
    half = sp_stats.t.ppf(1 - tail, n - 1) * sd / math.sqrt(n)
    mean = float(np.mean(d))
    big, small = abs(mean) + half, max(0.0, abs(mean) - half)
    effect = mean
  else:
    big = small = abs(effect)
  need = lambda e, s: seeds_for_power(start, batch, m, e, s, limit=limit) if e > 0 else None
  return {
      "point": need(abs(effect), sd),
      "low": need(big, sd_low),
      "high": need(small, sd_high),
      "sd": sd,
      "sd_low": sd_low,
      "sd_high": sd_high,
      "effect": effect,
      "effect_low": small,
      "effect_high": big,
  }
