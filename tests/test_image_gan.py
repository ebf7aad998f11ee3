"""Image GANs end to end on a tiny synthetic dataset: resume is bit-identical, a run writes its
sample grids / GIF / strip / latent walk, the sweep report compares arms."""

import json
import os

import pytest

from experiments.commands import run
from gen_models.config import ConfigError
from tests import helpers
from tests.helpers import tiny_ae
from tests.helpers import tiny_image


@pytest.mark.slow
def test_image_gan_resume_is_bit_identical(tmp_path):
  full, _ = helpers.train(tiny_image(), tmp_path / "full", exp_name="dcgan")
  helpers.train(tiny_image(**{"train.steps": 4}), tmp_path / "split", exp_name="dcgan")
  resumed, result = helpers.train(tiny_image(), tmp_path / "split", resume=True, exp_name="dcgan")
  assert result["resumed_from"] == 4
  helpers.assert_bit_identical(full, resumed)  # params, optimizer state, BatchNorm statistics


@pytest.mark.slow
def test_latent_sweep_run_files_and_report(tmp_path, figures):
  argv = [
      "--exp=dcgan_latent",
      "--arms",
      "z2,z10",
      "--seeds",
      "1",
      "--out",
      str(tmp_path),
      "--set",
      "data.name=synthetic",
      "--set",
      "data.num_train=256",
      "--set",
      "train.batch_size=8",
      "--set",
      "train.steps=6",
      "--set",
      "train.log_every=2",
      "--set",
      "eval.every=3",
      "--set",
      "ckpt.every=2",
      "--set",
      "eval.num_samples=200",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(argv) == 0
  exp_dir = tmp_path / "dcgan_latent"
  samples = exp_dir / "z2" / "seed0" / "samples"
  for name in (
      "step_0000000.png",
      "step_0000003.png",
      "step_0000006.png",
      "final.png",
      "progress.gif",
      "progress.png",
      "latent_walk.png",
      "curves.png",
  ):
    assert (samples / name).exists(), name
  assert not (exp_dir / "z10" / "seed0" / "samples" / "latent_walk.png").exists()  # only for 2-D z
  rows = [json.loads(l) for l in open(exp_dir / "z2" / "seed0" / "metrics.jsonl")]
  train_rows = [r for r in rows if "train/d_loss" in r]
  assert [r["step"] for r in train_rows] == [2, 4, 6]
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake"):
    assert all(f"train/{key}" in r for r in train_rows)
  summary = json.loads((exp_dir / "summary.json").read_text())
  assert [a["name"] for a in summary["arms"]] == ["z2", "z10"]
  assert summary["arms"][0]["overrides"] == {"model.latent_dim": 2}
  assert (exp_dir / "curves.png").exists() and (exp_dir / "samples.png").exists()
  assert "D acc. real" in (exp_dir / "report.md").read_text()
  assert os.path.getsize(samples / "progress.gif") > 1000
  # FID against compute: z2's generator is smaller than z10's, so its steps cost fewer FLOPs
  assert "![budget](budget.png)" in (exp_dir / "report.md").read_text()
  assert os.path.getsize(exp_dir / "budget.png") > 1000
  flops = {a["name"]: a["metrics"]["cost_flops"]["per_seed"][0] for a in summary["arms"]}
  assert 0 < flops["z2"] < flops["z10"]


@pytest.mark.slow
def test_early_evaluations_score_fewer_samples_and_the_headline_window_all(tmp_path, figures):
  # 8 steps, an evaluation every 2: 0, 2, 4, 6, 8; the last quarter holds 6 and 8, the headline
  # window (last_k 2), so only those score all 400 samples; 0, 2 and 4 only draw curves.
  cfg = tiny_image(**{
      "train.steps": 8,
      "eval.every": 2,
      "eval.last_k": 2,
      "eval.num_samples": 400,
      "eval.early_samples": 200,
  })
  helpers.train(cfg, tmp_path, exp_name="dcgan")
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  counts = {r["step"]: r["eval/num_samples"] for r in rows if "eval/num_samples" in r}
  assert counts == {0: 200, 2: 200, 4: 200, 6: 400, 8: 400}
  assert os.path.getsize(tmp_path / "samples" / "curves.png") > 0


def test_early_samples_are_checked_where_they_cannot_work():

  with pytest.raises(ConfigError, match="too few"):
    tiny_image(**{"eval.early_samples": 100})
  with pytest.raises(ConfigError, match="scores no generated images"):
    tiny_ae(**{"eval.early_samples": 500, "eval.num_samples": 1000})
  # a DCGAN sweep's early_samples with the image metrics off (eval.num_samples=0) is moot, not wrong
  assert tiny_image(**{"eval.num_samples": 0, "eval.early_samples": 2000}).eval.early_samples
