"""Verdicts a statistician would sign (issue 25, the fixed-n parts): the printed interval agrees
with the verdict, divergence withholds a verdict instead of dropping out silently, an image verdict
"holds under every extractor" only when each extractor's own test agrees, and the headline value
never includes an untrained evaluation."""

import json

import numpy as np
import pytest

from experiments import registry
from gen_models import config as config_lib
from gen_models import report
from gen_models import runs
from gen_models import sequential
from gen_models import stats


def _compare(values, lower=True):
  arms = {arm: {"m": dict(enumerate(v))} for arm, v in values.items()}
  return stats.compare(arms, "base", {"m": lower})


def _excludes_zero(c):
  return c["ci_low"] > 0 or c["ci_high"] < 0


@pytest.mark.slow
def test_a_verdict_is_given_exactly_when_the_printed_interval_excludes_zero():
  rng = np.random.default_rng(0)
  checked, verdicts = 0, 0
  for _ in range(120):
    n, m = int(rng.integers(6, 11)), int(rng.integers(1, 4))
    base = rng.normal(0, 1, n)
    values = {"base": base}
    for j in range(m):
      values[f"a{j}"] = base + rng.normal(rng.choice([0.0, 0.4, 0.8, 1.5]), 1.0, n)
    for c in _compare(values):
      decided = c["verdict"] in ("better", "worse")
      assert decided == _excludes_zero(c), c
      assert c["level"] <= stats.ALPHA
      checked, verdicts = checked + 1, verdicts + decided
  assert checked > 200 and 20 < verdicts < checked - 20  # both kinds of case were met


def test_the_interval_is_at_the_level_holm_tested_the_comparison_at():
  # Two comparisons: the smaller p is tested at alpha / 2, the other at alpha if the first rejected.
  assert stats.holm_levels([0.01, 0.04]) == pytest.approx([0.025, 0.05])
  assert stats.holm_levels([0.04, 0.03]) == pytest.approx([0.025, 0.025])  # the first step failed
  assert stats.holm_levels([0.001, 0.02, 0.3]) == pytest.approx([0.05 / 3, 0.025, 0.05])
  # A case where the unadjusted 95% interval excludes 0 but Holm does not reject (the README's old
  # "r1 vs none" contradiction): the printed interval must then include 0.
  d = np.array([0.9, 1.1, 0.7, 1.3, -0.2, 0.8, 1.0])
  values = {"base": np.zeros(7), "x": d, "y": np.zeros(7) + np.array([1, -1, 1, -1, 1, -1, 0.5])}
  c = next(c for c in _compare(values) if c["arm"] == "x")
  lo95, hi95 = stats.sign_flip_interval(d, 0.05)
  assert lo95 > 0  # unadjusted: excludes 0
  assert c["p"] < 0.05 <= c["p_holm"] and not c["verdict"].startswith("better")
  assert c["ci_low"] <= 0 <= c["ci_high"]


def _summary(arms, family="gan1d"):
  return {"family": family, "arms": arms}


def _arm(name, values, metric="w1_last3", diverged=(), extra=None):
  seeds = [s for s in range(len(values)) if s not in diverged]
  metrics = {metric: {"per_seed": [values[s] for s in seeds]}}
  metrics.update(extra or {})
  return {"name": name, "seeds": seeds, "metrics": metrics, "diverged": list(diverged)}


def test_an_arm_that_diverges_more_often_gets_no_verdict_and_the_counts_are_shown():
  exp = registry.Experiment("x", "x", registry.get("gaussian1d").config, (("base", {}), ("x", {})))
  base = [0.30, 0.31, 0.29, 0.32, 0.30, 0.33, 0.31, 0.30]
  better = [v - 0.05 for v in base]  # better on every seed it finishes
  diverging = _summary([_arm("base", base), _arm("x", better, diverged=(2, 5))])
  c = next(c for c in report.comparisons(diverging, exp, 3) if c["metric"] == "w1")
  assert c["diverged"] == {"x": [2, 5], "base": []}
  assert c["verdict"].startswith("no verdict: x diverged on 2 seed(s), base on 0")
  assert c["ci_low"] is None and c["ci_high"] is None  # no interval either: they agree
  assert c["divergence_p"] == pytest.approx(0.5)  # 2 of 2 discordant seeds: binomial p = 0.5
  # The same arm without the divergences is better: the rule is what withheld the verdict.
  clean = _summary([_arm("base", base), _arm("x", better)])
  c = next(c for c in report.comparisons(clean, exp, 3) if c["metric"] == "w1")
  assert c["verdict"].startswith("better") and c["n"] == 8
  # Both arms diverging on the same seed: the other seven are compared as usual.
  both = _summary([_arm("base", base, diverged=(3,)), _arm("x", better, diverged=(3,))])
  c = next(c for c in report.comparisons(both, exp, 3) if c["metric"] == "w1")
  assert c["n"] == 7 and c["verdict"].startswith("better") and "divergence_p" not in c


def test_holds_under_every_extractor_only_when_each_extractors_test_agrees():
  cfg = registry.get("dcgan").config
  exp = registry.Experiment("y", "y", cfg, (("base", {}), ("x", {})))
  rng = np.random.default_rng(1)
  base = list(rng.normal(100, 5, 8))
  shifted = [v - 10 for v in base]
  noise = lambda: [v + rng.normal(0, 0.1) for v in base]

  def fid_arm(name, main, per_ex):
    extra = {f"fid_e{e}_last3": {"per_seed": v} for e, v in enumerate(per_ex)}
    return _arm(name, main, metric="fid_last3", extra=extra)

  agree = _summary(
      [fid_arm("base", base, [base] * 3), fid_arm("x", shifted, [shifted] * 3)], "image_gan"
  )
  c = next(c for c in report.comparisons(agree, exp, 3) if c["metric"] == "fid")
  assert c["verdict"] == "better (holds under every extractor)" and c["every_extractor"]
  one_disagrees = _summary(
      [fid_arm("base", base, [base] * 3), fid_arm("x", shifted, [shifted, shifted, noise()])],
      "image_gan",
  )
  c = next(c for c in report.comparisons(one_disagrees, exp, 3) if c["metric"] == "fid")
  assert c["verdict"] == "better" and not c["every_extractor"]  # no label that fires on noise
  assert c["per_extractor"][2].startswith("no difference")


def test_the_headline_value_never_includes_an_untrained_evaluation():
  cfg = config_lib.apply_overrides(
      registry.get("gaussian1d").config, {"train.steps": 1000, "eval.every": 500}
  )
  rows = [{"step": s, "eval/w1": v} for s, v in ((0, 0.9), (500, 0.2), (1000, 0.1))]
  values, incomplete = runs.headline_values(rows, cfg, {"w1": 0.1})
  assert values["w1_last3"] == pytest.approx(0.1) and not incomplete  # step 0 and 500 < 750
  cfg = config_lib.apply_overrides(cfg, {"eval.every": 100})
  rows = [{"step": s, "eval/w1": s / 1000} for s in range(0, 1001, 100)]
  values, _ = runs.headline_values(rows, cfg, {"w1": 1.0})
  assert values["w1_last3"] == pytest.approx(np.mean([0.8, 0.9, 1.0]))


def test_one_primary_metric_and_one_holm_family_for_all_secondary_ones():
  cfg = registry.get("dcgan").config
  exp = registry.Experiment("z", "z", cfg, (("base", {}), ("a", {}), ("b", {})))
  rng = np.random.default_rng(2)
  names = ("fid", "kid", "precision", "recall")
  arms = []
  for arm in ("base", "a", "b"):
    vals = {f"{m}_last3": {"per_seed": list(rng.normal(0, 1, 8))} for m in names}
    arms.append({"name": arm, "seeds": list(range(8)), "metrics": vals, "diverged": []})
  comps = report.comparisons(_summary(arms, "image_gan"), exp, 3)
  primary = [c for c in comps if c["role"] == "primary"]
  secondary = [c for c in comps if c["role"] == "secondary"]
  assert {c["metric"] for c in primary} == {"fid"} and len(primary) == 2
  assert len(secondary) == 6  # 2 arms x 3 secondary metrics: one family
  np.testing.assert_allclose(
      [c["p_holm"] for c in secondary], stats.holm([c["p"] for c in secondary])
  )
  np.testing.assert_allclose([c["p_holm"] for c in primary], stats.holm([c["p"] for c in primary]))
  with pytest.raises(config_lib.ConfigError, match="primary metric 'psnr'"):
    registry.Experiment("w", "w", cfg, (("base", {}), ("a", {})), primary="psnr")


def test_a_diverged_run_does_not_halt_the_design_it_counts_as_the_worst_value(tmp_path):
  """Seeds on demand with a run that diverged at the first look (issue 36): the design still
  decides at that look and the next (it used to find no look and halt), with the diverged run
  scored as the worst value of its look, and says so in the verdict."""

  exp = registry.Experiment("x", "x", registry.get("gaussian1d").config, (("base", {}), ("x", {})))
  design = sequential.calibrate((8, 12), 1, sims=2000)
  (tmp_path / "sequential.json").write_text(
      json.dumps({"design": design.to_dict(), "metric": "w1"})
  )
  rng = np.random.default_rng(0)
  base = list(rng.normal(0.3, 0.01, 12))
  x = [v - 0.02 for v in base]  # better on every seed it finishes

  def at(n, diverged):
    summary = _summary([_arm("base", base[:n]), _arm("x", x[:n], diverged=diverged)])
    summary["headline_k"] = 3
    summary["comparisons"] = report.comparisons(summary, exp, 3)
    return summary, report.apply_design(summary, str(tmp_path))

  summary, seq = at(8, diverged=(2,))
  assert seq["look"] == 0  # not None: the look is the seeds run, whatever diverged
  c = next(c for c in summary["comparisons"] if c["metric"] == "w1")
  assert c["n"] == 8 and "1 diverged run(s) counted as the worst value seen" in c["verdict"]
  d = seq["decisions"]["x"]
  assert d["verdict"] is None  # one worst-valued seed of 8 is enough doubt at this look's level
  expected = sequential.look_diffs(
      {s: None if s == 2 else x[s] for s in range(8)}, dict(enumerate(base[:8])), range(8), True
  )
  assert expected[2] == pytest.approx(max(base[:8]) - base[2])  # x's seed 2: base's worst value
  assert d["mean_diff"] == pytest.approx(float(np.mean(expected)))
  summary, seq = at(12, diverged=(2,))
  assert seq["look"] == 1 and seq["stop"]  # the last look is reached and decides
  assert seq["decisions"]["x"]["n"] == 12
