"""The data layer: IDX reader, TFDS path (mock), source order, and the no-data message."""

import dataclasses
import gzip
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models.config import ConfigError
from tests import helpers

_write_idx = helpers.write_idx
_write_dataset = helpers.write_idx_dataset


def test_idx_round_trip(tmp_path):
  images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
  _write_idx(str(tmp_path / "a-idx3-ubyte.gz"), images)
  np.testing.assert_array_equal(data_lib.read_idx(str(tmp_path / "a-idx3-ubyte.gz")), images)
  _write_dataset(str(tmp_path / "d"))
  d = data_lib.load_idx_dir(str(tmp_path / "d"))
  assert d["train"]["x"].shape == (12, 28, 28, 1) and d["train"]["x"].dtype == np.uint8
  assert d["test"]["y"].shape == (5,) and d["test"]["y"].dtype == np.int32


def test_truncated_and_wrong_magic_files_give_clear_errors(tmp_path):
  images = np.zeros((3, 28, 28))
  _write_idx(str(tmp_path / "t.gz"), images, truncate=100)
  with pytest.raises(data_lib.DataError, match="truncated or damaged.*Download it again"):
    data_lib.read_idx(str(tmp_path / "t.gz"))
  _write_idx(str(tmp_path / "m.gz"), images, magic_type=0x0D)  # float data, not ubyte
  with pytest.raises(data_lib.DataError, match="not an IDX file of unsigned bytes"):
    data_lib.read_idx(str(tmp_path / "m.gz"))
  raw = np.random.default_rng(0).integers(0, 256, 3000).astype(np.uint8).tobytes()
  with open(tmp_path / "cut.gz", "wb") as f:  # a cut-off gzip stream
    f.write(gzip.compress(b"\x00\x00\x08\x03" + raw)[:1000])
  with pytest.raises(data_lib.DataError, match="damaged or truncated"):
    data_lib.read_idx(str(tmp_path / "cut.gz"))


def test_tfds_path_with_mock_data():

  with tfds.testing.mock_data(num_examples=8):
    d = data_lib.load_tfds("mnist", None, download=False)
  assert d["train"]["x"].shape == (8, 28, 28, 1) and d["train"]["x"].dtype == np.uint8
  assert d["test"]["y"].shape == (8,)


def test_explicit_idx_dir_is_used(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "host_reachable", lambda *a, **k: pytest.fail("no download needed"))
  _write_dataset(str(tmp_path))
  logs = []
  d = data_lib.load_images("mnist", str(tmp_path), log=logs.append)
  assert len(d["train"]["x"]) == 12 and "IDX files in" in logs[0]


def test_a_new_28x28_dataset_is_one_registry_entry(tmp_path, monkeypatch):
  _write_dataset(str(tmp_path / "kmnist"), n_train=7, n_test=3, seed=3)
  cfg = config_lib.apply_overrides(
      config_lib.Config(),
      {"data.name": "kmnist", "data.dir": str(tmp_path / "kmnist"), "model.arch": "dcgan"},
  )
  with pytest.raises(ConfigError, match="Bad value for 'data.name'.*fashion_mnist"):
    families.validate(cfg)  # unknown until it has an entry
  entry = data_lib.Dataset(data_lib.load_images_of, download_host=("127.0.0.1", 9))
  monkeypatch.setitem(data_lib.DATASETS, "kmnist", entry)
  families.validate(cfg)
  data = data_lib.load(cfg, log=lambda s: None)
  assert data["train"]["x"].shape == (7, 28, 28, 1) and data["test"]["x"].shape == (3, 28, 28, 1)
  cfg = config_lib.set_key(cfg, "data.dir", "")  # no data.dir: how to get it, from its entry
  with pytest.raises(data_lib.DataError, match="127.0.0.1"):
    data_lib.load(cfg, log=lambda s: None)


def test_missing_data_lists_three_ways_and_never_substitutes(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "tfds_prepared", lambda *a: False)
  monkeypatch.setattr(data_lib, "host_reachable", lambda *a, **k: False)
  _write_dataset(str(tmp_path / "fashion"))
  monkeypatch.setitem(
      data_lib.DATASETS,
      "fashion_mnist",
      dataclasses.replace(data_lib.DATASETS["fashion_mnist"], debian_dir=str(tmp_path / "fashion")),
  )
  # mnist asked: Fashion-MNIST's files are no substitute
  with pytest.raises(data_lib.DataError) as e:
    data_lib.load_images("mnist", "")
  msg = str(e.value)
  assert "Dataset mnist not found" in msg and "(1)" in msg and "(2)" in msg and "(3)" in msg
  assert "unreachable" in msg
  assert len(data_lib.load_images("fashion_mnist", "", log=lambda s: None)["train"]["x"]) == 12


@pytest.mark.parametrize("layout", ["missing", "three_of_four", "empty"])
def test_a_named_data_dir_is_the_only_place_read(tmp_path, monkeypatch, layout):
  # The default places hold a complete dataset: a named data.dir that lacks it must not fall
  # back to them (it silently trained on Debian's Fashion-MNIST before).
  _write_dataset(str(tmp_path / "debian"))
  monkeypatch.setitem(
      data_lib.DATASETS,
      "fashion_mnist",
      dataclasses.replace(data_lib.DATASETS["fashion_mnist"], debian_dir=str(tmp_path / "debian")),
  )
  monkeypatch.setattr(
      data_lib, "host_reachable", lambda *a, **k: pytest.fail("nothing else is tried")
  )
  named = tmp_path / "named"
  if layout == "three_of_four":
    _write_dataset(str(named))
    os.remove(named / "t10k-labels-idx1-ubyte.gz")
  elif layout == "empty":
    named.mkdir()
  with pytest.raises(data_lib.DataError) as e:
    data_lib.load_images("fashion_mnist", str(named), log=lambda s: None)
  msg = str(e.value)
  assert f"data.dir={named}" in msg
  assert ("does not exist" if layout == "missing" else "Nothing else is read") in msg
  if layout == "three_of_four":
    assert "missing: t10k-labels-idx1-ubyte" in msg


@pytest.mark.slow
def test_a_missing_data_dir_exits_2_before_compiling(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  p = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.run",
          "--exp=ae_dense",
          "--set",
          "data.name=fashion_mnist",
          "--set",
          f"data.dir={tmp_path / 'nonexistent'}",
          "--set",
          "train.steps=10",
          "--seeds",
          "1",
          "--wandb",
          "disabled",
          "--out",
          str(tmp_path / "out"),
      ],
      cwd=root,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert p.returncode == 2, p.stderr[-2000:]
  assert "does not exist" in p.stderr and "Traceback" not in p.stderr
  assert not (tmp_path / "out").exists()


def test_unreachable_host_is_detected_in_seconds():
  t = time.perf_counter()
  assert not data_lib.host_reachable("host.invalid", 443, timeout=2.0)
  assert time.perf_counter() - t < 4.0


def test_batches_are_scaled_inside_jit():
  d = data_lib.synthetic(64, 8)
  assert d["train"]["x"].dtype == np.uint8 and d["train"]["x"].shape == (64, 28, 28, 1)
  for rng_name, lo, hi in (("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)):
    cfg = config_lib.apply_overrides(
        config_lib.Config(),
        {
            "data.name": "synthetic",
            "data.range": rng_name,
            "model.arch": "mlp_gan",
            "train.batch_size": 16,
            "model.latent_dim": 4,
        },
    )
    spec = data_lib.batch_spec(cfg, 64)
    b = jax.jit(data_lib.sample_batch, static_argnums=0)(
        spec, jax.device_put(d["train"]), jax.random.key(0), 3
    )
    x = np.asarray(b["x"])
    assert x.dtype == np.float32 and x.shape == (16, 28, 28, 1)
    assert x.min() >= lo and x.max() <= hi and x.max() - x.min() > 0.5 * (hi - lo)
    assert b["z"].shape == (16, 4) and b["y"].shape == (16,)
