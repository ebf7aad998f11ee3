"""The image metrics of gen_models.metrics.fid as jitted JAX on the device that trained, for a
group of R runs at once (a leading run axis), with the real side computed once per reference.

`reference(real_feats)` does the work that depends only on the real features, once per (dataset,
sample count, extractor): their k-NN radii for every k used (3 for precision/recall, 5 for
density/coverage), their mean and covariance, and the real-real term of each KID subset (the subsets
are numpy's: the same `default_rng(0)` draws as fid.kid). `group_metrics(ref, feats, probs)` then
scores (R, N, d) fake features in one program: the fake-to-real distances are built once per block
of fakes and shared by precision, recall, density and coverage; the fake-to-fake ones give the
fakes' radii. Distances go by blocks of `block` fakes, so the peak is about 4 x R x block x N
float32 (R = 1, N = 10,000, block 1,000: 160 MB), never N x N.

Everything is float32 (matrix products at full float32 precision, never TF32) with fid.py's rounding
slack (a point inside a ball by 1e-5 of the squared norms counts), but KID's kernel sums, float64 as
in fid.py (traced under jax.enable_x64); FID's 128 x 128 matrix square root stays float64 on the
host (microseconds). The numpy module stays the oracle: tests/test_metrics_device.py holds this one
to it.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_models.metrics import fid as fid_lib

PR_K, DC_K = 3, 5  # as fid.precision_recall and fid.density_coverage
SLACK = 1e-5


@dataclasses.dataclass(frozen=True)
class Reference:
  """The real side of one extractor at one sample count: `arrays` live on the device (a pytree
  the jitted program takes as an argument, never a constant baked into it), mu/cov on the host."""

  arrays: dict  # feats (N, d); r2_pr, r2_dc (N,); kid_real (S,); kid_real_idx, kid_fake_idx (S, m)
  mu: np.ndarray  # (d,) float64
  cov: np.ndarray  # (d, d) float64


def _dot(a, b):
  """a @ b.T in full float32 (GPUs would otherwise round the inputs to TF32 / bfloat16)."""
  return jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)


def _sq_dists(a, b):
  aa, bb = jnp.sum(a * a, 1), jnp.sum(b * b, 1)
  return jnp.maximum(aa[:, None] + bb[None, :] - 2 * _dot(a, b), 0), aa, bb


def _blocks(x, block):
  """x (n, ...) padded to a multiple of block and split: (n_blocks, block, ...), valid mask."""
  n = x.shape[0]
  nb = -(-n // block)
  pad = nb * block - n
  xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  valid = jnp.arange(nb * block) < n
  return xp.reshape((nb, block) + x.shape[1:]), valid.reshape(nb, block)


def _radii2(x, ks, block):
  """Squared distance from each point of x to its k-th nearest other point, for each k in ks
  (fid._knn_radii, squared after its float32 sqrt as fid does)."""
  kmax = max(ks)
  xb, valid = _blocks(x, block)

  def one(args):
    q, _ = args
    d, _, _ = _sq_dists(q, x)
    smallest = -jax.lax.top_k(-d, kmax + 1)[0]  # ascending; index 0 is the point itself
    return jnp.stack([jnp.sqrt(smallest[:, k]) ** 2 for k in ks])

  r2 = jax.lax.map(one, (xb, valid))  # (nb, len(ks), block)
  return jnp.moveaxis(r2, 1, 0).reshape(len(ks), -1)[:, : x.shape[0]]


def _cubic(x, y, d):
  """The KID kernel (x.y / d + 1)^3 in float64: the products are float32, the cube and the
  sums of 10^6 values float64, as fid.kid (in float32 a far-off generator's kernel values, ~10^6,
  left its KID to rounding). Needs jax.enable_x64 while traced (group_metrics sees to it)."""
  return (_dot(x, y).astype(jnp.float64) / d + 1) ** 3


def _kid_self(x, d):
  m = x.shape[0]
  k = _cubic(x, x, d)
  return (jnp.sum(k) - jnp.trace(k)) / (m * (m - 1))


@functools.partial(jax.jit, static_argnames=("block",))
def _reference_parts(real, idx, block):
  r2 = _radii2(real, (PR_K, DC_K), block)
  d = real.shape[1]
  kid_real = jax.lax.map(lambda i: _kid_self(real[i], d), idx)
  return r2[0], r2[1], kid_real


def kid_indices(n_real, n_fake, subsets=100, subset_size=1000, seed=0):
  """The (real, fake) row indices of fid.kid's subsets: the same generator, the same draws."""
  m = min(subset_size, n_real, n_fake)
  rng = np.random.default_rng(seed)
  a, b = [], []
  for _ in range(subsets):
    a.append(rng.choice(n_real, m, replace=False))
    b.append(rng.choice(n_fake, m, replace=False))
  return np.asarray(a, np.int32), np.asarray(b, np.int32)


def reference(real_feats, n_fake=None, kid_subsets=100, block=1000) -> Reference:
  """The real side, computed once: k-NN radii, KID subsets and their real terms, mean/cov."""
  real = np.asarray(real_feats, np.float32)
  ia, ib = kid_indices(len(real), n_fake or len(real), kid_subsets)
  with jax.enable_x64(True):
    r2_pr, r2_dc, kid_real = _reference_parts(jnp.asarray(real), jnp.asarray(ia), block)
  mu, cov = fid_lib.stats(real)
  arrays = {
      "feats": jnp.asarray(real),
      "r2_pr": r2_pr,
      "r2_dc": r2_dc,
      "kid_real": kid_real,
      "kid_real_idx": jnp.asarray(ia),
      "kid_fake_idx": jnp.asarray(ib),
  }
  return Reference(arrays, mu, cov)


def prdc(ref: dict, fake, probs, block):
  """Precision, recall (k = PR_K), density and coverage (k = DC_K) of one run: the fakes' own
  k-NN radii first (each block needs every fake), then one pass over blocks of fakes whose
  distances to the reals are shared by the four."""
  del probs
  real = ref["feats"]
  n_fake, n_real = fake.shape[0], real.shape[0]
  rr = jnp.sum(real * real, 1)
  r2_fake = _radii2(fake, (PR_K,), block)[0]
  fb, valid = _blocks(fake, block)
  r2b, _ = _blocks(r2_fake, block)

  def step(carry, args):
    prec, dens, covered, recalled = carry
    f, ok, r2f = args
    d_fr, ff, _ = _sq_dists(f, real)  # (block, n_real)
    slack = SLACK * (ff[:, None] + rr[None, :])
    in_real_pr = (d_fr <= ref["r2_pr"][None, :] + slack) & ok[:, None]
    in_real_dc = (d_fr <= ref["r2_dc"][None, :] + slack) & ok[:, None]
    in_fake = (d_fr <= r2f[:, None] + slack) & ok[:, None]  # real i inside fake j's ball
    return (
        prec + jnp.sum(jnp.any(in_real_pr, axis=1), dtype=jnp.int32),
        dens + jnp.sum(in_real_dc, dtype=jnp.int32),
        covered | jnp.any(in_real_dc, axis=0),
        recalled | jnp.any(in_fake, axis=0),
    ), None

  zero = jnp.zeros((), jnp.int32)
  init = (zero, zero, jnp.zeros(n_real, bool), jnp.zeros(n_real, bool))
  (prec, dens, covered, recalled), _ = jax.lax.scan(step, init, (fb, valid, r2b))
  return {
      "precision": prec / n_fake,
      "recall": jnp.mean(recalled),
      "density": dens / (DC_K * n_fake),
      "coverage": jnp.mean(covered),
  }


def _subset_sums(x, y, ix, iy, block):
  """For every subset pair s: the sum of the kernel over rows ix[s] of x and rows iy[s] of y, from
  the whole kernel matrix by blocks of rows (each block's products with the subsets' indicator
  vectors), instead of S separate m x m kernels: N^2 (2d + 2S) work against S m^2 2d."""
  d = x.shape[1]
  s = ix.shape[0]
  ind_x = jnp.zeros((s, x.shape[0]), jnp.float64).at[jnp.arange(s)[:, None], ix].set(1.0)
  ind_y = jnp.zeros((s, y.shape[0]), jnp.float64).at[jnp.arange(s)[:, None], iy].set(1.0)
  xb, _ = _blocks(x, block)
  ib, _ = _blocks(ind_x.T, block)  # (blocks, block, S): padded rows belong to no subset

  def one(carry, args):
    rows, ind = args
    k = _cubic(rows, y, d)  # (block, Ny)
    return carry + jnp.sum(ind * (k @ ind_y.T), axis=0), None

  total, _ = jax.lax.scan(one, jnp.zeros(s, jnp.float64), (xb, ib))
  return total


def kid_by_matrix(n: int, m: int, subsets: int, d: int) -> bool:
  """Whether the whole-matrix KID (_subset_sums) is the cheaper at n samples: at 2,000 (S 100,
  m 1,000) it does 10x less work; at 10,000 the subsets' own kernels are cheaper."""
  return n * n * (2 * d + 2 * subsets) < subsets * m * m * 2 * d


def kid(ref: dict, fake, probs, block):
  """fid.kid on numpy's subsets; the real-real terms are the reference's."""
  del probs
  real, d = ref["feats"], fake.shape[1]
  s, m = ref["kid_real_idx"].shape
  if kid_by_matrix(fake.shape[0], m, s, d):
    ix, iy = ref["kid_real_idx"], ref["kid_fake_idx"]
    diag = (jnp.sum(fake * fake, 1).astype(jnp.float64) / d + 1) ** 3  # the kernel's diagonal
    kyy = _subset_sums(fake, fake, iy, iy, block) - jnp.sum(diag[iy], axis=1)
    kxy = _subset_sums(real, fake, ix, iy, block)
    mmd = ref["kid_real"] + kyy / (m * (m - 1)) - 2 * kxy / (m * m)
    return {"kid": jnp.mean(mmd), "kid_std": jnp.std(mmd)}

  def one(args):
    ia, ib, c = args
    x, y = real[ia], fake[ib]
    kyy, kxy = _cubic(y, y, d), _cubic(x, y, d)
    return c + (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1)) - 2 * jnp.sum(kxy) / (m * m)

  mmd = jax.lax.map(one, (ref["kid_real_idx"], ref["kid_fake_idx"], ref["kid_real"]))
  return {"kid": jnp.mean(mmd), "kid_std": jnp.std(mmd)}


def fid_stats(ref: dict, fake, probs, block):
  """The fakes' mean and covariance; the Frechet distance itself is float64 on the host."""
  del ref, probs, block
  mu = jnp.mean(fake, 0)
  c = fake - mu
  return {
      "_mu": mu,
      "_cov": jnp.matmul(c.T, c, precision=jax.lax.Precision.HIGHEST) / (fake.shape[0] - 1),
  }


def class_stats(ref: dict, fake, probs, block):
  """fid.class_stats: classifier score, argmax histogram, classes covered, KL to uniform."""
  del ref, fake, block
  p = jnp.clip(probs, 1e-12, 1)
  marginal = jnp.mean(p, 0)
  score = jnp.exp(jnp.mean(jnp.sum(p * (jnp.log(p) - jnp.log(marginal)), 1)))
  hist = jnp.mean(jax.nn.one_hot(jnp.argmax(p, 1), p.shape[1]), 0)
  kl = jnp.sum(jnp.where(hist > 0, hist * jnp.log(jnp.where(hist > 0, hist, 1) * p.shape[1]), 0))
  return {
      "class_score": score,
      "classes_covered": jnp.sum(hist >= 0.01),
      "class_kl": kl,
      "class_hist": hist,
  }


COMPONENTS = {"fid": fid_stats, "kid": kid, "prdc": prdc, "class": class_stats}


def _one_run(ref: dict, fake, probs, block, parts=tuple(COMPONENTS)):
  """The metrics of one run's fake features (N, d) and class probabilities (N, C)."""
  out = {}
  for name in parts:
    out.update(COMPONENTS[name](ref, fake, probs, block))
  return out


@functools.partial(jax.jit, static_argnames=("block", "parts", "side_by_side"))
def _group(ref: dict, feats, probs, block, parts=tuple(COMPONENTS), side_by_side=True):
  """One program for R runs (a leading axis on feats and probs): side by side (vmap) on an
  accelerator, one after another (lax.map) on a CPU, where 4 vmapped runs cost 1.06x 4 single
  evaluations (4x the working set) and a map costs a little less than them; `parts` picks
  components (the benchmark times them one by one)."""
  one = lambda f, p: _one_run(ref, f, p, block, parts)
  if side_by_side:
    return jax.vmap(one)(feats, probs)
  return jax.lax.map(lambda fp: one(*fp), (feats, probs))


def _side_by_side() -> bool:
  return jax.default_backend() != "cpu"


def time_component(ref: Reference, feats, probs, part: str, block: int = 1000):
  """Runs one component of the group program and waits for it (for experiments.bench)."""
  with jax.enable_x64(True):
    return jax.block_until_ready(_group(ref.arrays, feats, probs, block, (part,), _side_by_side()))


def group_metrics(ref: Reference, feats, probs, block: int = 1000) -> list[dict]:
  """fid.all_metrics of R runs at once: feats (R, N, d), probs (R, N, C) (device or host arrays).
  Returns one dict per run, of Python floats (class_hist a list), as fid.all_metrics."""
  with jax.enable_x64(True):  # KID's sums are float64 (_cubic); everything else is float32
    feats, probs = jnp.asarray(feats, jnp.float32), jnp.asarray(probs, jnp.float32)
    out = jax.device_get(_group(ref.arrays, feats, probs, block, side_by_side=_side_by_side()))
  runs = []
  for r in range(len(out["kid"])):
    m = {"fid": fid_lib.frechet_distance(ref.mu, ref.cov, out["_mu"][r], out["_cov"][r])}
    m.update({k: float(v[r]) for k, v in out.items() if k[0] != "_" and k != "class_hist"})
    m["classes_covered"] = int(m["classes_covered"])
    m["class_hist"] = [float(h) for h in out["class_hist"][r]]
    runs.append(m)
  return runs
