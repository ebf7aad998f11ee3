"""Seeds on demand as a group-sequential design (gen_models/sequential.py): under no difference the
chance of any false verdict over all looks is at most 5% for 1, 2 and 3 comparisons, where testing
at 5% after every batch (the former --until-decided) gives about 14%; decisions follow the design's
levels and keep their verdict; an equivalent arm stops with an equivalence verdict."""

import numpy as np
import pytest

from gen_models import sequential as sq
from gen_models import stats

LOOKS = sq.looks_of(7, 2, 20)  # the README protocol's start, batch and budget: 7, 9, ..., 19, 20


def _comp(arm, d):
  """A comparison of one arm with the baseline from its paired differences d (lower is better)."""
  d = np.asarray(d, np.float64)
  return {
      "arm": arm,
      "p": stats.sign_flip_p(d),
      "diffs": d.tolist(),
      "mean_diff": float(d.mean()),
      "lower_is_better": True,
  }


def test_the_looks_are_start_batch_and_budget():
  assert LOOKS == (7, 9, 11, 13, 15, 17, 19, 20)
  assert sq.looks_of(5, 5, 20) == (5, 10, 15, 20)


@pytest.mark.parametrize("n", [6, 9, 13])
def test_the_vectorised_sign_flip_test_is_the_exact_one(n):
  d = np.random.default_rng(n).normal(size=(6, n))
  d[0] = 0.0
  np.testing.assert_allclose(sq.sign_flip_p_many(d), [stats.sign_flip_p(r) for r in d], rtol=1e-6)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_the_design_keeps_the_false_verdict_rate_at_alpha_and_the_naive_rule_does_not(m):
  design = sq.calibrate(LOOKS, m)
  # Fresh null sweeps (another seed than the calibration's): the rate over all looks.
  p = sq._null_p(LOOKS, m, 4000, seed=1000 + m)  # pylint: disable=protected-access
  rate = sq.fwer(p, design.levels[m])
  mc_error = 2 * np.sqrt(0.05 * 0.95 / 4000)  # two standard errors: 0.0069
  assert rate <= 0.05 + mc_error, rate
  # Testing every look at 5% (the former rule) is optional stopping: far above 5%.
  naive = sq.fwer(p, [0.05] * len(LOOKS))
  assert naive > 0.10, naive
  # The boundary spends little early and most at the end, and never more than alpha at a look.
  levels = design.levels[m]
  assert all(a < b for a, b in zip(levels, levels[1:])) and levels[-1] < 0.05
  assert levels[0] < 0.002


def test_decide_is_the_rule_the_simulation_measures():
  looks = (6, 8, 10)
  design = sq.calibrate(looks, 2, sims=2000)
  rng = np.random.default_rng(7)
  for _ in range(25):  # null sweeps, one look after another, through decide itself
    base, arms = rng.normal(size=10), rng.normal(size=(2, 10))
    decided, any_verdict = {}, False
    p_at = []
    for k, n in enumerate(looks):
      comps = []
      for j in range(2):
        d = arms[j, :n] - base[:n]
        comps.append(_comp(f"a{j}", d))
      p_at.append([c["p"] for c in comps])
      decisions = sq.decide(comps, design, k, decided)
      decided = {a: d for a, d in decisions.items() if d["verdict"]}
      any_verdict |= any(d["verdict"] in ("better", "worse") for d in decisions.values())
      for d in decisions.values():  # a verdict exactly when the interval at its level excludes 0
        assert (d["verdict"] in ("better", "worse")) == (d["ci_low"] > 0 or d["ci_high"] < 0)
    p = np.array(p_at).T[:, :, None]  # (m, looks, 1)
    assert any_verdict == (sq.fwer(p, design.levels[2]) == 1.0)


def test_a_decided_comparison_keeps_its_verdict_and_frees_its_share():
  design = sq.calibrate((6, 10, 14), 2, sims=2000)
  d = -1.0 - 0.1 * np.arange(10)  # a clear effect: every sign agrees, p = 2 / 2^10
  strong = _comp("x", d)
  e = 0.1 * np.array([1, -1, 2, -2, 1, -1, 1, -1, 2, -2.0])
  weak = _comp("y", e)
  first = sq.decide([strong, weak], design, 1, {})
  assert first["x"]["verdict"] == "better" and first["y"]["verdict"] is None
  assert first["x"]["level"] == pytest.approx(design.levels[2][1] / 2)  # Holm's first step of two
  assert first["y"]["level"] == pytest.approx(
      design.levels[1][1]
  )  # the second: one comparison left
  later = sq.decide(
      [{**strong, "p": 0.9, "mean_diff": 0.0}, weak],
      design,
      2,
      {a: v for a, v in first.items() if v["verdict"]},
  )
  assert later["x"]["verdict"] == "better" and later["x"]["look"] == 1  # kept from its look
  assert later["y"]["level"] == pytest.approx(design.levels[1][2])  # x's share went to y


def test_arms_equivalent_within_delta_stop_with_an_equivalence_verdict_before_the_budget():
  looks = sq.looks_of(7, 2, 15)
  design = sq.calibrate(looks, 1, delta=0.5, sims=2000)
  rng = np.random.default_rng(3)
  base = rng.normal(10, 3, 15)  # a large seed-to-seed spread, a tiny paired difference
  arm = base + rng.normal(0, 0.05, 15)
  stopped = None
  for k, n in enumerate(looks):
    d = arm[:n] - base[:n]
    c = _comp("x", d)
    decision = sq.decide([c], design, k, {})["x"]
    if decision["verdict"]:
      stopped = (n, decision)
      break
  assert stopped and stopped[0] < looks[-1], stopped
  n, decision = stopped
  assert decision["verdict"] == "equivalent within ±0.5"
  assert -0.5 < decision["ci_low"] <= 0 <= decision["ci_high"] < 0.5
  # Without a smallest effect of interest the same data only say "no verdict yet".
  plain = sq.calibrate(looks, 1, sims=2000)
  d = arm[:n] - base[:n]
  c = _comp("x", d)
  assert sq.decide([c], plain, looks.index(n), {})["x"]["verdict"] is None


def test_power_at_one_look_is_the_fixed_n_tests_and_grows_with_seeds():
  from scipy import stats as sp_stats  # pylint: disable=g-import-not-at-top

  n, dz = 12, 1.0
  design = sq.calibrate((n,), 1, sims=2000)  # one look: a fixed-n test at (about) 5%
  t_crit = sp_stats.t.ppf(0.975, n - 1)
  reference = sp_stats.nct.sf(t_crit, n - 1, dz * np.sqrt(n))  # the paired t-test's power
  assert sq.power(design, dz, 1.0) == pytest.approx(reference, abs=0.06)
  assert sq.seeds_for_power(7, 2, 1, 1.0, 1.0) < sq.seeds_for_power(7, 2, 1, 0.5, 1.0)
  assert sq.seeds_for_power(7, 2, 1, 0.01, 1.0) is None  # beyond 60 seeds: said so, not guessed


@pytest.mark.parametrize("m", [2, 4])
def test_the_card_sweeps_design_keeps_the_false_verdict_rate_at_alpha(m):
  # The DCGAN question sweeps' default looks (experiments/images.py): 11, 16, 21 seeds per arm,
  # 2 comparisons (dcgan_label_smoothing) to 4 (dcgan_losses), on fresh null sweeps.
  from experiments import images  # pylint: disable=g-import-not-at-top

  looks = sq.looks_of(*images.SWEEP_DESIGN["seeds_on_demand"])
  assert looks == (11, 16, 21)
  design = sq.calibrate(looks, m)
  p = sq._null_p(looks, m, 4000, seed=2000 + m)  # pylint: disable=protected-access
  assert sq.fwer(p, design.levels[m]) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 4000)
  assert sq.fwer(p, [0.05] * len(looks)) > 0.07  # three looks at 5% each: optional stopping
