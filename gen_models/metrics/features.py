"""The feature extractors of the image metrics: an ensemble of LeNet classifiers (one recipe,
different training seeds), the same on every machine.

No Inception weights can be downloaded here, so FID & co. are computed in the feature space of
small classifiers trained on the dataset itself. One such network is not enough to rank models
(three LeNets that differ only in their seed ranked the same samples differently), so every image
metric is computed under each member of an ensemble and reported per member and as their mean.

Where the weights come from:
- shipped with the package (gen_models/metrics/weights/<dataset>-lenet-v<k>-s<seed>.npz, listed in
  manifest.json with their sha256, checked on load): Fashion-MNIST. The same bytes on every
  machine, so FIDs from two machines (or a GPU and a CPU) are comparable.
- trained here, deterministically, for datasets without shipped weights (MNIST cannot be
  downloaded on the machines the shipped ones were made on), cached under
  $GEN_MODELS_CACHE/classifier/ and named by the sha256 of what was produced: comparable only with
  reports that print the same hashes.
"""

import functools
import hashlib
import io
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from gen_models import metric_names as names
from gen_models import rundir
from gen_models import state as state_lib
from gen_models.metrics import device
from gen_models.metrics import fid as fid_lib
from gen_models.models.classifier import LeNet, as_input

RECIPE = {"version": 2, "arch": "lenet", "epochs": 5, "batch_size": 128, "lr": 1e-3}
ENSEMBLE_SEEDS = (0, 1, 2)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
MANIFEST = os.path.join(WEIGHTS_DIR, "manifest.json")
# = config.MIN_EVAL_SAMPLES_IMAGES: FID's 128-d covariance needs more samples than dimensions
MIN_SAMPLES = 200
# The floors cache is keyed by (and hashed with) what produced it: this code, the member, the sizes.
# The floors are computed by device.py with fid.py's definitions: a change to either recomputes
# them.
METRICS_SOURCES = [
    os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    for name in ("fid.py", "device.py")
]


class ExtractorError(RuntimeError):
  """A shipped or cached extractor file is damaged; the message says what to do."""


def cache_root() -> str:
  return os.environ.get("GEN_MODELS_CACHE", "").strip() or os.path.join(
      os.path.expanduser("~"), ".cache", "gen_models"
  )


# ---------------------------------------------------------------------------------------------
# Training (deterministic: fixed seeds for the initialisation, the batch order and dropout).


@functools.partial(jax.jit, static_argnums=0)
def _train_step(model, params, opt_state, x, y, key):
  def loss_fn(p):
    logits, _ = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = optax.adam(RECIPE["lr"]).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnums=0)
def _forward(model, params, images_u8):
  logits, feats = model.apply({"params": params}, as_input(images_u8), train=False)
  return jax.nn.softmax(logits), feats


def train_classifier(data: dict, seed: int, log=print):
  """Trains LeNet on data["train"] with RECIPE and `seed`; returns (params, test accuracy,
  seconds)."""
  model = LeNet()
  key = jax.random.key(seed)
  x_train, y_train = data["train"]["x"], data["train"]["y"]
  # one compiled program, the same bits as flax's eager init (3.4 -> 2.0 s to start a member)
  params = state_lib.init_variables(model, {"params": key}, jnp.zeros((1, 28, 28, 1)))["params"]
  opt_state = optax.adam(RECIPE["lr"]).init(params)
  rng = np.random.default_rng(seed)
  bs = RECIPE["batch_size"]
  steps_per_epoch = max(1, len(x_train) // bs)
  t0 = time.perf_counter()
  for epoch in range(RECIPE["epochs"]):
    order = rng.permutation(len(x_train))
    for i in range(steps_per_epoch):
      idx = order[i * bs : (i + 1) * bs]
      params, opt_state, loss = _train_step(
          model,
          params,
          opt_state,
          as_input(x_train[idx]),
          jnp.asarray(y_train[idx]),
          jax.random.fold_in(key, epoch * 100000 + i),
      )
    log(
        f"classifier seed {seed}: epoch {epoch + 1}/{RECIPE['epochs']} loss {float(loss):.4f} "
        f"({time.perf_counter() - t0:.0f}s)"
    )
  probs, _ = predict(model, params, data["test"]["x"])
  accuracy = float(np.mean(probs.argmax(1) == data["test"]["y"]))
  return params, accuracy, time.perf_counter() - t0


def predict_device(model, params, images_u8, batch: int = 1000):
  """(probs, features) as device arrays for uint8 images (N, 28, 28) on the host or the device,
  in fixed-size batches (one compilation); nothing goes to the host."""
  n = len(images_u8)
  images = jnp.asarray(images_u8)
  pad = -n % batch
  if pad:
    images = jnp.concatenate([images, jnp.zeros((pad,) + images.shape[1:], images.dtype)])
  outs = [_forward(model, params, images[i : i + batch]) for i in range(0, n + pad, batch)]
  return jnp.concatenate([p for p, _ in outs])[:n], jnp.concatenate([f for _, f in outs])[:n]


def predict(model, params, images_u8, batch: int = 1000):
  """(probs, features) for uint8 images, in fixed-size batches (one compilation)."""
  n = len(images_u8)
  probs, feats = [], []
  for i in range(0, n, batch):
    chunk = np.asarray(images_u8[i : i + batch])
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    p, f = _forward(model, params, jnp.asarray(chunk))
    probs.append(np.asarray(p)[: batch - pad])
    feats.append(np.asarray(f)[: batch - pad])
  return np.concatenate(probs), np.concatenate(feats)


# ---------------------------------------------------------------------------------------------
# Weight files: params flattened to "a/b/c" keys in an .npz, named by the sha256 of its bytes.


def params_to_bytes(params) -> bytes:
  flat = {
      "/".join(k): np.asarray(v)
      for k, v in traverse_util.flatten_dict(jax.device_get(params)).items()
  }
  buf = io.BytesIO()
  np.savez(buf, **dict(sorted(flat.items())))
  return buf.getvalue()


def params_from_bytes(raw: bytes):
  with np.load(io.BytesIO(raw)) as f:
    flat = {tuple(k.split("/")): jnp.asarray(f[k]) for k in f.files}
  return traverse_util.unflatten_dict(flat)


def sha256(raw: bytes) -> str:
  return hashlib.sha256(raw).hexdigest()


class Extractor:
  """One trained LeNet: (probs, features) of uint8 images, with its identity."""

  def __init__(self, dataset: str, seed: int, params, digest: str, accuracy: float, source: str):
    self.dataset, self.seed, self.params = dataset, seed, params
    self.sha256, self.accuracy, self.source = digest, accuracy, source
    self.model = LeNet()

  @property
  def name(self) -> str:
    return f"{self.dataset}-lenet-v{RECIPE['version']}-s{self.seed}"

  def __call__(self, images_u8):
    return predict(self.model, self.params, images_u8)

  def describe(self) -> dict:
    return {
        "name": self.name,
        "sha256": self.sha256,
        "test_accuracy": self.accuracy,
        "source": self.source,
    }


def _reinstall(what: str) -> "ExtractorError":
  return ExtractorError(
      f"The shipped extractor manifest {MANIFEST} {what}. Reinstall the package (git checkout "
      "gen_models/metrics/weights), so that image metrics stay comparable with other machines."
  )


def _shipped(dataset: str):
  """[(seed, file, sha256, accuracy)] from the manifest, or [] when nothing is shipped. A damaged
  manifest, or an entry naming a file outside the weights directory, raises ExtractorError."""
  if not os.path.exists(MANIFEST):
    return []
  try:
    with open(MANIFEST) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise _reinstall(f"cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
  if not isinstance(manifest, dict):
    raise _reinstall("is not a JSON object")
  entry = manifest.get(dataset)
  if not entry or not isinstance(entry, dict) or entry.get("recipe") != RECIPE:
    return []
  out = []
  try:
    for m in entry["members"]:
      path = os.path.realpath(os.path.join(WEIGHTS_DIR, m["file"]))
      if os.path.dirname(path) != os.path.realpath(WEIGHTS_DIR):
        raise _reinstall(
            f"names {str(m['file'])[:100]!r}, which is outside {WEIGHTS_DIR}; it was not read"
        )
      if not os.path.isfile(path):
        raise _reinstall(f"lists {m['file']}, which is missing")
      out.append((int(m["seed"]), path, str(m["sha256"]), float(m["test_accuracy"])))
  except (KeyError, TypeError, ValueError) as e:
    raise _reinstall(
        f"has a malformed entry for {dataset} ({type(e).__name__}: {str(e)[:80]})"
    ) from None
  return out


def _load_checked(path: str, digest: str):
  with open(path, "rb") as f:
    raw = f.read()
  got = sha256(raw)
  if got != digest:
    raise ExtractorError(
        f"{path} has sha256 {got[:16]}..., but {digest[:16]}... was recorded for it: the "
        "file is damaged or was replaced. Reinstall the package (git checkout the file), "
        "so that image metrics stay comparable with other machines."
    )
  return params_from_bytes(raw)


def _cache_dir(dataset: str, data: dict) -> str:
  ident = json.dumps(
      {
          "recipe": RECIPE,
          "dataset": dataset,
          "n_train": len(data["train"]["x"]),
          "n_test": len(data["test"]["x"]),
      },
      sort_keys=True,
  )
  return os.path.join(
      cache_root(), "classifier", f"{dataset}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"
  )


def _trained_here(dataset: str, data: dict, seed: int, log) -> Extractor:
  """A member for a dataset without shipped weights: from the cache, else trained (once)."""
  d = _cache_dir(dataset, data)
  path, meta_path = os.path.join(d, f"s{seed}.npz"), os.path.join(d, f"s{seed}.json")
  if os.path.exists(path) and os.path.exists(meta_path):
    try:
      with open(meta_path) as f:
        meta = json.load(f)
      params = _load_checked(path, meta["sha256"])
      log(
          f"classifier: {dataset} seed {seed} from the cache {d} (sha256 {meta['sha256'][:12]}, "
          f"test accuracy {meta['test_accuracy']:.4f})"
      )
      return Extractor(
          dataset, seed, params, meta["sha256"], meta["test_accuracy"], "trained here (cached)"
      )
    except (OSError, ValueError, KeyError, ExtractorError) as e:
      aside = f"{path}.unreadable-{int(time.time())}"
      log(
          f"classifier: the cached {path} cannot be read ({type(e).__name__}: {str(e)[:200]});"
          f" moved to {aside}, training it again"
      )
      try:
        os.rename(path, aside)
      except OSError:
        pass  # another process of a multi-host job set it aside first
  log(
      f"classifier: no shipped weights for {dataset}; training member seed {seed} here (cached in"
      f" {d})"
  )
  params, accuracy, seconds = train_classifier(data, seed, log)
  raw = params_to_bytes(params)
  digest = sha256(raw)
  if jax.process_index() == 0:  # in a multi-host job only process 0 writes the cache
    rundir.write_atomic(path, raw)
    meta = {
        "dataset": dataset,
        "seed": seed,
        "sha256": digest,
        "test_accuracy": accuracy,
        "train_s": seconds,
        "recipe": RECIPE,
        "n_train": len(data["train"]["x"]),
        "n_test": len(data["test"]["x"]),
    }
    rundir.write_atomic(meta_path, json.dumps(meta, indent=1).encode())
  log(
      f"classifier: {dataset} seed {seed}: test accuracy {accuracy:.4f} after {seconds:.0f}s,"
      f" sha256 {digest}"
  )
  return Extractor(dataset, seed, params_from_bytes(raw), digest, accuracy, "trained here")


def _floor_ident(member, n: int, data: dict) -> str:
  """What a floor depends on: the member's weights, the image counts, and the code of the metrics
  (so a new or changed metric never reads an old cache)."""
  code = ""
  for path in METRICS_SOURCES:
    with open(path, "rb") as f:
      code += f.read().decode(errors="replace")
  code = sha256(code.encode())
  return json.dumps(
      {
          "member": member.sha256,
          "n": n,
          "n_train": len(data["train"]["x"]),
          "n_test": len(data["test"]["x"]),
          "metrics_code": code,
      },
      sort_keys=True,
  )


def _floor_check(ident: str, values: dict) -> str:
  return sha256((ident + json.dumps(values, sort_keys=True)).encode())


def _read_floors(path: str, ident: str):
  """The cached floors at path if they were made by `ident` and are intact, else None
  (recomputed)."""
  try:
    with open(path) as f:
      saved = json.load(f)
    if saved["ident"] == ident and saved["check"] == _floor_check(ident, saved["values"]):
      return {k: float(v) for k, v in saved["values"].items()}
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    pass
  return None


class Ensemble:
  """The extractors of one dataset, with the real reference features and floors at hand."""

  def __init__(self, dataset: str, data: dict, log=print):
    self.dataset, self.data = dataset, data
    shipped = _shipped(dataset)
    if shipped:
      self.members = [
          Extractor(dataset, seed, _load_checked(path, digest), digest, acc, "shipped")
          for seed, path, digest, acc in shipped
      ]
    else:
      self.members = [_trained_here(dataset, data, seed, log) for seed in ENSEMBLE_SEEDS]
    self._real, self._floors, self._refs = {}, {}, {}
    log(f"classifier: {self.describe()}")

  def __len__(self):
    return len(self.members)

  @property
  def ident(self) -> str:
    """Names the ensemble exactly: runs scored by different idents are not comparable."""
    return f"{self.dataset}-lenet-v{RECIPE['version']}:" + ",".join(
        m.sha256[:12] for m in self.members
    )

  def describe(self) -> str:
    parts = ", ".join(f"s{m.seed} {m.sha256[:8]} ({m.accuracy:.1%})" for m in self.members)
    return (
        f"{len(self.members)} LeNet feature extractors for {self.dataset}, recipe"
        f" v{RECIPE['version']}, {self.members[0].source}: {parts}"
    )

  def info(self) -> dict:
    return {
        "ident": self.ident,
        "dataset": self.dataset,
        "recipe": RECIPE,
        "members": [m.describe() for m in self.members],
    }

  def real(self, member: int, n: int, split: str = "test"):
    """(probs, features) of the first n images of a split under one member (the reference set)."""
    key = (member, split, n)
    if key not in self._real:
      x = self.data[split]["x"]
      if n > len(x):
        raise ValueError(f"{n} reference images requested, the {split} split has {len(x)}")
      self._real[key] = self.members[member](x[:n])
    return self._real[key]

  def _floor(self, member: int, n: int) -> dict:
    """Every metric between n training images and the n test images under one member, cached on
    disk by the member's hash and the data sizes."""
    key = (member, n)
    if key not in self._floors:
      m = self.members[member]
      ident = _floor_ident(m, n, self.data)
      path = os.path.join(
          cache_root(), "classifier", "floors", f"{sha256(ident.encode())[:24]}.json"
      )
      cached = _read_floors(path, ident)
      if cached is None:
        train_probs, train_feats = m(self.data["train"]["x"][:n])
        ref = self.reference(member, n)
        out = device.group_metrics(ref, train_feats[None], train_probs[None])[0]
        out.pop("class_hist")
        cached = out
        if jax.process_index() == 0:
          try:
            rundir.write_atomic(
                path,
                json.dumps(
                    {"ident": ident, "values": out, "check": _floor_check(ident, out)}
                ).encode(),
            )
          except OSError:
            pass  # an unwritable cache only costs recomputing the floors
      self._floors[key] = cached
    return self._floors[key]

  def _n(self, n_images: int) -> int:
    n = min(n_images, len(self.data["test"]["x"]))
    if n < MIN_SAMPLES:
      raise ExtractorError(
          f"the image metrics need at least {MIN_SAMPLES} images on each side, but they would"
          f" compare {n} ({n_images} generated, {len(self.data['test']['x'])} in the"
          f" {self.dataset} test split). Give more images, or a data.dir whose test split has"
          " enough."
      )
    return n

  def reference(self, member: int, n: int) -> device.Reference:
    """The real side of the device metrics (features, k-NN radii, KID terms), once per process."""
    key = (member, n)
    if key not in self._refs:
      self._refs[key] = device.reference(self.real(member, n)[1])
    return self._refs[key]

  def _combine(self, per_member: list, n: int) -> dict:
    """One run's record from its metrics under each member: per member (<name>_e<k>), their
    mean (<name>), the floors, member 0's class histogram and the counts."""
    out, per = {}, {}
    for k, m in enumerate(per_member):
      m = dict(m)
      hist = m.pop("class_hist")
      if k == 0:
        out["class_hist"] = hist
      for name, v in m.items():
        per.setdefault(name, []).append(v)
        out[names.per_extractor(name, k)] = v
      for name, v in self._floor(k, n).items():
        per.setdefault(names.floor(name), []).append(v)
    out.update({name: float(np.mean(v)) for name, v in per.items()})
    out["num_samples"] = n
    out["classifier_accuracy"] = float(np.mean([m.accuracy for m in self.members]))
    out["extractors"] = len(self.members)
    return out

  def group_metrics(self, images_u8) -> list[dict]:
    """Every image metric of R runs' generated images (R, N, 28, 28), on the host or already on
    the device, in one program per extractor (gen_models.metrics.device): one record per run, as
    metrics()."""
    r, n = images_u8.shape[0], self._n(images_u8.shape[1])
    flat = jnp.asarray(images_u8)[:, :n].reshape((r * n,) + tuple(images_u8.shape[2:]))
    per_run = [[] for _ in range(r)]
    for k, member in enumerate(self.members):
      probs, feats = predict_device(member.model, member.params, flat)
      runs = device.group_metrics(
          self.reference(k, n), feats.reshape(r, n, -1), probs.reshape(r, n, -1)
      )
      for i, m in enumerate(runs):
        per_run[i].append(m)
    return [self._combine(m, n) for m in per_run]

  def metrics(self, images_u8) -> dict:
    """Every image metric of the generated images against the test split under each member
    (<name>_e<k>) and as the members' mean (<name>), with the real-data floors (<name>_floor,
    the same at the same sample count), the class histogram of member 0 and the counts: the
    device path (one run of group_metrics)."""
    return self.group_metrics(jnp.asarray(images_u8)[None])[0]

  def metrics_numpy(self, images_u8) -> dict:
    """metrics() computed by the numpy functions of gen_models.metrics.fid, one extractor after
    another on the host: the oracle of the device path, and the path the benchmark compares."""
    n = self._n(len(images_u8))
    per_member = []
    for k, member in enumerate(self.members):
      probs, feats = member(images_u8[:n])
      per_member.append(fid_lib.all_metrics(self.real(k, n)[1], feats, probs))
    return self._combine(per_member, n)


_ENSEMBLES = {}


def get(dataset: str, data: dict, log=print) -> Ensemble:
  key = (dataset, len(data["train"]["x"]), len(data["test"]["x"]))
  if key not in _ENSEMBLES:
    _ENSEMBLES[key] = Ensemble(dataset, data, log)
  return _ENSEMBLES[key]


def write_shipped(dataset: str, data: dict, seeds=ENSEMBLE_SEEDS, log=print) -> dict:
  """Trains the ensemble and writes it into the package's weights/ with the manifest entry
  (`python -m experiments.extractors --dataset fashion_mnist`). Returns the manifest entry."""
  members = []
  for seed in seeds:
    params, accuracy, seconds = train_classifier(data, seed, log)
    raw = params_to_bytes(params)
    name = f"{dataset}-lenet-v{RECIPE['version']}-s{seed}.npz"
    rundir.write_atomic(os.path.join(WEIGHTS_DIR, name), raw)
    members.append({
        "seed": seed,
        "file": name,
        "sha256": sha256(raw),
        "test_accuracy": accuracy,
        "train_s": round(seconds, 1),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    })
    log(f"{name}: test accuracy {accuracy:.4f}, sha256 {members[-1]['sha256']}")
  manifest = {}
  if os.path.exists(MANIFEST):
    with open(MANIFEST) as f:
      manifest = json.load(f)
  manifest[dataset] = {
      "recipe": RECIPE,
      "n_train": len(data["train"]["x"]),
      "n_test": len(data["test"]["x"]),
      "members": members,
  }
  rundir.write_atomic(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
  return manifest[dataset]
