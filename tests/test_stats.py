"""Paired comparisons: the statistics against scipy and hand-computed cases, the report's verdicts,
seeds on demand and the stopping rule."""

import itertools
import json
import types

import numpy as np
import pytest
from scipy import stats as sp_stats

from experiments import design_loop
from experiments import report
from experiments import runner
from experiments.commands import run
from gen_models import sequential
from gen_models import stats


def _brute_sign_flip_p(d):
  """Two-sided sign-flip p-value by enumerating every sign pattern (the textbook definition:
  the share of patterns whose |sum| is at least the observed |sum|)."""
  d = np.asarray(d, np.float64)
  obs = abs(d.sum())
  sums = [abs(np.dot(s, d)) for s in itertools.product((-1, 1), repeat=len(d))]
  return float(np.mean(np.asarray(sums) >= obs - 1e-12))


@pytest.mark.parametrize(
    "d",
    [
        [0.3, 0.5, 0.1, 0.9, 0.4, 0.2],
        [0.3, -0.5, 0.1, 0.9, -0.4, 0.2, 0.05],
        [1.0, 2.0, 3.0],
        [-0.2, -0.1, -0.4, -0.3, -0.25, -0.15, -0.05, -0.35],
    ],
)
def test_sign_flip_p_equals_full_enumeration(d):
  # For symmetric null distributions 2 * min(one-sided) equals the |sum| enumeration.
  assert stats.sign_flip_p(d) == pytest.approx(_brute_sign_flip_p(d), abs=1e-12)


def _scipy_sign_flip_p(d):
  res = sp_stats.permutation_test(
      (np.asarray(d, np.float64),),
      lambda x, axis: np.mean(x, axis=axis),
      permutation_type="samples",
      vectorized=True,
      n_resamples=20_000,
      random_state=0,
  )
  return float(min(1.0, res.pvalue))


def test_sign_flip_p_is_scipys_p_to_the_bit():
  """The exact path (no scipy call) gives scipy's p with ==: every n it serves, ties that only
  scipy's 100-eps tolerance breaks (decimals whose pattern sums round differently), the shifted
  differences an interval's bisection tests, and the Monte Carlo and non-finite cases it leaves
  to scipy."""
  rng = np.random.default_rng(0)
  cases = []
  for n in range(2, stats.EXACT_UP_TO + 2):
    for kind in range(4 if n <= 10 else 2):
      d = [
          lambda: rng.normal(size=n),
          lambda: rng.choice([0.1, 0.2, -0.3, 0.3, -0.1, 0.7], size=n),
          lambda: rng.integers(-3, 4, size=n).astype(float),
          lambda: 0.3 + 1e-7 * rng.normal(size=n),
      ][kind]()
      cases += [d, d - d[0], d - np.mean(d[: n // 2])]
  cases += [[0.1, 0.2, np.nan, 0.3, 0.4, 0.5], [0.0] * 7]
  got = [stats.sign_flip_p(d) for d in cases]
  assert got == [1.0 if not np.any(d) else _scipy_sign_flip_p(d) for d in cases]


def test_wilcoxon_agrees_on_a_clear_shift():
  d = [0.31, 0.52, 0.12, 0.93, 0.44, 0.27, 0.65, 0.18]
  assert stats.sign_flip_p(d) == pytest.approx(2 / 256)  # every difference positive
  assert sp_stats.wilcoxon(d).pvalue == pytest.approx(2 / 256)  # the rank test agrees here


def test_interval_is_the_inverted_test():
  d = np.array([0.31, 0.52, 0.12, 0.93, 0.44, 0.27, 0.65, 0.18])
  lo, hi = stats.sign_flip_interval(d)
  assert lo < d.mean() < hi
  # Inside the interval the shifted test does not reject; just outside it does.
  for delta, rejected in (
      (lo + 1e-3, False),
      (hi - 1e-3, False),
      (lo - 1e-3, True),
      (hi + 1e-3, True),
  ):
    assert (_brute_sign_flip_p(d - delta) < 0.05) == rejected, delta  # rejected: p below alpha
  # With 5 or fewer seeds no sign pattern is rare enough: the exact interval is unbounded.
  assert stats.sign_flip_interval(d[:5]) == (-np.inf, np.inf)


def test_holm_on_a_textbook_example():
  # p sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4*0.005, 3*0.01, max(.., 2*0.03), max(.., 1*0.04).
  assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
  assert stats.holm([0.5]) == [0.5]
  assert stats.holm([0.3, 0.4]) == pytest.approx([0.6, 0.6])


def test_min_seeds_for_a_verdict():
  assert stats.min_seeds(1) == 6 and stats.min_seeds(2) == 7 and stats.min_seeds(3) == 7


def _arms(values_by_arm):
  return {arm: {"m": dict(enumerate(v))} for arm, v in values_by_arm.items()}


def test_a_known_shift_is_found_and_identical_arms_are_not():
  rng = np.random.default_rng(0)
  base = rng.normal(10, 3, 8)  # seed-to-seed spread far larger than the shift
  arms = _arms({"base": base, "shifted": base - 0.5 + rng.normal(0, 0.05, 8), "same": base.copy()})
  comps = {c["arm"]: c for c in stats.compare(arms, "base", {"m": True})}
  assert comps["shifted"]["verdict"] == "better" and comps["shifted"]["n"] == 8
  assert (
      comps["shifted"]["ci_low"] < comps["shifted"]["mean_diff"] < comps["shifted"]["ci_high"] < 0
  )
  assert comps["shifted"]["mean_diff"] == pytest.approx(-0.5, abs=0.05)
  # 2 comparisons
  assert comps["shifted"]["p_holm"] == pytest.approx(min(1, 2 * comps["shifted"]["p"]))
  assert comps["same"]["verdict"].startswith("no difference detected")
  worse = stats.compare(_arms({"base": base, "w": base + 1.0}), "base", {"m": True})[0]
  assert worse["verdict"] == "worse"
  higher_better = stats.compare(_arms({"base": base, "w": base + 1.0}), "base", {"m": False})[0]
  assert higher_better["verdict"] == "better"


def test_three_seeds_never_give_a_verdict_and_say_how_many_would():
  comp = stats.compare(_arms({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 2.0]}), "a", {"m": True})[0]
  assert (
      comp["verdict"].startswith("no difference detected") and "at least 6 seeds" in comp["verdict"]
  )


# --- the sweep: verdicts on disk, seeds on demand, the stopping rule ---------------------------

SWEEP = [
    "--exp=gaussian1d_loss",
    "--set",
    "train.steps=60",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=20",
    "--set",
    "ckpt.every=20",
    "--set",
    "eval.num_samples=2000",
    "--set",
    "eval.kl_samples=500",
    "--wandb",
    "disabled",
    "--quiet",
]


@pytest.mark.slow
def test_a_sweep_writes_comparisons_and_adding_seeds_reruns_nothing(tmp_path, capsys):
  assert run.main(SWEEP + ["--seeds", "2", "--out", str(tmp_path)]) == 0
  exp_dir = tmp_path / "gaussian1d_loss"
  summary = json.loads((exp_dir / "summary.json").read_text())
  c = summary["comparisons"][0]
  assert {
      "arm",
      "baseline",
      "metric",
      "n",
      "mean_diff",
      "ci_low",
      "ci_high",
      "p",
      "p_holm",
      "verdict",
  } <= set(c)
  assert c["arm"] == "minimax" and c["baseline"] == "ns" and c["metric"] == "w1" and c["n"] == 2
  # the headline value is the mean of the (at most 3) evaluations in the last quarter of training:
  # of the evaluations at steps 0, 20, 40, 60 only step 60 is at or after 0.75 x 60 = 45
  rows = [
      json.loads(l)
      for l in (exp_dir / "minimax" / "seed1" / "metrics.jsonl").read_text().splitlines()
  ]
  w1 = [r["eval/w1"] for r in rows if "eval/w1" in r and r["step"] >= 45]
  arm = next(a for a in summary["arms"] if a["name"] == "minimax")
  assert len(w1) == 1 and arm["metrics"]["w1_last3"]["per_seed"][1] == pytest.approx(w1[0])
  report = (exp_dir / "report.md").read_text()
  assert "## Verdicts" in report and "minimax vs ns" in report and "forest.png" in report
  stamp = {p: p.stat().st_mtime_ns for p in exp_dir.glob("*/seed*/checkpoints/*")}
  capsys.readouterr()
  assert run.main(SWEEP + ["--seeds", "3", "--out", str(tmp_path), "--resume"]) == 0
  out = capsys.readouterr().out
  assert out.count("finished earlier, skipped") == 4 and "[1/2] ns/seed2" in out
  assert stamp == {p: p.stat().st_mtime_ns for p in stamp}  # the first seeds were not touched
  assert json.loads((exp_dir / "summary.json").read_text())["comparisons"][0]["n"] == 3


@pytest.mark.slow
def test_until_decided_adds_seeds_and_stops_at_the_budget(tmp_path, capsys):
  assert (
      run.main(
          SWEEP
          + [
              "--seeds",
              "2",
              "--out",
              str(tmp_path),
              "--until-decided",
              "--max-seeds",
              "4",
              "--seed-batch",
              "1",
          ]
      )
      == 0
  )
  out = capsys.readouterr().out
  assert "a group-sequential design for 1 comparison(s) on w1, fixed now: 3 looks at 2, 3, 4" in out
  assert "Adding 1 seed(s) per arm (next look: 3)" in out
  assert "stopped at look 3 of 3 (4 seeds per arm): the seed budget" in out
  assert sorted(p.name for p in (tmp_path / "gaussian1d_loss" / "ns").iterdir()) == [
      "seed0",
      "seed1",
      "seed2",
      "seed3",
  ]


@pytest.mark.slow
def test_until_decided_stops_once_decided(tmp_path, capsys, monkeypatch):

  calls = []
  real = sequential.decide

  def decided_at_once(comps, design, look, decided):
    calls.append(look)
    return {a: {**d, "verdict": "better"} for a, d in real(comps, design, look, decided).items()}

  monkeypatch.setattr(sequential, "decide", decided_at_once)
  # Once a round has run, the loop takes the decision from it (runner.Round), never from
  # summary.json (design_loop's reads go through this stand-in; the report's and runner's do not;
  # the pilot's summary read before the first round is allowed).

  real_read, real_plan, rounds = design_loop.files.read, runner.run_plan, []

  def no_summary(path, kind, *a, **k):
    assert not (rounds and kind == "summary"), "the --until-decided loop re-read summary.json"
    return real_read(path, kind, *a, **k)

  def counted(*a, **k):
    rounds.append(1)
    return real_plan(*a, **k)

  monkeypatch.setattr(design_loop, "files", types.SimpleNamespace(read=no_summary))
  monkeypatch.setattr(runner, "run_plan", counted)
  argv = SWEEP + ["--seeds", "2", "--out", str(tmp_path), "--until-decided", "--max-seeds", "9"]
  assert run.main(argv) == 0
  out = capsys.readouterr().out
  assert "stopped at look 1 of 5 (2 seeds per arm): every comparison is decided" in out
  assert calls == [0] and not (tmp_path / "gaussian1d_loss" / "ns" / "seed2").exists()
  # The design is kept: the same sweep with other looks is refused (they would void its error rate).
  assert (
      run.main(
          SWEEP
          + [
              "--seeds",
              "2",
              "--out",
              str(tmp_path),
              "--until-decided",
              "--max-seeds",
              "8",
              "--resume",
          ]
      )
      == 2
  )
  assert "another seeds-on-demand design" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_scored_by_different_extractors_are_not_put_in_one_table(tmp_path, capsys):

  assert run.main(SWEEP + ["--seeds", "1", "--out", str(tmp_path)]) == 0
  exp_dir = tmp_path / "gaussian1d_loss"
  for arm, ident in (
      ("ns", "fashion_mnist-lenet-v2:aaaa"),
      ("minimax", "fashion_mnist-lenet-v2:bbbb"),
  ):
    path = exp_dir / arm / "seed0" / "result.json"
    result = json.loads(path.read_text())
    result["extractors"] = {"ident": ident, "members": []}
    path.write_text(json.dumps(result))
  before = (exp_dir / "summary.json").read_text()
  capsys.readouterr()
  assert report.main([str(exp_dir)]) == 2
  err = capsys.readouterr().err
  assert "different feature extractors" in err and "aaaa" in err and "bbbb" in err
  assert (exp_dir / "summary.json").read_text() == before  # nothing rewritten


def test_one_seed_gives_no_verdict_and_no_error():
  comp = stats.compare(_arms({"a": [1.0], "b": [2.0]}), "a", {"m": True})[0]
  assert (
      comp["p"] == 1.0
      and comp["ci_low"] == -np.inf
      and comp["verdict"].startswith("no difference detected")
  )
