"""gen_models.metrics.device against its oracle, the numpy functions of gen_models.metrics.fid, and
precision/recall/density/coverage against Naeem et al.'s reference code (the `prdc` package).

Tolerances (float32 on the device against float64/float32 numpy): FID within 1e-5 relative (its
matrix square root is float64 on the host either way), the
class statistics within 1e-5; KID and its spread over subsets within 1e-5 of |KID| (the kernel sums
are float64 as in numpy, the products float32); precision, recall, density and coverage are counts
of points inside balls, allowed two points' worth (2 / n) for a distance that rounds across a radius
(on the cases below they agree exactly)."""

import functools
import os

import jax
import numpy as np
import pytest

from gen_models import data as data_lib
from gen_models.metrics import device
from gen_models.metrics import features
from gen_models.metrics import fid
from tests import helpers

COUNTS = ("precision", "recall", "density", "coverage")
KID_REL, KID_ABS = 1e-5, 1e-9
# KID subsets where a case is not about their number: the numpy oracle's KID costs 70 ms a subset
# (three 1,000 x 1,000 kernels), most of these tests' time at the default 100; one case keeps 100.
SUBSETS = 20


def _sets(n, d=128, runs=4, seed=0):
  """A real set and `runs` fake sets of different quality (a shift and a scale each)."""
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(n, d)).astype(np.float32)
  fakes = np.stack([
      (rng.normal(size=(n, d)) * s + shift).astype(np.float32)
      for s, shift in [(1.0, 0.0), (1.25, 0.2), (0.8, -0.1), (1.05, 0.05)][:runs]
  ])
  logits = rng.normal(size=(runs, n, 10)) * np.array([1, 3, 6, 9])[:runs, None, None]
  probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float32)
  return real, fakes, probs


@functools.lru_cache(maxsize=None)
def _oracle(n, runs, subsets):
  """fid.all_metrics of each fake set of _sets(n, runs=runs), once per test process: the numpy
  oracle takes seconds a run, and two cases below score the same sets."""
  real, fakes, probs = _sets(n, runs=runs)
  return tuple(fid.all_metrics(real, fakes[r], probs[r], subsets) for r in range(runs))


def _agree(got, want, n, what=""):
  for k, v in want.items():
    if k == "class_hist":
      np.testing.assert_allclose(got[k], v, atol=1e-6, err_msg=what + k)
    elif k in COUNTS:
      assert abs(got[k] - v) <= 2 / n * (device.DC_K if k == "density" else 1), (what, k, got[k], v)
    elif k in ("kid", "kid_std"):
      assert abs(got[k] - v) <= KID_REL * abs(want["kid"]) + KID_ABS, (what, k, got[k], v)
    else:
      assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (what, k)


@pytest.mark.slow
@pytest.mark.parametrize(
    "runs,side_by_side,subsets", [(1, False, 100), (4, False, SUBSETS), (4, True, SUBSETS)]
)
def test_every_metric_equals_the_numpy_oracle_for_each_run_of_a_group(
    monkeypatch, runs, side_by_side, subsets
):
  """Runs one after another (lax.map, the CPU's way) and side by side (vmap, an accelerator's);
  the default 100 KID subsets in the first case."""
  monkeypatch.setattr(device, "_side_by_side", lambda: side_by_side)
  n = 1200
  real, fakes, probs = _sets(n, runs=runs)
  ref = device.reference(real, kid_subsets=subsets)
  got = device.group_metrics(ref, fakes, probs)
  assert len(got) == runs
  for r in range(runs):
    _agree(got[r], _oracle(n, runs, subsets)[r], n, f"run {r}: ")
  if runs > 1:  # the runs differ, so a group that scored run 0 for all would fail above
    assert len({round(g["fid"], 3) for g in got}) == runs


@pytest.mark.slow
def test_blocks_that_do_not_divide_the_sample_count_change_nothing():
  n = 1000
  real, fakes, probs = _sets(n, runs=2, seed=3)
  whole = device.group_metrics(device.reference(real, block=1000), fakes, probs, block=1000)
  ragged = device.group_metrics(device.reference(real, block=333), fakes, probs, block=333)
  for a, b in zip(whole, ragged):
    _agree(a, b, n)


def test_the_reference_radii_are_the_numpy_ones_and_kid_subsets_are_numpys():
  real, _, _ = _sets(800, runs=1, seed=5)
  ref = device.reference(real)
  # pylint: disable=protected-access
  for k, key in ((device.PR_K, "r2_pr"), (device.DC_K, "r2_dc")):
    want = fid._knn_radii(real, k).astype(np.float32) ** 2
    np.testing.assert_allclose(np.asarray(ref.arrays[key]), want, rtol=1e-4, atol=1e-4)
  rng = np.random.default_rng(0)
  ia, ib = device.kid_indices(800, 800)
  for s in range(3):
    np.testing.assert_array_equal(ia[s], rng.choice(800, 800, replace=False))
    np.testing.assert_array_equal(ib[s], rng.choice(800, 800, replace=False))


@pytest.mark.slow
def test_precision_recall_density_coverage_agree_with_prdc():
  """prdc (Naeem et al.'s code) against ours on random Gaussian features, k = 3 for precision and
  recall, k = 5 for density and coverage: within 0.0023, as the numpy path."""
  prdc = pytest.importorskip("prdc")
  n = 2000
  real, fakes, probs = _sets(n, d=64, runs=2, seed=7)
  ours = device.group_metrics(device.reference(real), fakes, probs)
  for r in range(2):
    pr = prdc.compute_prdc(real, fakes[r], nearest_k=3)
    dc = prdc.compute_prdc(real, fakes[r], nearest_k=5)
    for key, theirs in (
        ("precision", pr),
        ("recall", pr),
        ("density", dc),
        ("coverage", dc),
    ):
      assert abs(ours[r][key] - theirs[key]) <= 0.0023, (r, key, ours[r][key], theirs[key])


FMNIST = data_lib.DATASETS["fashion_mnist"].debian_dir


@pytest.mark.skipif(
    not os.path.isdir(FMNIST),
    reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.slow
def test_real_fashion_mnist_features_under_a_shipped_extractor(monkeypatch):
  """Real Fashion-MNIST: the test split as the reference, the training images (near the floor)
  and the same images with noise and blur (far from it) as two runs of a group."""
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  data = data_lib.load_images("fashion_mnist", "", log=lambda s: None)
  ens = features.get("fashion_mnist", data, lambda s: None)
  n = 2000
  member = ens.members[0]
  real = ens.real(0, n)[1]
  train = data["train"]["x"][:n]
  noisy = np.clip(train.astype(np.float32) + np.random.default_rng(0).normal(0, 60, train.shape),
                  0, 255).astype(np.uint8)  # fmt: skip
  probs, feats = zip(*(member(x) for x in (train, noisy)))
  ref = device.reference(real, kid_subsets=SUBSETS)
  got = device.group_metrics(ref, np.stack(feats), np.stack(probs))
  for r in range(2):
    _agree(got[r], fid.all_metrics(real, feats[r], probs[r], SUBSETS), n, f"run {r}: ")
  assert got[1]["fid"] > 5 * got[0]["fid"]


@pytest.mark.slow
def test_the_ensemble_group_path_equals_its_numpy_path_run_by_run(tmp_path, monkeypatch):
  """Ensemble.group_metrics (features on the device, one program per extractor) against
  Ensemble.metrics_numpy, per run, under the 3 shipped extractors on a stand-in test split."""
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  monkeypatch.setenv("GEN_MODELS_CACHE", str(tmp_path / "cache"))
  helpers.write_idx_dataset(str(tmp_path / "fmnist"), n_train=300, n_test=300)
  data = data_lib.load_images("fashion_mnist", str(tmp_path / "fmnist"), log=lambda s: None)
  ens = features.get("fashion_mnist", data, lambda s: None)
  rng = np.random.default_rng(0)
  train = data["train"]["x"][:300].reshape(300, 28, 28)
  images = np.stack([
      train,
      rng.integers(0, 256, (300, 28, 28), dtype=np.uint8),
      np.roll(train, 3, axis=2),
  ])
  got = ens.group_metrics(images)
  for r in range(3):
    want = ens.metrics_numpy(images[r])
    assert set(got[r]) == set(want)
    for k in want:
      if k.startswith(("precision", "recall", "density", "coverage")):
        assert abs(got[r][k] - want[k]) <= 2 * device.DC_K / 300, (r, k)
      elif k == "class_hist":
        np.testing.assert_allclose(got[r][k], want[k], atol=1e-6)
      elif k.startswith("kid"):
        scale = abs(want["kid" + k[len("kid_std") if k.startswith("kid_std") else 3 :]])
        assert abs(got[r][k] - want[k]) <= KID_REL * scale + KID_ABS, (r, k, got[r][k], want[k])
      else:
        assert got[r][k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), (r, k)
  assert ens.metrics(images[1])["fid"] == pytest.approx(got[1]["fid"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("whole_matrix", [True, False])
def test_both_ways_of_computing_kid_equal_the_oracle(monkeypatch, whole_matrix):
  """KID from the whole kernel matrix (the cheaper at 2,000 samples) and from each subset's own
  kernels (at 10,000): each equals fid.kid (a sample count per case: a new trace each)."""
  monkeypatch.setattr(device, "kid_by_matrix", lambda n, m, s, d: whole_matrix)
  n = 700 if whole_matrix else 650
  real, fakes, probs = _sets(n, runs=2, seed=11)
  got = device.group_metrics(device.reference(real, kid_subsets=SUBSETS), fakes, probs)
  for r in range(2):
    want = fid.kid(real, fakes[r], SUBSETS)
    assert abs(got[r]["kid"] - want[0]) <= KID_REL * abs(want[0]) + KID_ABS
    assert abs(got[r]["kid_std"] - want[1]) <= KID_REL * abs(want[0]) + KID_ABS


def test_the_whole_matrix_kid_is_chosen_where_it_does_less_work():
  assert device.kid_by_matrix(2000, 1000, 100, 128)
  assert not device.kid_by_matrix(10000, 1000, 100, 128)
