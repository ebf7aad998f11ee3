"""Compute on every evaluation row: G and D updates, real and generated images, FLOPs from XLA's
cost analysis, cumulative training seconds; the same counts after a resume."""

import json

from experiments import registry
from experiments import runner
from gen_models import families
from gen_models import loop
from gen_models import metric_names as names
from tests import helpers
from tests.conftest import tiny_1d, tiny_image


def _eval_rows(run_dir):
  rows = [json.loads(l) for l in open(run_dir / "metrics.jsonl")]
  return [r for r in rows if names.is_eval_row(r)]


def _flops_per_step(cfg):
  import jax  # pylint: disable=g-import-not-at-top
  from gen_models import data as data_lib  # pylint: disable=g-import-not-at-top

  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  run = loop.Run(task, cfg, jax.device_put(dict(data["train"])), jax.random.key(0), tracker=None)
  return loop.step_flops(run, task.init(jax.random.key(1)), 0)


def test_every_image_gan_evaluation_row_carries_its_cumulative_cost(tmp_path):
  # WGAN-GP: 5 critic updates per G update, each on its own 8 real and 8 generated images.
  cfg = tiny_image(**{"loss.generator": "wgan_gp", "train.steps": 4, "eval.every": 2})
  helpers.train(cfg, tmp_path, exp_name="dcgan")
  rows = _eval_rows(tmp_path)
  assert [r["step"] for r in rows] == [0, 2, 4]
  per_step = rows[-1]["cost/flops"] / 4
  assert per_step > 0
  for r in rows:
    s = r["step"]
    assert r["cost/g_updates"] == s and r["cost/d_updates"] == 5 * s
    assert r["cost/real_images"] == r["cost/fake_images"] == 5 * 8 * s
    assert r["cost/flops"] == per_step * s
  assert rows[0]["cost/train_s"] == 0 and rows[-1]["cost/train_s"] > 0
  result = json.loads((tmp_path / "result.json").read_text())
  assert result["cost"]["d_updates"] == 20 and result["metrics"]["cost_flops"] == 4 * per_step


def test_step_flops_bracket_a_hand_count_of_the_1d_gans_matmuls():
  # The seed's 1-D GAN: G 16 -> 32 -> 1, D 1 -> 32 -> 1. Per step at batch B, at least: G forward
  # on B latents, D forward on B real + B generated, and G's backward (twice its forward), at 2
  # FLOPs per multiply-add; XLA's count adds D's backward, the losses, Adam and sampling.
  for b in (256, 512):
    cfg = tiny_1d(**{"train.batch_size": b})
    g, d = 16 * 32 + 32, 32 + 32
    lower = 2 * b * (g + 2 * d + 2 * g)
    flops = _flops_per_step(cfg)
    assert lower <= flops <= 12 * lower, (b, flops, lower)
  assert (
      1.8
      <= _flops_per_step(tiny_1d(**{"train.batch_size": 512}))
      / _flops_per_step(tiny_1d(**{"train.batch_size": 256}))
      <= 2.2
  )  # linear in the batch


def test_a_resumed_run_logs_the_same_counts_and_keeps_counting_its_seconds(tmp_path):
  exp = registry.get("gaussian1d")
  one = {"train.scan_chunk": 1}  # a dispatch per step: the first process's seconds are not ~0
  full = tiny_1d(**one)
  runner.run_one(exp, "base", full, str(tmp_path / "full"), "disabled", resume=False, quiet=True)
  runner.run_one(
      exp,
      "base",
      tiny_1d(**one, **{"train.steps": 30}),
      str(tmp_path / "split"),
      "disabled",
      resume=False,
      quiet=True,
  )
  first = _eval_rows(tmp_path / "split")[-1]["cost/train_s"]
  runner.run_one(exp, "base", full, str(tmp_path / "split"), "disabled", resume=True, quiet=True)
  whole, split = _eval_rows(tmp_path / "full"), _eval_rows(tmp_path / "split")
  assert [names.without_timings(r) for r in whole] == [names.without_timings(r) for r in split]
  assert split[-1]["cost/g_updates"] == 60
  second = json.loads((tmp_path / "split" / "result.json").read_text())["train_s"]
  assert first > 0 and second > 0
  # the first process's seconds carried over in the checkpoint, the second's added (the row at
  # step 30 was written a moment after that checkpoint)
  assert abs(split[-1]["cost/train_s"] - (first + second)) < 0.002 < first
