"""Image metrics on known cases, the cached classifier, and the sample / evaluate commands."""

import json
import os

import numpy as np
import pytest
from scipy import linalg
from scipy.spatial.distance import cdist

from experiments.commands import diagnose
from experiments.commands import evaluate
from experiments.commands import sample
from gen_models import data as data_lib
from gen_models.metrics import features
from gen_models.metrics import fid
from tests import helpers
from tests.helpers import tiny_image


def test_fid_of_identical_sets_is_zero():
  f = np.random.default_rng(0).normal(size=(2000, 16))
  assert abs(fid.fid(f, f)) < 1e-6


def test_frechet_distance_matches_closed_forms():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
  s1, s2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
  # Diagonal covariances: |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2.
  want = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
  assert fid.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == pytest.approx(
      want, rel=1e-10
  )
  # General SPD covariances: the textbook formula with scipy's sqrtm.
  a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
  c1, c2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
  ref = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
  assert fid.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
  # Sampled shifted Gaussians converge to the closed form.
  x = rng.normal(size=(100_000, 4))
  assert fid.fid(x, x * 2 + 1) == pytest.approx(4 * 1 + 4 * 1, rel=0.03)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(3000, 16)), rng.normal(size=(3000, 16))
  mean, std = fid.kid(a, b, subsets=30, subset_size=500)
  assert abs(mean) < 3 * std / np.sqrt(30) + 1e-3
  mean_shift, _ = fid.kid(a, b + 0.5, subsets=30, subset_size=500)
  assert mean_shift > 10 * abs(mean) and mean_shift > 0.01


def test_precision_recall_on_constructed_sets():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(1000, 8)).astype(np.float32)
  assert fid.precision_recall(real, real) == (1.0, 1.0)
  # A generator that drops modes: it only ever produces a tenth of the data (each 10 times).
  p, r = fid.precision_recall(real, np.repeat(real[:100], 10, axis=0))
  assert p == 1.0 and r == pytest.approx(0.1)
  p, r = fid.precision_recall(real, real + 100.0)  # far away from the data
  assert p == 0.0 and r == 0.0


def _pr_brute_force(real, fake, k):
  """Kynkaenniemi et al. 2019 written out with scipy's pairwise distances (float64): each set's
  manifold is the union of balls around its points, radius = distance to the k-th nearest other
  point of the same set; precision = share of fakes inside the real manifold, recall = share of
  reals inside the fake manifold."""

  def radii(x):
    d = np.sort(cdist(x, x), axis=1)
    return d[:, k]  # column 0 is the point itself

  def inside(queries, points):
    return float(np.mean(np.any(cdist(queries, points) <= radii(points)[None, :], axis=1)))

  return inside(fake, real), inside(real, fake)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_a_brute_force_reference(k):
  # Small random sets where every neighbour matters: the k-th (not k-1-th) radius, each set's own
  # radii, and both directions all change the answer here.
  rng = np.random.default_rng(k)
  for n_real, n_fake, dim, scale, shift in [
      (300, 250, 8, 1.3, 0.0),
      (200, 400, 4, 0.7, 0.5),
      (150, 150, 16, 1.0, 0.2),
  ]:
    real = rng.normal(size=(n_real, dim)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, dim)) * scale + shift).astype(np.float32)
    want = _pr_brute_force(real.astype(np.float64), fake.astype(np.float64), k)
    got = fid.precision_recall(real, fake, k)
    # float32 distances may flip a point lying on a ball's surface: allow one point.
    assert abs(got[0] - want[0]) <= 1 / n_fake + 1e-12, (got, want)
    assert abs(got[1] - want[1]) <= 1 / n_real + 1e-12, (got, want)
    assert 0.05 < want[0] < 1.0 and 0.05 < want[1] < 1.0  # not a degenerate case


def test_class_stats_detect_mode_collapse():
  one = np.zeros((500, 10))
  one[:, 3] = 1.0
  s = fid.class_stats(one)
  assert s["classes_covered"] == 1 and s["class_kl"] == pytest.approx(np.log(10))
  assert s["class_score"] == pytest.approx(1.0, abs=1e-6)
  balanced = np.eye(10)[np.arange(1000) % 10]
  s = fid.class_stats(balanced)
  assert s["classes_covered"] == 10 and s["class_kl"] == pytest.approx(0.0, abs=1e-12)
  assert s["class_score"] == pytest.approx(10.0, rel=1e-6)


@pytest.mark.slow
def test_an_ensemble_is_trained_once_deterministically_and_cached(tmp_path, monkeypatch):
  monkeypatch.setenv("GEN_MODELS_CACHE", str(tmp_path))
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  monkeypatch.setitem(features.RECIPE, "epochs", 2)
  data = data_lib.synthetic(1024, 512)
  logs = []
  # no shipped weights for synthetic: trained here
  ens = features.get("synthetic", data, logs.append)
  # the synthetic classes are easy
  assert len(ens) == 3 and all(m.accuracy > 0.9 for m in ens.members)
  assert sum("training member seed" in l for l in logs) == 3
  shas = [m.sha256 for m in ens.members]
  assert len(set(shas)) == 3  # three different networks
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  logs.clear()
  again = features.get("synthetic", data, logs.append)
  assert sum("from the cache" in l for l in logs) == 3 and [m.sha256 for m in again.members] == shas
  # Deterministic: trained anew, the same bytes (member 0 here, member 1 below; the members differ
  # in their seed only).
  cache = os.path.join(str(tmp_path), "classifier")
  os.remove(next(os.path.join(r, f) for r, _, fs in os.walk(cache) for f in fs if f == "s0.npz"))
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  logs.clear()
  assert [m.sha256 for m in features.get("synthetic", data, logs.append).members] == shas
  assert sum("training member seed" in l for l in logs) == 1
  probs, feats = again.members[0](data["test"]["x"][:7])
  assert probs.shape == (7, 10) and feats.shape == (7, 128)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
  # Metrics per extractor and their mean; floors at the same n.
  noise = np.random.default_rng(0).integers(0, 256, (256, 28, 28, 1)).astype(np.uint8)
  m = again.metrics(noise)
  assert m["fid"] == pytest.approx(np.mean([m["fid_e0"], m["fid_e1"], m["fid_e2"]]))
  assert m["extractors"] == 3 and m["num_samples"] == 256
  for k in range(3):
    real_feats = again.real(k, 256)[1]
    assert m[f"fid_e{k}"] == pytest.approx(fid.fid(real_feats, again.members[k](noise)[1]))
  assert 0 <= m["fid_floor"] < m["fid"] / 5 and m["classes_covered_floor"] == 10
  # A cached file that does not match its recorded hash is set aside and trained again.
  path = next(os.path.join(r, f) for r, _, fs in os.walk(cache) for f in fs if f == "s1.npz")
  with open(path, "r+b") as f:
    f.seek(200)
    f.write(b"garbage")
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  logs.clear()
  fresh = features.get("synthetic", data, logs.append)
  assert any("cannot be read" in l for l in logs) and [m.sha256 for m in fresh.members] == shas
  assert [f for f in os.listdir(os.path.dirname(path)) if ".unreadable-" in f]


def test_shipped_weights_are_used_without_training_and_hash_checked(tmp_path, monkeypatch):
  # The real shipped Fashion-MNIST ensemble: loading it trains nothing, whatever the cache holds.
  monkeypatch.setenv("GEN_MODELS_CACHE", str(tmp_path / "empty_cache"))
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  monkeypatch.setattr(
      features, "train_classifier", lambda *a, **k: pytest.fail("nothing may be trained")
  )
  shipped = features._shipped("fashion_mnist")  # pylint: disable=protected-access
  assert len(shipped) >= 3
  # stands in for the images; the networks come from the package
  data = data_lib.synthetic(300, 300)
  ens = features.get("fashion_mnist", data, lambda s: None)
  assert all(m.source == "shipped" for m in ens.members) and all(
      m.accuracy > 0.9 for m in ens.members
  )
  assert ens.ident.startswith("fashion_mnist-lenet-v2:") and [m.sha256 for m in ens.members] == [
      s[2] for s in shipped
  ]
  # A damaged shipped file is refused with what to do.
  bad_dir = tmp_path / "weights"
  bad_dir.mkdir()
  for _, path, _, _ in shipped:
    (bad_dir / os.path.basename(path)).write_bytes(open(path, "rb").read())
  (bad_dir / os.path.basename(shipped[0][1])).write_bytes(b"not the weights")
  (bad_dir / "manifest.json").write_text(open(features.MANIFEST).read())
  monkeypatch.setattr(features, "WEIGHTS_DIR", str(bad_dir))
  monkeypatch.setattr(features, "MANIFEST", str(bad_dir / "manifest.json"))
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  with pytest.raises(features.ExtractorError, match="damaged or was replaced"):
    features.get("fashion_mnist", data, lambda s: None)


@pytest.mark.slow
def test_sample_and_evaluate_commands(tmp_path, capsys):

  run_dir = tmp_path / "run"
  helpers.train(tiny_image(), run_dir, exp_name="dcgan")
  out = tmp_path / "s.npz"
  assert sample.main(["--run", str(run_dir), "--n", "37", "--out", str(out)]) == 0
  images = np.load(out)["images"]
  assert images.shape == (37, 28, 28) and images.dtype == np.uint8
  capsys.readouterr()
  assert evaluate.main(["--run", str(run_dir)]) == 0
  result = json.loads(capsys.readouterr().out)
  rows = [json.loads(l) for l in open(run_dir / "metrics.jsonl")]
  final = [r for r in rows if "eval/fid" in r][-1]
  assert result["step"] == 6 and result["metrics"]["fid"] == pytest.approx(
      final["eval/fid"], rel=1e-9
  )
  assert os.path.exists(run_dir / "eval_step6.json")
  assert sample.main(["--run", str(tmp_path / "nope"), "--n", "3", "--out", str(out)]) == 2
  assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_scores_an_external_npz_with_the_shipped_extractors(tmp_path, capsys, monkeypatch):

  monkeypatch.setattr(features, "_ENSEMBLES", {})
  # a stand-in test split
  helpers.write_idx_dataset(str(tmp_path / "fmnist"), n_train=300, n_test=300)
  images = data_lib.synthetic(300, 10)["train"]["x"][..., 0]
  np.savez(tmp_path / "theirs.npz", images=images)
  assert (
      evaluate.main([
          "--npz",
          str(tmp_path / "theirs.npz"),
          "--data",
          "fashion_mnist",
          "--data-dir",
          str(tmp_path / "fmnist"),
      ])
      == 0
  )
  out = json.loads(capsys.readouterr().out)
  ens = features.get(
      "fashion_mnist",
      data_lib.load_images("fashion_mnist", str(tmp_path / "fmnist"), log=lambda s: None),
  )
  assert out["extractors"]["ident"] == ens.ident and out["images"] == 300
  assert out["metrics"]["fid"] == pytest.approx(ens.metrics(images)["fid"])
  # wrong dtype / shape / key: a clear message, exit 2
  np.savez(tmp_path / "floats.npz", images=images.astype(np.float32) / 255)
  np.savez(tmp_path / "nokey.npz", x=images)
  for name, fragment in (
      ("floats.npz", "expected uint8 (N, 28, 28)"),
      ("nokey.npz", "no array named 'images'"),
  ):
    assert (
        evaluate.main([
            "--npz",
            str(tmp_path / name),
            "--data",
            "fashion_mnist",
            "--data-dir",
            str(tmp_path / "fmnist"),
        ])
        == 2
    )
    assert fragment in capsys.readouterr().err


@pytest.mark.slow
def test_diagnose_tells_collapse_from_coverage():

  # the tiny image configs' data: their extractors are trained once per test run already
  data = data_lib.synthetic(256, 512)
  ens = features.get("synthetic", data, lambda s: None)
  varied = data["train"]["x"]  # 256 other real images: the real manifold, fully varied
  collapsed = np.repeat(data["train"]["x"][:4], 64, axis=0)  # 4 images, 64 copies each
  good, bad = diagnose.diagnose(varied, ens, ks=(3,)), diagnose.diagnose(collapsed, ens, ks=(3,))
  for g, b in zip(good["per_extractor"], bad["per_extractor"]):
    assert g["generated"]["k3"]["recall"] > 0.5 and b["generated"]["k3"]["recall"] < 0.1
    # copies sit at distance 0 from each other (float32 rounding of |a|^2 + |b|^2 - 2ab aside)
    assert b["generated"]["median_knn_radius_k3"] < 0.05 * g["generated"]["median_knn_radius_k3"]
    assert g["real_median_knn_radius_k3"] == b["real_median_knn_radius_k3"] > 0


def test_density_and_coverage_match_a_brute_force_reference():

  rng = np.random.default_rng(0)
  real = rng.normal(size=(300, 8))
  fake = rng.normal(0.3, 1.2, size=(250, 8))
  k = 5
  radii = np.sort(cdist(real, real), axis=1)[:, k]  # column 0 is the point itself
  inside = cdist(fake, real) <= radii[None, :]  # Naeem et al. 2020, eq. (3) and (4)
  density, coverage = fid.density_coverage(real, fake, k)
  assert density == pytest.approx(inside.sum() / (k * len(fake)), rel=1e-3)
  assert coverage == pytest.approx(inside.any(axis=0).mean(), abs=1.5 / len(real))
  # Every real ball holds its own copy; a far outlier among the fakes changes neither value.
  assert fid.density_coverage(real, real, k)[1] == 1.0
  far = np.vstack([fake, np.full((1, 8), 50.0)])
  assert fid.density_coverage(real, far, k)[1] == pytest.approx(coverage)
  assert fid.density_coverage(real, far, k)[0] == pytest.approx(density * 250 / 251, rel=1e-6)
