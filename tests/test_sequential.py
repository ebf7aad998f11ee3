"""Seeds on demand as a group-sequential design (gen_models/sequential.py): under no difference the
chance of any false verdict over all looks is at most 5% for 1, 2 and 3 comparisons, where testing
at 5% after every batch (the former --until-decided) gives about 14%; decisions follow the design's
levels and keep their verdict; an equivalent arm stops with an equivalence verdict."""

import numpy as np
import pytest
from scipy import stats as sp_stats

from experiments import images
from gen_models import design_sim
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_power_at_one_look_is_the_fixed_n_tests_and_grows_with_seeds():

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

  looks = sq.looks_of(*images.SWEEP_DESIGN["seeds_on_demand"])
  assert looks == (11, 16, 21)
  design = sq.calibrate(looks, m)
  p = sq._null_p(looks, m, 4000, seed=2000 + m)  # pylint: disable=protected-access
  assert sq.fwer(p, design.levels[m]) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 4000)
  assert sq.fwer(p, [0.05] * len(looks)) > 0.07  # three looks at 5% each: optional stopping


CARD = (11, 16, 21)  # the DCGAN question sweeps' looks


@pytest.mark.slow
def test_the_error_rate_holds_in_every_cell_of_the_grid():
  """1-4 comparisons x normal / t3 / log-normal run noise x all-null / one null beside real
  arms: 8,000 fresh sweeps per cell (not the calibration's), each decided
  by the design's own step_down on its own p-values: the false-verdict rate is at most 5% + 2
  Monte Carlo standard errors (0.0049) everywhere. The realised rates are docs/metrics.md's table.
  """

  cells = design_sim.grid(CARD, max_m=4, sims=8000, seed=100)
  assert len(cells) == 21
  bad = [(c["cell"], c["kind"], c["rate"]) for c in cells if c["rate"] > 0.05 + c["mc_error"]]
  assert not bad, bad
  # The same sweeps tested at 5% at every look (no design) are far above: the grid can fail.
  naive = sq.Design(CARD, 1, 0.05, {1: (0.05,) * 3}, {1: 0.0})
  assert design_sim.simulate(naive, [0.0], sims=8000, seed=100)["false"] > 0.09


def test_the_simulation_replays_decide_sweep_by_sweep():
  """design_sim's vectorised sweeps and decide (with its intervals), look by look on the same
  values, diverged runs included: the same verdict on every comparison of every sweep."""

  design = sq.calibrate(CARD, 3)
  effects, diverge = [0.0, 0.9, 1.2], {1: 0.2, "baseline": 0.05}
  sim = design_sim.simulate(design, effects, diverge=diverge, sims=40, seed=5)
  values = design_sim.sweep_values(effects, CARD[-1], diverge=diverge, sims=40, seed=5)
  as_dict = lambda row: {s: None if np.isnan(v) else float(v) for s, v in enumerate(row)}
  for i in range(40):
    decided = {}
    runs = [as_dict(values[r, i]) for r in range(4)]
    for k, n in enumerate(CARD):
      comps = [
          {"arm": j, "diffs": sq.look_diffs(runs[j + 1], runs[0], range(n), True),
           "lower_is_better": True}
          for j in range(3)
      ]  # fmt: skip
      out = sq.decide(comps, design, k, decided)
      decided = {a: d for a, d in out.items() if d["verdict"]}
      for d in out.values():  # a verdict exactly when the interval at its level excludes 0
        assert (d["verdict"] in ("better", "worse")) == (d["ci_low"] > 0 or d["ci_high"] < 0)
    code = {"better": -1, "worse": 1}
    got = [code.get((decided.get(j) or {}).get("verdict"), 0) for j in range(3)]
    assert got == sim["verdicts"][i].tolist(), (i, got, sim["verdicts"][i])


def test_a_diverged_run_is_the_worst_value_of_its_look_and_two_diverged_runs_tie():
  a = {0: 1.0, 1: None, 2: 3.0, 3: None}
  b = {0: 2.0, 1: 5.0, 2: None, 3: None}
  # lower is better: the worst value seen at this look is 5.0
  np.testing.assert_array_equal(sq.look_diffs(a, b, range(4), True), [-1.0, 0.0, -2.0, 0.0])
  # higher is better: the worst is 1.0
  np.testing.assert_array_equal(sq.look_diffs(a, b, range(4), False), [-1.0, -4.0, 2.0, 0.0])
  assert sq.look_diffs(a, {0: 2.0}, range(2), True) is None  # a seed not run yet: it waits
  assert np.all(sq.look_diffs({0: None}, {0: None}, [0], True) == 0)


@pytest.mark.parametrize("prob", [0.05, 0.25])
def test_divergence_never_halts_the_design_nor_lends_a_null_arm_a_verdict(prob):

  design = sq.calibrate(CARD, 2)
  # arm 0: no difference; arm 1: better when it finishes (d_z 0.5) but diverges on `prob`
  r = design_sim.simulate(design, [0.0, -0.5], diverge={1: prob}, sims=8000, seed=11)
  assert r["false"] <= 0.05 + r["mc_error"], r["false"]  # the null arm beside it
  assert r["looks_reached"][-1] > 0.9  # sweeps go on to the last look (nothing halts them)
  # an arm no better where it finishes that diverges on `prob` of its seeds is never "better"
  r = design_sim.simulate(design, [0.0, 0.0], diverge={1: prob}, sims=8000, seed=12)
  assert r["better"][1] <= 0.005, r["better"]
  assert r["false"] <= 0.05 + r["mc_error"]  # arm 0 is the only true null here


@pytest.mark.parametrize("kind", ["normal", "t3", "lognormal", "skewed"])
def test_false_equivalence_stays_under_5_percent_for_skewed_differences(kind):
  """A true difference of exactly +delta (5, the DCGAN sweeps' margin) at per-seed sd 6-16:
  the plain two one-sided sign-flip tests called it equivalent in up to 17% of log-normal
  sweeps (measured before this check); with the skew-aware rule at most 5%."""

  design = sq.calibrate(CARD, 1, delta=5.0)
  rates = [design_sim.equivalence_rate(design, 5.0, sd, kind, sims=2000, seed=sd) for sd in
           (6, 10, 13, 16)]  # fmt: skip
  assert max(rates) <= 0.05, rates
  # the rule still finds an arm truly equal at a small spread equivalent
  assert design_sim.equivalence_rate(design, 5.0, 3.0, kind, sims=500, true=0.0) > 0.5


def test_plan_gives_the_range_an_11_seed_pilot_supports():
  """--plan's range: its ends are the seeds needed at the ends of the sd's 80% interval, which
  covers the true sd in 80% of simulated 11-seed pilots (chi-square, checked against the truth
  here); the budget grows with the sd, so the seeds range covers the true need as often."""
  rng = np.random.default_rng(0)
  pilots = rng.normal(0.0, 2.0, (4000, 11))
  n = 11
  sd = pilots.std(axis=1, ddof=1)

  low = sd * np.sqrt((n - 1) / sp_stats.chi2.ppf(0.9, n - 1))
  high = sd * np.sqrt((n - 1) / sp_stats.chi2.ppf(0.1, n - 1))
  assert np.mean((low <= 2.0) & (2.0 <= high)) == pytest.approx(0.8, abs=0.02)
  r = sq.seeds_range(pilots[0], 11, 5, 1, effect=1.0)
  assert r["sd_low"] == pytest.approx(low[0]) and r["sd_high"] == pytest.approx(high[0])
  assert r["low"] == sq.seeds_for_power(11, 5, 1, 1.0, r["sd_low"])
  assert r["high"] == sq.seeds_for_power(11, 5, 1, 1.0, r["sd_high"])
  assert r["low"] <= r["point"] and (r["high"] is None or r["point"] <= r["high"])
  assert r["low"] < (r["high"] or 61)  # a range, not one number
  # The effect seen: an interval reaching 0 leaves the upper end open ("over 60").
  weak = sq.seeds_range(np.array([0.3, -0.2, 0.5, -0.4, 0.1, 0.2, -0.1, 0.4, -0.3, 0.2, 0.1]), 11,
                        5, 1)  # fmt: skip
  assert weak["effect_low"] == 0.0 and weak["high"] is None
