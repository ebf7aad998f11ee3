import numpy as np
import pytest
from scipy import integrate
from scipy import special, stats

from gen_models import plots
from gen_models.metrics import distribution as dist


def test_hist_kl_matches_scipy_entropy_on_the_seed_histogram():
  # The seed: 100 bins spanning the real sample, KL(real || fake) of the normalised histograms.
  # With enough fake samples no bin is empty, so the seed's 1e-8 smoothing is immaterial and
  # scipy's relative entropy is the reference.
  rng = np.random.default_rng(0)
  p, q = rng.normal(size=1000), rng.normal(0.3, 1.5, size=200_000)
  counts_p, edges = np.histogram(p, bins=100)
  counts_q, _ = np.histogram(q, bins=edges)
  assert counts_q.min() > 0
  assert dist.hist_kl(p, q) == pytest.approx(stats.entropy(counts_p, counts_q), rel=1e-6)
  assert dist.hist_kl(p, p) == pytest.approx(0.0, abs=1e-6)


def _w1_by_integration(x):
  """W1(empirical, N(0,1)) = integral of |F_n(t) - Phi(t)| dt, by scipy.integrate.quad on each
  interval between consecutive samples (F_n is constant there) and on the two tails."""

  x = np.sort(np.asarray(x, np.float64))
  n = len(x)
  total = integrate.quad(lambda t: special.ndtr(t), -np.inf, x[0])[0]
  total += integrate.quad(lambda t: special.ndtr(-t), x[-1], np.inf)[0]
  for i in range(n - 1):
    if x[i + 1] > x[i]:
      c = (i + 1) / n
      split = min(max(special.ndtri(c), x[i]), x[i + 1])  # |c - Phi| changes sign at Phi^-1(c)
      total += integrate.quad(lambda t: c - special.ndtr(t), x[i], split)[0]
      total += integrate.quad(lambda t: special.ndtr(t) - c, split, x[i + 1])[0]
  return total


def test_w1_equals_the_integral_of_the_cdf_gap():
  rng = np.random.default_rng(6)
  for x in (
      rng.normal(0.3, 1.2, 400),
      rng.uniform(-1, 1, 300),
      rng.normal(size=500).astype(np.float32),
      np.array([0.0]),
      np.array([-2.0, 0.1, 0.1, 3.0]),
  ):
    assert dist.w1_to_normal(x) == pytest.approx(_w1_by_integration(x), rel=1e-7, abs=1e-9)


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


def _w1_plain(x):
  """W1 as first written: G evaluated separately at a, b and t for every segment."""
  x = np.sort(np.asarray(x, np.float64))

  def g(v):
    return v * special.ndtr(v) + np.exp(-0.5 * v * v) / np.sqrt(2 * np.pi)

  n = x.size
  a, b, c = x[:-1], x[1:], np.arange(1, n) / n
  t = np.clip(special.ndtri(c), a, b)
  middle = (c * (t - a) - (g(t) - g(a))) + ((g(b) - g(t)) - c * (b - t))
  return g(x[0]) + g(-x[-1]) + np.sum(middle)


def test_shared_work_matches_the_plain_formulas():
  """The evaluation shares Phi(x), G(x) and Phi^-1(i/n) between W1, KS and the moments; it must
  give the plain formulas' values."""
  rng = np.random.default_rng(4)
  cases = (
      rng.normal(size=100_000).astype(np.float32),
      rng.normal(0.2, 0.7, 3333),
      rng.uniform(-1, 1, 1000),
      np.full(50, 0.5),
  )
  for x in cases:
    assert dist.w1_to_normal(x) == pytest.approx(_w1_plain(x), rel=1e-12, abs=1e-15)
    x64 = np.asarray(x, np.float64)
    assert dist.ks_to_normal(x) == pytest.approx(stats.kstest(x64, "norm").statistic, rel=1e-12)
    m = dist.moments(x)
    assert m["mean"] == pytest.approx(np.mean(x64), rel=1e-12)
    assert m["std"] == pytest.approx(np.std(x64), rel=1e-12)
    if np.ptp(x64) > 0:
      assert m["skew"] == pytest.approx(stats.skew(x64), rel=1e-9, abs=1e-12)
      assert m["kurtosis"] == pytest.approx(stats.kurtosis(x64), rel=1e-9, abs=1e-12)
    else:  # scipy: nan for constant data
      assert np.isnan(m["skew"]) and np.isnan(m["kurtosis"])
  x = cases[0]
  out = dist.evaluate(x[:1000], x[:1000], x)
  assert out["w1"] == dist.w1_to_normal(x) and out["ks"] == dist.ks_to_normal(x)
  assert out["skew"] == pytest.approx(dist.moments(x)["skew"], rel=1e-9)  # summed in sorted order


def test_binned_kde_matches_scipy():
  """The density figure's KDE (linear binning + one convolution) against scipy's direct sum."""

  rng = np.random.default_rng(5)
  xs = np.linspace(-4, 4, 400)
  for values in (
      rng.normal(size=20_000),
      rng.normal(1, 0.3, 1000),
      rng.uniform(-1, 1, 3000),
      np.concatenate([rng.normal(size=5000), [1e6]]),
  ):
    want = stats.gaussian_kde(values, bw_method=0.3)(xs)
    assert np.max(np.abs(plots.kde_1d(values, xs, 0.3) - want)) < 1e-3 * want.max()
  assert plots.kde_1d(np.full(100, 0.5), xs, 0.3) is None  # collapsed G: no curve, no crash
