"""Image-set metrics on classifier features / probabilities (pure numpy, float64 where it matters).

- `frechet_distance`: ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), the trace of the matrix square
  root taken from the eigenvalues of the symmetric PSD matrix S1^1/2 S2 S1^1/2 (no complex sqrtm).
- `kid`: unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, mean and std over subsets.
- `precision_recall`: Kynkaanniemi et al. 2019, k-NN balls (k = 3) around each set's points.
- `class_stats`: the classifier score (Inception-Score analogue, at most the number of classes),
  the class histogram, classes covered and KL(histogram || uniform) as a mode-collapse measure.
"""

import numpy as np


def stats(features):
  f = np.asarray(features, np.float64)
  return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(a):
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, s1, mu2, s2) -> float:
  mu1, mu2, s1, s2 = (np.asarray(x, np.float64) for x in (mu1, mu2, s1, s2))
  r1 = _psd_sqrt(s1)
  m = r1 @ s2 @ r1
  tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid(features_a, features_b) -> float:
  return frechet_distance(*stats(features_a), *stats(features_b))


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
  """Kernel Inception Distance analogue: (mean, std) of the unbiased MMD^2 over random subsets."""
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  n = min(subset_size, len(a), len(b))
  d = a.shape[1]
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(subsets):
    x, y = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    mmd = (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )
    out.append(mmd)
  return float(np.mean(out)), float(np.std(out))


def _sq_dists(a, b):
  return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0)


def _knn_radii(x, k, block=2048):
  """Distance from every point to its k-th nearest other point of the same set."""
  radii = np.empty(len(x), np.float32)
  for i in range(0, len(x), block):
    d = _sq_dists(x[i : i + block], x)
    radii[i : i + block] = np.sqrt(np.partition(d, k, axis=1)[:, k])  # index 0 is the point itself
  return radii


def _coverage(queries, points, radii, block=2048):
  """Fraction of queries inside at least one ball (point, radius). Distances come from
  |a|^2 + |b|^2 - 2 a.b in float32, so the test allows a rounding slack of 1e-5 of the squared
  norms (a duplicate of a point lies inside its zero-radius ball)."""
  inside = 0
  r2 = radii.astype(np.float32) ** 2
  p_norm = (points * points).sum(1)
  for i in range(0, len(queries), block):
    q = queries[i : i + block]
    slack = 1e-5 * ((q * q).sum(1)[:, None] + p_norm[None, :])
    inside += int(np.sum(np.any(_sq_dists(q, points) <= r2[None, :] + slack, axis=1)))
  return inside / len(queries)


def precision_recall(real_features, fake_features, k: int = 3):
  """Improved precision (fakes inside the real manifold) and recall (reals inside the fake one)."""
  real = np.asarray(real_features, np.float32)
  fake = np.asarray(fake_features, np.float32)
  precision = _coverage(fake, real, _knn_radii(real, k))
  recall = _coverage(real, fake, _knn_radii(fake, k))
  return precision, recall


def density_coverage(real_features, fake_features, k: int = 5, block=2048):
  """Density and coverage (Naeem et al. 2020, k = 5 as the authors), from the k-NN balls of the
  real features only, so an outlier among the fakes cannot stretch a manifold the way it does for
  recall. density: the mean number of real balls a fake lies in, divided by k (about 1 when the
  sets match; above 1 where fakes crowd dense real regions); coverage: the share of real balls
  that hold at least one fake. Same float32 rounding slack as _coverage."""
  real = np.asarray(real_features, np.float32)
  fake = np.asarray(fake_features, np.float32)
  r2 = _knn_radii(real, k).astype(np.float32) ** 2
  r_norm = (real * real).sum(1)
  inside_count, covered = 0, np.zeros(len(real), bool)
  for i in range(0, len(fake), block):
    f = fake[i : i + block]
    slack = 1e-5 * ((f * f).sum(1)[:, None] + r_norm[None, :])
    inside = _sq_dists(f, real) <= r2[None, :] + slack  # (fakes, reals): fake j in real ball i
    inside_count += int(inside.sum())
    covered |= inside.any(axis=0)
  return inside_count / (k * len(fake)), float(covered.mean())


def class_stats(probs, min_share: float = 0.01) -> dict:
  """From softmax outputs (N, C): classifier score exp(E KL(p(y|x) || p(y))), the histogram of
  argmax classes, the number of classes holding at least `min_share` of the samples, and
  KL(histogram || uniform) in nats (0 = all classes equally often, log C = one class only)."""
  p = np.clip(np.asarray(probs, np.float64), 1e-12, 1)
  c = p.shape[1]
  marginal = p.mean(axis=0)
  score = float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))
  hist = np.bincount(p.argmax(axis=1), minlength=c) / len(p)
  nz = hist > 0
  kl_uniform = float(np.sum(hist[nz] * np.log(hist[nz] * c)))
  return {
      "class_score": score,
      "classes_covered": int(np.sum(hist >= min_share)),
      "class_kl": kl_uniform,
      "class_hist": hist.tolist(),
  }


def all_metrics(real_features, fake_features, fake_probs, kid_subsets=100, pr_k=3) -> dict:
  out = {"fid": fid(real_features, fake_features)}
  out["kid"], out["kid_std"] = kid(real_features, fake_features, subsets=kid_subsets)
  out["precision"], out["recall"] = precision_recall(real_features, fake_features, pr_k)
  out["density"], out["coverage"] = density_coverage(real_features, fake_features)
  out.update(class_stats(fake_probs))
  return out
