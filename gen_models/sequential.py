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

EXACT_UP_TO = 13  # every sign pattern up to here (as stats.sign_flip_p), a fixed sample beyond
MC_PATTERNS = 4096
SIMS = 4000  # null sweeps per calibration: Monte Carlo error of a 5% rate about 0.35%
# The largest design a command accepts: calibrating it takes seconds (about 14 s on one core for
# 4 comparisons and 19 looks up to 100 seeds), and no GAN sweep here affords more seeds per arm.
MAX_SEEDS = 100
MAX_LOOKS = 20


@functools.lru_cache(maxsize=None)
def _patterns(n: int) -> np.ndarray:
  if n <= EXACT_UP_TO:
    return np.array(list(itertools.product((1.0, -1.0), repeat=n)), np.float32)
  s = np.random.default_rng(0).choice((1.0, -1.0), (MC_PATTERNS, n)).astype(np.float32)
  s[0] = 1.0  # the observed signs are one of the patterns
  return s


def sign_flip_p_many(d) -> np.ndarray:
  """Two-sided sign-flip p-values of mean = 0 for each row of d (B, n): the test of
  stats.sign_flip_p, vectorised (exact up to 13 seeds, equal to it there)."""
  d = np.asarray(d, np.float32)
  s = _patterns(d.shape[1])
  t = np.abs(d.sum(axis=1, keepdims=True))
  count = (np.abs(d @ s.T) >= t * (1 - 1e-5)).sum(axis=1)
  return np.where(np.all(d == 0, axis=1), 1.0, count / len(s))


def obf_levels(looks, c: float) -> tuple:
  """Two-sided per-look levels of O'Brien-Fleming shape with constant c."""
  return tuple(float(2 * sp_stats.norm.sf(c * math.sqrt(looks[-1] / n))) for n in looks)


def _null_p(looks, m: int, sims: int, seed: int) -> np.ndarray:
  """p-values (m, looks, sims) of m arms against one shared baseline under no difference."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(sims, looks[-1]))
  arms = rng.normal(size=(m, sims, looks[-1]))
  return np.stack([[sign_flip_p_many((arms[j] - base)[:, :n]) for n in looks] for j in range(m)])


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
  """The design for these looks and m comparisons: for each number of open comparisons the
  smallest O'Brien-Fleming constant whose simulated false-verdict rate is at most alpha."""
  levels, spent = {}, {}
  for j in range(1, m + 1):
    p = _null_p(looks, j, sims, seed + j)
    lo, hi = 0.5, 6.0  # fwer falls as c grows
    for _ in range(40):
      mid = 0.5 * (lo + hi)
      lo, hi = (lo, mid) if fwer(p, obf_levels(looks, mid)) <= alpha else (mid, hi)
    levels[j], spent[j] = obf_levels(looks, hi), fwer(p, obf_levels(looks, hi))
  return Design(tuple(looks), m, alpha, levels, spent, delta)


def decide(comps: list, design: Design, look: int, decided: dict) -> dict:
  """Decisions at one look: {arm: {"verdict" (None = still open), "level", "ci_low", "ci_high",
  "look", "n", "p", "mean_diff"}}. comps: the primary metric's comparisons at this look (each with
  "arm", "p", "diffs", "mean_diff", "lower_is_better"); decided: earlier looks' decisions with a
  verdict, kept as they are. The open comparisons are tested by Holm's step-down, step r at the
  level of a design for the comparisons not yet rejected; better/worse exactly when the interval
  at that level excludes 0."""
  out = {arm: d for arm, d in decided.items() if d.get("verdict")}
  rejected_before = sum(d["verdict"] in ("better", "worse") for d in out.values())
  unrejected = design.m - rejected_before  # an equivalence verdict recycles no error
  open_ = sorted((c for c in comps if c["arm"] not in out), key=lambda c: c["p"])
  level, rejecting = None, True
  for r, c in enumerate(open_):
    if rejecting:  # Holm's step r: a design for the j comparisons left, its level shared by j
      j = max(1, unrejected - r)
      level = design.levels[j][look] / j
    rejecting = rejecting and c["p"] < level
    lo, hi = stats.sign_flip_interval(c["diffs"], level)
    verdict = None
    if rejecting:
      verdict = "better" if (c["mean_diff"] < 0) == c["lower_is_better"] else "worse"
    elif design.delta and -design.delta < lo and hi < design.delta:
      verdict = f"equivalent within ±{design.delta:g}"
    out[c["arm"]] = {
        "verdict": verdict,
        "level": level,
        "ci_low": lo,
        "ci_high": hi,
        "look": look,
        "n": design.looks[look],
        "p": c["p"],
        "mean_diff": c["mean_diff"],
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
