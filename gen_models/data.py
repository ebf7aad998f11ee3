"""Datasets as arrays held once in device memory, and mini-batch sampling inside jit.

Sampling is a pure function of (data, key, step), so the loop needs no host input pipeline and
a resumed run draws exactly the batches an uninterrupted run would have drawn.
"""

import dataclasses
import gzip
import os
import socket
import threading
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchSpec:
  """Everything about a batch that fixes shapes (static under jit)."""

  batch_size: int
  num_examples: int
  sampling: str = "random"  # random | sequential
  latent_dim: int = 0  # 0: no latent noise in the batch (autoencoders)
  noise: str = "uniform"
  scale: str = "none"  # uint8 images -> "tanh": [-1, 1] | "sigmoid": [0, 1]; "none": as stored

  @property
  def padded_size(self) -> int:
    """Largest batch: the seed's last sequential minibatch takes the remainder (333/333/334)."""
    if self.sampling == "sequential":
      return self.batch_size + self.num_examples % self.batch_size
    return self.batch_size

  @property
  def steps_per_epoch(self) -> int:
    return max(1, self.num_examples // self.batch_size)


def batch_spec(cfg, num_examples: int, with_latent: bool = True) -> BatchSpec:
  scale = "none" if cfg.data.name == "gaussian1d" else cfg.data.range
  return BatchSpec(
      cfg.train.batch_size,
      num_examples,
      cfg.data.sampling,
      cfg.model.latent_dim if with_latent else 0,
      cfg.model.noise,
      scale,
  )


def to_float(x, scale: str):
  """uint8 pixels -> float32 in [0, 1] (sigmoid) or [-1, 1] (tanh); floats pass through."""
  if scale == "none" or x.dtype != jnp.uint8:
    return x.astype(jnp.float32)
  x = x.astype(jnp.float32) / 255.0
  # XLA folds the constants into one multiply, which maps 255 to 1.0000001: clip to the range.
  return jnp.clip(x * 2.0 - 1.0, -1.0, 1.0) if scale == "tanh" else jnp.minimum(x, 1.0)


def sample_latent(key, shape, noise: str):
  if noise == "uniform":
    return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
  return jax.random.normal(key, shape, jnp.float32)


def sample_batch(spec: BatchSpec, data: dict, key, step):
  """Returns {"x", "w", ["z"], ["y"]} for `step`. `w` weights the rows (all ones except padding)."""
  key_x, key_z = jax.random.split(key)
  size = spec.padded_size
  if spec.sampling == "sequential":
    # The seed: the fixed real sample cut into n // bs consecutive minibatches, the last one
    # taking the remainder; padded to one static size with zero weights.
    nb = spec.steps_per_epoch
    i = step % nb
    start = i * spec.batch_size
    rows = jnp.where(i == nb - 1, spec.num_examples - (nb - 1) * spec.batch_size, spec.batch_size)
    take = lambda a: jax.lax.dynamic_slice_in_dim(a, start, size, axis=0)
    w = (jnp.arange(size) < rows).astype(jnp.float32)
  else:
    idx = jax.random.randint(key_x, (size,), 0, spec.num_examples)
    take = lambda a: jnp.take(a, idx, axis=0)
    w = jnp.ones((size,), jnp.float32)
  # "i": each row's example index (a fixed per-example draw, e.g. the seed's one noisy copy of
  # the training set, is a function of it).
  index = jnp.arange(size, dtype=jnp.int32) + start if spec.sampling == "sequential" else idx
  batch = {
      "x": to_float(take(data["x"]), spec.scale),
      "w": w,
      "i": jnp.minimum(index, spec.num_examples - 1),
  }
  if "y" in data:
    batch["y"] = take(data["y"])
  if spec.latent_dim:
    batch["z"] = sample_latent(key_z, (size, spec.latent_dim), spec.noise)
  return batch


def gaussian1d(seed: int, num: int) -> np.ndarray:
  """The seed's real data: `num` draws of N(0, 1), shape (num, 1), fixed by `seed`."""
  key = jax.random.fold_in(jax.random.key(seed), 0xDA7A)
  return np.asarray(jax.random.normal(key, (num, 1), jnp.float32))


class DataError(RuntimeError):
  """The dataset cannot be found or read; the message lists the ways to get it."""


# ---------------------------------------------------------------------------------------------
# Image datasets: uint8 (N, 28, 28, 1) + int32 labels, scaled to floats inside the jitted step.

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (gzipped or not): images (N, rows, cols) or labels (N,), uint8."""

  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(
        f"Cannot read IDX file {path}: {e}. The file is damaged or truncated; download it again."
    ) from None
  if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
    raise DataError(
        f"{path} is not an IDX file of unsigned bytes (its magic number is "
        f"{raw[:4].hex() or 'missing'}, expected 00000801 for labels or 00000803 for "
        "images). Point data.dir at the original *-idx3-ubyte.gz / *-idx1-ubyte.gz files."
    )
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path} is truncated (its header is incomplete); download it again.")
  dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  size = int(np.prod(dims))
  if len(raw) - header != size:
    raise DataError(
        f"{path} is truncated or damaged: its header promises {dims} = {size:,} bytes "
        f"of data, the file holds {len(raw) - header:,}. Download it again."
    )
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _find(directory: str, stem: str):
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return None


def has_idx(directory: str) -> bool:
  return bool(directory) and all(_find(directory, s) for pair in IDX_FILES.values() for s in pair)


def load_idx_dir(directory: str) -> dict:
  out = {}
  for split, (img_stem, lbl_stem) in IDX_FILES.items():
    images, labels = read_idx(_find(directory, img_stem)), read_idx(_find(directory, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise DataError(
          f"IDX files in {directory} do not match: {split} images {images.shape}, "
          f"labels {labels.shape}."
      )
    out[split] = {"x": images[..., None], "y": labels.astype(np.int32)}
  return out


def _tfds_arrays(ds) -> dict:
  n = len(ds)
  x = np.empty((n, 28, 28, 1), np.uint8)
  y = np.empty((n,), np.int32)
  for i in range(n):
    ex = ds[i]
    x[i], y[i] = ex["image"], ex["label"]
  return {"x": x, "y": y}


def load_tfds(name: str, data_dir, download: bool) -> dict:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # array_record data sources need no TensorFlow; download=True prepares them in that format.
  return {
      split: _tfds_arrays(tfds.data_source(name, split=split, data_dir=data_dir, download=download))
      for split in ("train", "test")
  }


def tfds_prepared(name: str, data_dir) -> bool:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS warns about every missing folder
  try:
    return bool(tfds.builder(name, data_dir=data_dir).is_prepared())
  except Exception:  # pylint: disable=broad-except
    return False


def host_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
  """Seconds, not the minutes TFDS spends retrying an unreachable download host."""

  ok = []

  def attempt():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=attempt, daemon=True)
  t.start()
  t.join(timeout + 1.0)  # also bounds a slow DNS lookup
  return bool(ok)


def synthetic(num_train: int = 2048, num_test: int = 512, seed: int = 0) -> dict:
  """A small, deterministic 10-class image set for tests: class k is a bright blob at one of 10
  positions on a circle plus a class-specific bar, with random jitter and noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)

  def make(n):
    labels = rng.integers(0, 10, n).astype(np.int32)
    angle = labels * (2 * np.pi / 10)
    cy = 14 + 8 * np.sin(angle) + rng.normal(0, 1, n)
    cx = 14 + 8 * np.cos(angle) + rng.normal(0, 1, n)
    blob = np.exp(
        -((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) / 8.0
    )
    bar = (np.abs(xx[None] - (3 + 2.2 * labels[:, None, None])) < 1.0) & (yy[None] > 20)
    img = np.clip(blob + 0.8 * bar + rng.normal(0, 0.05, (n, 28, 28)), 0, 1)
    return {"x": (img * 255).astype(np.uint8)[..., None], "y": labels}

  return {"train": make(num_train), "test": make(num_test)}


def how_to_get(name: str) -> str:
  debian = (
      (
          " (Debian: `apt-get install dataset-fashion-mnist` puts them in "
          "/usr/share/datasets/fashion-mnist, which is found without data.dir)"
      )
      if DATASETS[name].debian_dir
      else ""
  )
  return (
      f"Three ways to get {name}: (1) a prepared TFDS data_dir: on a machine with internet run"
      f" `tfds build {name} --file_format=array_record`, copy its data_dir here and pass --set"
      " data.dir=DIR (or leave it in ~/tensorflow_datasets); (2) a TFDS download: run where"
      f" {DATASETS[name].download_host[0]} is reachable and the first run downloads it; (3) the"
      " four standard IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"
      " t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a directory passed as --set"
      f" data.dir=DIR{debian}."
  )


def _missing_idx(directory: str) -> list[str]:
  return [s for pair in IDX_FILES.values() for s in pair if not _find(directory, s)]


def load_images(name: str, data_dir: str = "", log=print) -> dict:
  """mnist / fashion_mnist. A `data_dir` the user named is the only place read: a prepared TFDS
  data_dir or the four IDX files there, else an error. Without one, in order: TFDS' default
  data_dir, a TFDS download (where the host answers), Debian's IDX directory. Never another
  dataset than the one asked for."""
  if data_dir:
    if not os.path.isdir(data_dir):
      raise DataError(
          f"data.dir={data_dir} does not exist or is not a directory. Point data.dir at "
          f"a directory holding {name} (or drop data.dir to use the default places). "
          + how_to_get(name)
      )
    if has_idx(data_dir):
      log(f"data: {name} from IDX files in {data_dir}")
      return load_idx_dir(data_dir)
    if tfds_prepared(name, data_dir):
      log(f"data: {name} from the prepared TFDS data_dir {data_dir}")
      return load_tfds(name, data_dir, download=False)
    missing = _missing_idx(data_dir)
    found = len(missing) < 4
    what = (
        f"it holds only some of the four IDX files (missing: {', '.join(missing)})"
        if found
        else f"it holds neither the four IDX files nor a prepared TFDS copy of {name}"
    )
    raise DataError(
        f"data.dir={data_dir}: {what}. Nothing else is read when data.dir is set. "
        + how_to_get(name)
    )
  tried = []
  if tfds_prepared(name, None):
    log(f"data: {name} from the prepared TFDS default data_dir")
    return load_tfds(name, None, download=False)
  tried.append("no prepared TFDS copy in the TFDS default data_dir")
  host, port = DATASETS[name].download_host
  if host_reachable(host, port):
    log(f"data: downloading {name} with TFDS (from {host})")
    try:
      return load_tfds(name, None, download=True)
    except Exception as e:  # pylint: disable=broad-except
      tried.append(f"the TFDS download failed ({str(e).splitlines()[0][:200]})")
  else:
    tried.append(f"TFDS cannot download it ({host} is unreachable)")
  debian = DATASETS[name].debian_dir
  if debian:
    if has_idx(debian):
      log(f"data: {name} from IDX files in {debian}")
      return load_idx_dir(debian)
    tried.append(f"no IDX files in {debian}")
  raise DataError(f"Dataset {name} not found: {'; '.join(tried)}. {how_to_get(name)}")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One entry of DATASETS. `read(cfg, log)` returns host arrays {"train": {"x", ["y"]},
  ["test": {...}]}; a 28x28 image set found by TFDS name reads through load_images, which also
  tries `download_host` (where TFDS fetches it from) and `debian_dir` (a Debian package's IDX
  files). `shared`: read once per process and shared by every run of a sweep."""

  read: Callable
  download_host: tuple = ()
  debian_dir: str = ""
  shared: bool = True


def load_images_of(cfg, log=print):
  """A Dataset's read for a 28x28 image set: load_images of cfg.data, cut to data.num_train."""
  out = load_images(cfg.data.name, cfg.data.dir, log)
  if cfg.data.num_train:
    out["train"] = {k: v[: cfg.data.num_train] for k, v in out["train"].items()}
  return out


# data.name -> Dataset. A new 28x28 TFDS image set is one entry here (its TFDS name, the host TFDS
# downloads it from), plus its feature extractors (python -m experiments.extractors).
DATASETS = {
    "gaussian1d": Dataset(
        lambda cfg, log: {"train": {"x": gaussian1d(cfg.seed, cfg.data.num_real)}}, shared=False
    ),
    "mnist": Dataset(load_images_of, download_host=("storage.googleapis.com", 443)),
    "fashion_mnist": Dataset(
        load_images_of,
        download_host=("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
        debian_dir="/usr/share/datasets/fashion-mnist",
    ),
    "synthetic": Dataset(lambda cfg, log: synthetic(cfg.data.num_train or 2048)),
}
_CACHE = {}


def load(cfg, log=print) -> dict:
  """Host arrays for cfg.data: {"train": {"x", ["y"]}, ["test": {...}]} (DATASETS). Image sets are
  read once per process and shared by every run of a sweep."""
  dataset = DATASETS[cfg.data.name]
  if not dataset.shared:
    return dataset.read(cfg, log)
  key = (cfg.data.name, cfg.data.dir, cfg.data.num_train)
  if key not in _CACHE:
    _CACHE[key] = dataset.read(cfg, log)
  return _CACHE[key]
