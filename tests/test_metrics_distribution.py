import numpy as np
import pytest
from scipy import stats

from gen_models.metrics import distribution as dist


def test_hist_kl_is_the_seed_formula():
  rng = np.random.default_rng(0)
  p, q = rng.normal(size=1000), rng.normal(0.5, 1, size=1000)
  hp, edges = np.histogram(p, bins=100)
  hq, _ = np.histogram(q, bins=edges)
  hp, hq = hp / (hp.sum() + 1e-8), hq / (hq.sum() + 1e-8)
  want = np.sum(hp * (np.log(hp + 1e-8) - np.log(hq + 1e-8)))
  assert dist.hist_kl(p, q) == pytest.approx(want)
  assert dist.hist_kl(p, p) == pytest.approx(0.0, abs=1e-6)


def test_kl_floor_is_about_0_2_at_1000_samples():
  floor = dist.kl_floor(1000)
  assert 0.17 < floor["median"] < 0.23
  assert floor["q05"] < floor["median"] < floor["q95"]


def test_w1_exact_cases():
  assert dist.w1_to_normal([0.0]) == pytest.approx(np.sqrt(2 / np.pi))  # E|X|
  rng = np.random.default_rng(1)
  for mu, sigma in [(0.3, 1.0), (0.0, 2.0), (-1.0, 0.5)]:
    x = rng.normal(mu, sigma, 200_000)
    ref = stats.wasserstein_distance(x, rng.normal(size=2_000_000))
    assert dist.w1_to_normal(x) == pytest.approx(ref, abs=3e-3)
  # a pure shift of N(0,1) by mu has W1 = |mu|
  assert dist.w1_to_normal(rng.normal(0.25, 1.0, 400_000)) == pytest.approx(0.25, abs=5e-3)


def test_ks_matches_scipy_and_floors_are_small():
  x = np.random.default_rng(2).normal(0.1, 1.1, 50_000)
  assert dist.ks_to_normal(x) == pytest.approx(stats.kstest(x, "norm").statistic, rel=1e-9)
  floor = dist.precise_floor(100_000, trials=5)
  assert floor["w1"] < 0.006 and floor["ks"] < 0.006


def test_moments_and_evaluate():
  x = np.random.default_rng(3).normal(size=100_000)
  m = dist.moments(x)
  assert abs(m["mean"]) < 0.02 and abs(m["std"] - 1) < 0.02
  assert abs(m["skew"]) < 0.05 and abs(m["kurtosis"]) < 0.1
  out = dist.evaluate(x[:1000], x[1000:2000], x)
  assert set(out) >= {"kl", "w1", "ks", "mean", "std", "skew", "kurtosis"}
