"""Compute on every evaluation row: G and D updates, real and generated images, FLOPs from XLA's
cost analysis, cumulative training seconds; the same counts after a resume."""

import json

import jax
import pytest

from experiments import budget
from experiments import registry
from experiments.commands import run
from gen_models import checkpoint as ckpt_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from gen_models import metric_names as names
from gen_models import rundir
from gen_models import runs
from tests import helpers
from tests.helpers import tiny_1d, tiny_image


def _eval_rows(run_dir):
  rows = [json.loads(l) for l in open(run_dir / "metrics.jsonl")]
  return [r for r in rows if names.is_eval_row(r)]


def _flops_per_step(cfg):

  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  run = loop.Run(task, cfg, jax.device_put(dict(data["train"])), jax.random.key(0), tracker=None)
  return loop.step_flops(run, task.init(jax.random.key(1)), 0)


@pytest.mark.slow
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


@pytest.mark.slow
def test_step_flops_are_counted_once_per_program_and_never_shared_across_programs(monkeypatch):
  # Arms that differ in traced values only (targets, seed) share one count, lowered once; a
  # setting that changes the program but no parameter shape (the layers' implementation) does not.
  lowered = []
  real = loop._lowered_flops  # pylint: disable=protected-access
  monkeypatch.setattr(loop, "_lowered_flops", lambda *a: lowered.append(1) or real(*a))
  monkeypatch.setattr(loop, "_FLOPS", {})
  fast = _flops_per_step(tiny_image())
  assert _flops_per_step(tiny_image(**{"loss.real_target": 1.0, "seed": 3})) == fast
  assert len(lowered) == 1
  reference = _flops_per_step(tiny_image(**{"model.impl": "reference"}))
  assert len(lowered) == 2 and reference != fast


def test_a_one_step_chunk_counts_the_step_in_the_program_it_trains(tmp_path, monkeypatch):
  # One run on one device, a step per dispatch: the count comes from lowering the chunk program
  # that the training call then reuses (the step is traced once), and equals the step's own count.
  traces, chunk = [], loop._chunk  # pylint: disable=protected-access
  monkeypatch.setattr(loop, "_chunk", lambda *a, **k: traces.append(1) or chunk(*a, **k))
  monkeypatch.setattr(loop, "_FLOPS", {})
  loop.run_chunk.clear_cache()
  cfg = tiny_1d(**{"train.scan_chunk": 1})
  helpers.train(cfg, tmp_path)
  assert len(traces) == 1
  counted = json.loads((tmp_path / "result.json").read_text())["metrics"]["cost_flops"] / 60
  monkeypatch.setattr(loop, "_FLOPS", {})
  assert counted == _flops_per_step(cfg)  # the step alone, lowered apart


@pytest.mark.slow
def test_a_resumed_run_logs_the_same_counts_and_keeps_counting_its_seconds(tmp_path):
  exp = registry.get("gaussian1d")
  one = {"train.scan_chunk": 1}  # a dispatch per step: the first process's seconds are not ~0
  full = tiny_1d(**one)
  helpers.run_one(exp, "base", full, str(tmp_path / "full"), "disabled", resume=False, quiet=True)
  helpers.run_one(
      exp,
      "base",
      tiny_1d(**one, **{"train.steps": 30}),
      str(tmp_path / "split"),
      "disabled",
      resume=False,
      quiet=True,
  )
  first = _eval_rows(tmp_path / "split")[-1]["cost/train_s"]
  carried = _checkpoint_meta(str(tmp_path / "split"))["train_s"]
  helpers.run_one(exp, "base", full, str(tmp_path / "split"), "disabled", resume=True, quiet=True)
  whole, split = _eval_rows(tmp_path / "full"), _eval_rows(tmp_path / "split")
  assert [helpers.without_timings(r) for r in whole] == [helpers.without_timings(r) for r in split]
  assert split[-1]["cost/g_updates"] == 60
  second = json.loads((tmp_path / "split" / "result.json").read_text())["train_s"]
  assert first > 0 and second > 0
  # the first process's seconds carried over in the checkpoint, the second's added (exactly: no
  # clock is compared with another, a busy machine cannot move this)
  assert split[-1]["cost/train_s"] == pytest.approx(carried + second, rel=1e-12)
  assert 0 < carried <= first  # the row at step 30 was written a moment after that checkpoint


def _checkpoint_meta(run_dir):
  """The latest checkpoint's metadata (step, times), read through the project's checkpointer."""
  _, state, _, _, step = runs.load_run(run_dir)
  checkpointer = ckpt_lib.Checkpointer(rundir.RunPaths(run_dir).checkpoints)
  try:
    return checkpointer.restore(step, state)[1]
  finally:
    checkpointer.close()


@pytest.mark.slow
def test_arms_matched_on_d_updates_train_equal_d_updates_and_the_report_says_so(tmp_path):
  # WGAN-GP takes 5 D updates per step, ns 1: on equal D updates it trains a fifth of the steps,
  # its 2 evaluation intervals kept, so both end at 20 D updates and evaluate at 0, 1/2 and 1 of it.

  argv = ["--exp=dcgan_equal_flops", "--arms", "ns,wgan_gp", "--seeds", "1"]
  for k, v in {
      "data.name": "synthetic",
      "data.num_train": 256,
      "train.batch_size": 8,
      "train.steps": 20,
      "train.log_every": 1,
      "train.budget_unit": "d_updates",
      "eval.every": 10,
      "eval.num_samples": 200,
      "eval.early_samples": 0,
      "ckpt.every": 10,
  }.items():
    argv += ["--set", f"{k}={v}"]
  argv += ["--out", str(tmp_path), "--wandb", "disabled", "--quiet"]
  assert run.main(argv) == 0
  exp_dir = tmp_path / "dcgan_equal_flops"
  steps = {}
  for arm in ("ns", "wgan_gp"):
    rows = _eval_rows(exp_dir / arm / "seed0")
    steps[arm] = [r["step"] for r in rows]
    assert [r["cost/d_updates"] for r in rows] == [0, 10, 20]
  assert steps == {"ns": [0, 10, 20], "wgan_gp": [0, 2, 4]}
  summary = json.loads((exp_dir / "summary.json").read_text())
  per_arm = {a["name"]: a["metrics"]["cost_d_updates"]["per_seed"] for a in summary["arms"]}
  assert per_arm == {"ns": [20], "wgan_gp": [20]}
  assert "compared at equal d_updates" in (exp_dir / "report.md").read_text()


def test_flops_matching_gives_the_costlier_arm_fewer_steps_at_the_same_budget():

  exp = registry.get("dcgan_equal_flops")
  on = {"train.budget_unit": "flops", "train.steps": 40, "eval.every": 10, "ckpt.every": 10}
  arm_cfgs = [
      (a, {}, tiny_image(**on, **{"loss.generator": a}), [0]) for a in ("ns", "wgan_gp", "minimax")
  ]
  matched, info = budget.match(exp, arm_cfgs)
  cost = {arm: c for arm, c, _, _ in info}
  steps = {arm: cfg.train.steps for arm, _, cfg, _ in matched}
  assert steps["ns"] == 40 and steps["minimax"] == 40  # the same program size per step
  assert cost["wgan_gp"] > 3 * cost["ns"]  # 5 critic updates, a double-backward penalty
  every = {arm: cfg.eval.every for arm, _, cfg, _ in matched}
  assert all(steps[a] == 4 * every[a] for a in steps)  # 4 intervals in every arm
  # within half an evaluation interval of the budget, which is what rounding to intervals allows
  assert abs(cost["wgan_gp"] * steps["wgan_gp"] - 40 * cost["ns"]) <= 0.5 * 4 * cost["wgan_gp"]
