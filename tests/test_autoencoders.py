"""Autoencoders and the VAE: the seeds' shapes and parameter counts, what a step optimises,
the reconstruction metrics, resume, and the figures a run writes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import run
from experiments import sample
from gen_models import losses
from gen_models import models
from gen_models import state as state_lib
from gen_models.metrics import recon
from tests import helpers
from tests.conftest import tiny_ae


@pytest.mark.parametrize("exp,params", [("ae_dense", 50_992), ("ae_conv", 4_385)])  # Keras summaries
def test_seed_shapes_and_parameter_counts(exp, params):
  cfg = tiny_ae(exp)
  st = state_lib.create_ae_state(cfg, jax.random.key(0), (28, 28, 1))
  assert state_lib.param_count(st["ae"].params) == params
  out = models.ae_module(cfg.model).apply({"params": st["ae"].params}, jnp.zeros((3, 28, 28, 1)))
  assert out["logits"].shape == (3, 28, 28, 1)  # ae_conv: the one 'valid' conv makes 16 -> 14 -> 28


def test_gaussian_kl_and_psnr_closed_forms():
  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.log(jnp.array([[2.0, 0.5]]))
  var = np.array([2.0, 0.5])
  want = 0.5 * np.sum(var + np.array([0.25, 1.0]) - 1 - np.log(var))
  np.testing.assert_allclose(losses.gaussian_kl(mean, logvar), [want], rtol=1e-6)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3))), [0.0], atol=1e-7)
  np.testing.assert_allclose(recon.psnr(jnp.array(0.01)), 20.0, rtol=1e-6)


def _losses_after(cfg, tmp_path, name):
  _, result = helpers.train(cfg, tmp_path / name, exp_name="ae_dense")
  rows = [json.loads(l) for l in open(tmp_path / name / "metrics.jsonl")]
  return [r["train/loss"] for r in rows if "train/loss" in r], result


def test_training_reduces_the_loss_and_denoising_sees_noise(tmp_path):
  cfg = tiny_ae(**{"train.steps": 40, "train.log_every": 10, "eval.every": 20, "ckpt.every": 20, "optim.g_lr": 3e-3})
  plain, result = _losses_after(cfg, tmp_path, "plain")
  assert plain[-1] < 0.7 * plain[0]
  assert "noisy_psnr" not in result["metrics"]
  noisy_cfg = tiny_ae(**{"train.steps": 40, "train.log_every": 10, "eval.every": 20, "ckpt.every": 20,
                         "optim.g_lr": 3e-3, "data.noise_std": 0.55})
  noisy, result = _losses_after(noisy_cfg, tmp_path, "noisy")
  assert noisy[0] > plain[0]  # same init and batches, noisier inputs: a worse first reconstruction
  m = result["metrics"]
  assert m["psnr_gain"] == pytest.approx(m["psnr"] - m["noisy_psnr"])
  assert m["psnr"] > m["noisy_psnr"]  # even a few steps beat the noisy input


def test_autoencoder_resume_is_bit_identical(tmp_path):
  full, _ = helpers.train(tiny_ae("ae_conv"), tmp_path / "full", exp_name="ae_conv")
  helpers.train(tiny_ae("ae_conv", **{"train.steps": 4}), tmp_path / "split", exp_name="ae_conv")
  resumed, result = helpers.train(tiny_ae("ae_conv"), tmp_path / "split", resume=True, exp_name="ae_conv")
  assert result["resumed_from"] == 4
  helpers.assert_bit_identical(full, resumed)


def test_vae_run_writes_elbo_prior_metrics_and_figures(tmp_path, capsys):
  argv = ["--exp=vae", "--seeds", "1", "--out", str(tmp_path), "--set", "data.name=synthetic",
          "--set", "data.num_train=256", "--set", "train.batch_size=16", "--set", "train.steps=8",
          "--set", "train.log_every=4", "--set", "eval.every=8", "--set", "ckpt.every=4",
          "--set", "eval.num_samples=200", "--set", "model.latent_dim=2", "--wandb", "disabled", "--quiet"]
  assert run.main(argv) == 0
  run_dir = tmp_path / "vae" / "base" / "seed0"
  metrics = json.loads((run_dir / "result.json").read_text())["metrics"]
  assert metrics["elbo"] == pytest.approx(-(metrics["recon_nll"] + metrics["kl"]), rel=1e-5)
  assert metrics["kl"] > 0 and "fid" in metrics and "fid_floor" in metrics
  for name in ("recon.png", "latent.png", "prior_samples.png", "interpolation.png", "curves.png"):
    assert (run_dir / "samples" / name).exists(), name
  out = tmp_path / "prior.npz"
  assert sample.main(["--run", str(run_dir), "--n", "5", "--out", str(out)]) == 0
  assert np.load(out)["images"].shape == (5, 28, 28)
  report = (tmp_path / "vae" / "report.md").read_text()
  assert "ELBO" in report and "prior FID" in report
  assert "- VAE:" in report and "- Denoising:" not in report  # only the notes that apply
  assert os.path.exists(tmp_path / "vae" / "samples.png")
