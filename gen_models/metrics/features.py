"""The feature extractor of the image metrics: a LeNet classifier trained once per dataset with a
fixed seed, cached as an orbax checkpoint and reused by every run.

Cache: $GEN_MODELS_CACHE (default ~/.cache/gen_models)/classifier/<dataset>-<hash>/ with
checkpoint/ and meta.json (test accuracy, training config, the real-data floors). The hash covers
the training config and the dataset's size, so a changed config retrains into a new directory.
"""

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_models.metrics import fid as fid_lib
from gen_models.models.classifier import LeNet, as_input

TRAIN_CONFIG = {"version": 1, "epochs": 5, "batch_size": 128, "lr": 1e-3, "seed": 0}
EXPECTED_ACCURACY = {"mnist": 0.99, "fashion_mnist": 0.90}


def cache_root() -> str:
  return os.environ.get("GEN_MODELS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "gen_models"))


def _cache_dir(name: str, data: dict) -> str:
  ident = json.dumps({"cfg": TRAIN_CONFIG, "dataset": name, "n_train": len(data["train"]["x"]),
                      "n_test": len(data["test"]["x"])}, sort_keys=True)
  return os.path.join(cache_root(), "classifier", f"{name}-{hashlib.sha256(ident.encode()).hexdigest()[:10]}")


@functools.partial(jax.jit, static_argnums=0)
def _train_step(model, params, opt_state, x, y, key):
  def loss_fn(p):
    logits, _ = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = optax.adam(TRAIN_CONFIG["lr"]).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnums=0)
def _forward(model, params, images_u8):
  logits, feats = model.apply({"params": params}, as_input(images_u8), train=False)
  return jax.nn.softmax(logits), feats


def _checkpointer():
  """A checkpointer private to this process: in a multi-host job each process reads the small
  classifier on its own (and, if the cache is missing, trains it; only process 0 writes it)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  me = jax.process_index()
  return ocp.StandardCheckpointer(
      multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}))


def train_classifier(data: dict, log=print):
  """Trains LeNet on data["train"], returns (params, test accuracy, seconds)."""
  cfg = TRAIN_CONFIG
  model = LeNet()
  key = jax.random.key(cfg["seed"])
  x_train, y_train = data["train"]["x"], data["train"]["y"]
  params = model.init(key, jnp.zeros((1, 28, 28, 1)))["params"]
  opt_state = optax.adam(cfg["lr"]).init(params)
  rng = np.random.default_rng(cfg["seed"])
  steps_per_epoch = max(1, len(x_train) // cfg["batch_size"])
  t0 = time.perf_counter()
  for epoch in range(cfg["epochs"]):
    order = rng.permutation(len(x_train))
    for i in range(steps_per_epoch):
      idx = order[i * cfg["batch_size"]:(i + 1) * cfg["batch_size"]]
      params, opt_state, loss = _train_step(model, params, opt_state, as_input(x_train[idx]),
                                            jnp.asarray(y_train[idx]), jax.random.fold_in(key, epoch * 100000 + i))
    log(f"classifier: epoch {epoch + 1}/{cfg['epochs']} loss {float(loss):.4f} ({time.perf_counter() - t0:.0f}s)")
  probs, _ = predict(model, params, data["test"]["x"])
  accuracy = float(np.mean(probs.argmax(1) == data["test"]["y"]))
  return params, accuracy, time.perf_counter() - t0


def predict(model, params, images_u8, batch: int = 1000):
  """(probs, features) for uint8 images, in fixed-size batches (one compilation)."""
  n = len(images_u8)
  probs, feats = [], []
  for i in range(0, n, batch):
    chunk = np.asarray(images_u8[i:i + batch])
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    p, f = _forward(model, params, jnp.asarray(chunk))
    probs.append(np.asarray(p)[:batch - pad])
    feats.append(np.asarray(f)[:batch - pad])
  return np.concatenate(probs), np.concatenate(feats)


class FeatureExtractor:
  """The cached classifier of one dataset, with the real test set's features at hand."""

  def __init__(self, name: str, data: dict, log=print):
    self.name, self.data, self.model = name, data, LeNet()
    self.dir = _cache_dir(name, data)
    meta_path = os.path.join(self.dir, "meta.json")
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # whichever process reads it
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=local), jax.eval_shape(
        lambda: self.model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]))
    self.params = None
    if os.path.exists(meta_path):
      try:
        with open(meta_path) as f:
          self.meta = json.load(f)
        self.params = _checkpointer().restore(os.path.join(self.dir, "checkpoint"), abstract)
        log(f"classifier: {name} from the cache {self.dir} (test accuracy {self.meta['test_accuracy']:.4f})")
      except Exception as e:  # pylint: disable=broad-except
        aside = f"{self.dir}.unreadable-{int(time.time())}"
        log(f"classifier: the cache {self.dir} cannot be read ({type(e).__name__}: {str(e)[:200]}); "
            f"moved to {aside}, training a new one")
        try:
          os.rename(self.dir, aside)
        except OSError:
          pass  # another process of a multi-host job set it aside first
    if self.params is None:
      log(f"classifier: training the {name} feature extractor once (cached in {self.dir})")
      params, accuracy, seconds = train_classifier(data, log)
      self.meta = {"dataset": name, "test_accuracy": accuracy, "train_s": seconds, "config": TRAIN_CONFIG,
                   "n_train": len(data["train"]["x"]), "n_test": len(data["test"]["x"]), "floors": {}}
      # In a multi-host job every process trains the same classifier (same seed, same data) but
      # only process 0 writes the cache: a checkpoint written by another process of the job was
      # unreadable by a later single-process run.
      if jax.process_index() == 0:
        self._write_cache(params)
      self.params = params
      log(f"classifier: {name} test accuracy {accuracy:.4f} after {seconds:.0f}s")
    self._real = {}

  def _write_cache(self, params):
    os.makedirs(os.path.dirname(self.dir), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(self.dir), prefix=".tmp-")
    ckpt = _checkpointer()
    ckpt.save(os.path.join(tmp, "checkpoint"), jax.device_get(params))
    ckpt.wait_until_finished()
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump(self.meta, f, indent=1)
    try:
      os.rename(tmp, self.dir)  # atomic: a concurrent run either sees all of it or none
    except OSError:
      shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; use its copy

  @property
  def accuracy(self) -> float:
    return self.meta["test_accuracy"]

  def __call__(self, images_u8):
    return predict(self.model, self.params, images_u8)

  def real(self, n: int, split: str = "test"):
    """(probs, features) of the first n images of a split (the reference set)."""
    if (split, n) not in self._real:
      x = self.data[split]["x"]
      if n > len(x):
        raise ValueError(f"{n} reference images requested, the {split} split has {len(x)}")
      self._real[(split, n)] = self(x[:n])
    return self._real[(split, n)]

  def floors(self, n: int) -> dict:
    """Every metric between n training images and the n test images: what real data scores."""
    key = str(n)
    if key not in self.meta["floors"]:
      n = min(n, len(self.data["train"]["x"]), len(self.data["test"]["x"]))
      train_probs, train_feats = self(self.data["train"]["x"][:n])
      _, test_feats = self.real(n)
      m = fid_lib.all_metrics(test_feats, train_feats, train_probs)
      m.pop("class_hist")
      self.meta["floors"][key] = m
      if jax.process_index() == 0 and os.path.isdir(self.dir):  # the cache's writer, see __init__
        tmp = os.path.join(self.dir, f".meta-{os.getpid()}.json")
        with open(tmp, "w") as f:
          json.dump(self.meta, f, indent=1)
        os.replace(tmp, os.path.join(self.dir, "meta.json"))  # readers never see half a file
    return self.meta["floors"][key]


_EXTRACTORS = {}


def get(name: str, data: dict, log=print) -> FeatureExtractor:
  key = (name, len(data["train"]["x"]), len(data["test"]["x"]))
  if key not in _EXTRACTORS:
    _EXTRACTORS[key] = FeatureExtractor(name, data, log)
  return _EXTRACTORS[key]
