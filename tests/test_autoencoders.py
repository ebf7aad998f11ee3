"""Autoencoders and the VAE: the seeds' shapes and parameter counts, what a step optimises,
the reconstruction metrics, resume, and the figures a run writes."""

import json
import os

import flax.linen
from flax.training import train_state
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.commands import run
from experiments.commands import sample
from gen_models import data as data_lib
from gen_models import families, steps
from gen_models import losses
from gen_models import models
from gen_models import state as state_lib
from gen_models.metrics import recon
from tests import helpers
from tests.helpers import tiny_ae


@pytest.mark.slow
# Keras summaries
@pytest.mark.parametrize("exp,params", [("ae_dense", 50_992), ("ae_conv", 4_385)])
def test_seed_shapes_and_parameter_counts(exp, params):
  cfg = tiny_ae(exp)
  st = state_lib.create_ae_state(cfg, jax.random.key(0), (28, 28, 1))
  assert state_lib.param_count(st["ae"].params) == params
  apply = jax.jit(models.build(cfg.model).apply)  # one program (eagerly, one per layer)
  out = apply({"params": st["ae"].params}, jnp.zeros((3, 28, 28, 1)))
  assert out["logits"].shape == (3, 28, 28, 1)  # ae_conv: the one 'valid' conv makes 16 -> 14 -> 28


def test_gaussian_kl_and_psnr_closed_forms():
  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.log(jnp.array([[2.0, 0.5]]))
  var = np.array([2.0, 0.5])
  want = 0.5 * np.sum(var + np.array([0.25, 1.0]) - 1 - np.log(var))
  np.testing.assert_allclose(losses.gaussian_kl(mean, logvar), [want], rtol=1e-6)
  np.testing.assert_allclose(
      losses.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3))), [0.0], atol=1e-7
  )
  np.testing.assert_allclose(recon.psnr(jnp.array(0.01)), 20.0, rtol=1e-6)


class _Constant(flax.linen.Module):
  """A stand-in autoencoder with known outputs: every pixel reconstructed as sigmoid(0) = 0.5, and
  (as a VAE) the posterior N(0.5, 2) in each of 2 latent dimensions."""

  @flax.linen.compact
  def __call__(self, x, train=False):
    b = self.param("b", flax.linen.initializers.zeros, ())
    mean = jnp.full((x.shape[0], 2), 0.5) + b
    return {
        "logits": jnp.zeros_like(x) + b,
        "mean": mean,
        "logvar": jnp.full_like(mean, np.log(2.0)),
        "z": mean,
    }


def test_reconstruction_metrics_on_a_known_model():

  module = _Constant()
  ae = train_state.TrainState.create(
      apply_fn=module.apply,
      params=module.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"],
      tx=optax.sgd(0.0),
  )
  x_u8 = np.random.default_rng(0).integers(0, 256, (7, 28, 28, 1)).astype(np.uint8)
  x = x_u8.astype(np.float64) / 255.0
  key = jax.random.key(5)
  got = recon.evaluate(ae, x_u8, noise_std=0.3, key=key, vae=True, bce=True)
  mse = np.mean((0.5 - x) ** 2, axis=(1, 2, 3))
  psnr = np.mean(10 * np.log10(1 / mse))
  # The noise of the first (only) batch: documented as drawn from fold_in(fold_in(key, 0), 0).
  noise = (
      0.3
      * np.asarray(
          jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 0), 0), (500, 28, 28, 1))
      )[:7]
  )
  noisy_psnr = np.mean(
      10 * np.log10(1 / np.mean((np.clip(x + noise, 0, 1) - x) ** 2, axis=(1, 2, 3)))
  )
  nll = 784 * np.log(2.0)  # BCE of p = 0.5 is log 2 per pixel whatever the target
  kl = 2 * 0.5 * (2.0 + 0.25 - 1 - np.log(2.0))  # KL(N(0.5, 2) || N(0, 1)) per dimension, 2 dims
  assert got["mse"] == pytest.approx(mse.mean(), rel=1e-5)
  assert got["bce"] == pytest.approx(np.log(2.0), rel=1e-5)
  assert got["psnr"] == pytest.approx(psnr, rel=1e-5)
  assert got["noisy_psnr"] == pytest.approx(noisy_psnr, rel=1e-4)
  assert got["psnr_gain"] == pytest.approx(psnr - noisy_psnr, rel=1e-4)
  assert got["recon_nll"] == pytest.approx(nll, rel=1e-5)
  assert got["kl"] == pytest.approx(kl, rel=1e-5)
  assert got["elbo"] == pytest.approx(-(nll + kl), rel=1e-5)


def _losses_after(cfg, tmp_path, name):
  _, result = helpers.train(cfg, tmp_path / name, exp_name="ae_dense")
  rows = [json.loads(l) for l in open(tmp_path / name / "metrics.jsonl")]
  return [r["train/loss"] for r in rows if "train/loss" in r], result


@pytest.mark.slow
def test_training_reduces_the_loss_and_denoising_sees_noise(tmp_path):
  cfg = tiny_ae(**{
      "train.steps": 40,
      "train.log_every": 10,
      "eval.every": 20,
      "ckpt.every": 20,
      "optim.g_lr": 3e-3,
  })
  plain, result = _losses_after(cfg, tmp_path, "plain")
  assert plain[-1] < 0.7 * plain[0]
  assert "noisy_psnr" not in result["metrics"]
  noisy_cfg = tiny_ae(**{
      "train.steps": 40,
      "train.log_every": 10,
      "eval.every": 20,
      "ckpt.every": 20,
      "optim.g_lr": 3e-3,
      "data.noise_std": 0.55,
  })
  noisy, result = _losses_after(noisy_cfg, tmp_path, "noisy")
  # same init and batches: noisy inputs slow the early descent
  assert noisy[1] > 1.2 * plain[1], (noisy, plain)
  m = result["metrics"]
  assert m["psnr"] > m["noisy_psnr"]  # even a few steps beat the noisy input


@pytest.mark.slow
def test_autoencoder_resume_is_bit_identical(tmp_path):
  full, _ = helpers.train(tiny_ae("ae_conv"), tmp_path / "full", exp_name="ae_conv")
  helpers.train(tiny_ae("ae_conv", **{"train.steps": 4}), tmp_path / "split", exp_name="ae_conv")
  resumed, result = helpers.train(
      tiny_ae("ae_conv"), tmp_path / "split", resume=True, exp_name="ae_conv"
  )
  assert result["resumed_from"] == 4
  helpers.assert_bit_identical(full, resumed)


@pytest.mark.slow
def test_vae_run_writes_elbo_prior_metrics_and_figures(tmp_path, capsys, figures):
  argv = [
      "--exp=vae",
      "--seeds",
      "1",
      "--out",
      str(tmp_path),
      "--set",
      "data.name=synthetic",
      "--set",
      "data.num_train=256",
      "--set",
      "train.batch_size=16",
      "--set",
      "train.steps=8",
      "--set",
      "train.log_every=4",
      "--set",
      "eval.every=8",
      "--set",
      "ckpt.every=4",
      "--set",
      "eval.num_samples=200",
      "--set",
      "model.latent_dim=2",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(argv) == 0
  run_dir = tmp_path / "vae" / "base" / "seed0"
  metrics = json.loads((run_dir / "result.json").read_text())["metrics"]
  assert metrics["kl"] > 0 and "fid" in metrics and "fid_floor" in metrics
  for name in ("recon.png", "latent.png", "prior_samples.png", "interpolation.png", "curves.png"):
    assert (run_dir / "samples" / name).exists(), name
  out = tmp_path / "prior.npz"
  assert sample.main(["--run", str(run_dir), "--n", "5", "--out", str(out)]) == 0
  assert np.load(out)["images"].shape == (5, 28, 28)
  report = (tmp_path / "vae" / "report.md").read_text()
  assert "ELBO" in report and "prior FID" in report
  assert "- **ELBO**:" in report and "- Denoising:" not in report  # only the notes that apply
  assert os.path.exists(tmp_path / "vae" / "samples.png")


@pytest.mark.slow
def test_denoising_default_is_the_seeds_fixed_noisy_copy():

  shape = (28, 28, 1)
  a = steps.fixed_noise(0, jnp.array([3, 7, 3]), shape)
  np.testing.assert_array_equal(a[0], a[2])  # example 3's noise, wherever and whenever it is drawn
  assert not np.allclose(a[0], a[1])
  # another seed, another copy
  assert not np.allclose(a[0], steps.fixed_noise(1, jnp.array([3]), shape)[0])
  big = np.asarray(steps.fixed_noise(0, jnp.arange(200), shape))
  assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01  # N(0, 1)
  fixed, fresh = tiny_ae(**{"data.noise_std": 0.55}), tiny_ae(
      **{"data.noise_std": 0.55, "data.noise": "fresh"}
  )
  assert fixed.data.noise == "fixed"  # the default, as in seed 001
  data = data_lib.load(fixed)
  out = {}
  for name, cfg in (("fixed", fixed), ("fresh", fresh)):
    task = families.make_task(cfg, data, jax.random.key(0))
    st = task.init(jax.random.key(1))
    batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)
    hp = jax.tree.map(jnp.asarray, task.hparams)
    step = jax.jit(task.step)
    out[name] = [step(st, batch, jax.random.key(k), hp)[1]["loss"] for k in (3, 4)]
  assert out["fixed"][0] == out["fixed"][1]  # the step's key does not enter the fixed copy
  assert out["fresh"][0] != out["fresh"][1]  # fresh noise does depend on it
