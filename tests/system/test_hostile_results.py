"""Reliability, round three (issue 29): results that do not belong together are never compared,
values without a run on disk never reported, damaged files answered with a message and exit 2,
and nothing written earlier is lost. Case numbers are the issue's."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from experiments import gaussian1d
from experiments import registry
from experiments import report as report_cli
from experiments.commands import bench
from experiments.commands import diagnose
from experiments.commands import evaluate
from experiments.commands import extractors
from experiments.commands import run
from experiments.commands import sample
from gen_models import checkpoint as ckpt_lib
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import report
from gen_models import rundir
from gen_models import tracking
from gen_models.metrics import features
from tests import helpers

P = sys.executable
FAST = [
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=30",
    "--set",
    "ckpt.every=30",
    "--set",
    "eval.num_samples=2000",
    "--wandb",
    "disabled",
    "--quiet",
]


def _main(out, exp, *extra):
  return run.main([f"--exp={exp}", "--out", str(out), *FAST, *extra])


def _summary(out, exp):
  return json.loads((out / exp / "summary.json").read_text())


def _err(capsys):
  err = capsys.readouterr().err
  assert "error: " in err and "Traceback" not in err, err
  return err


@pytest.fixture(scope="module")
def loss_sweep(tmp_path_factory):
  """A finished 2-seed gaussian1d_loss sweep at 60 steps (evaluations at 0, 30, 60), copied per
  test."""
  out = tmp_path_factory.mktemp("loss_sweep")
  assert _main(out, "gaussian1d_loss", "--seeds", "2", "--set", "train.steps=60") == 0
  return out


@pytest.fixture
def sweep(loss_sweep, tmp_path):
  shutil.copytree(loss_sweep, tmp_path / "out")
  return tmp_path / "out"


def _w1(summary, arm):
  return {a["name"]: a for a in summary["arms"]}[arm]["metrics"]["w1_last3"]["per_seed"]


# --- 1, 3: runs that do not belong together ---------------------------------------------------


@pytest.mark.slow
def test_1_arms_trained_with_other_settings_are_shown_apart_never_compared(tmp_path):
  exp = "gaussian1d_label_smoothing"
  assert _main(tmp_path, exp, "--arms", "none", "--seeds", "3", "--set", "train.steps=30") == 0
  assert _main(tmp_path, exp, "--arms", "one_sided", "--seeds", "3", "--set", "train.steps=60") == 0
  summary = _summary(tmp_path, exp)
  arms = {a["name"]: a for a in summary["arms"]}
  assert arms["none"]["seeds"] == [] and set(arms["none"]["other_configs"]) == {"0", "1", "2"}
  assert "train.steps=30 (this run) vs 60" in arms["none"]["other_configs"]["0"][0]
  assert arms["one_sided"]["seeds"] == [0, 1, 2]
  # the 30-step baseline is compared with nothing
  assert all(c["n"] == 0 for c in summary["comparisons"])
  text = (tmp_path / exp / "report.md").read_text()
  assert "Runs under other settings" in text and "none/seed0: train.steps=30" in text
  # A rebuild by hand keeps the command's settings as the reference.
  assert report_cli.main([str(tmp_path / exp)]) == 0
  assert _summary(tmp_path, exp)["arms"][0]["other_configs"] == arms["none"]["other_configs"]


@pytest.mark.slow
def test_3_a_run_left_at_another_length_is_not_pooled_and_a_run_is_never_shortened(sweep, capsys):
  exp = "gaussian1d_loss"
  # seed 0 only
  assert _main(sweep, exp, "--seeds", "1", "--set", "train.steps=90", "--resume") == 0
  summary = _summary(sweep, exp)
  for arm in summary["arms"]:
    # seed 1 stays at 60: apart
    assert arm["seeds"] == [0] and list(arm["other_configs"]) == ["1"], arm
  assert "90 steps each" in (sweep / exp / "report.md").read_text()
  capsys.readouterr()
  before = (sweep / exp / "ns" / "seed0" / "result.json").read_text()
  assert _main(sweep, exp, "--seeds", "1", "--set", "train.steps=60", "--resume") == 2
  assert "is trained to step 90" in _err(capsys)
  assert (sweep / exp / "ns" / "seed0" / "result.json").read_text() == before


# --- 2: values with no run on disk --------------------------------------------------------------


def test_2_values_without_a_run_directory_never_enter_the_report(sweep, capsys):
  exp_dir = sweep / "gaussian1d_loss"
  summary = json.loads((exp_dir / "summary.json").read_text())
  for arm in summary["arms"]:  # made-up seeds 2-9: minimax far better
    arm["seeds"] += list(range(2, 10))
    for m in arm["metrics"].values():
      m["per_seed"] += [0.0 if arm["name"] == "minimax" else 1.0] * 8
  (exp_dir / "summary.json").write_text(json.dumps(summary))
  assert _main(sweep, "gaussian1d_loss", "--seeds", "2", "--set", "train.steps=60", "--resume") == 0
  after = _summary(sweep, "gaussian1d_loss")
  assert [a["seeds"] for a in after["arms"]] == [[0, 1], [0, 1]]
  assert all(c["n"] == 2 for c in after["comparisons"])
  assert any("no run directory on disk" in p for p in after["problems"])
  # A run whose directory exists but whose result.json is gone keeps its values, marked recovered.
  os.remove(exp_dir / "ns" / "seed1" / "result.json")
  (exp_dir / "ns" / "seed1" / "metrics.jsonl").write_text("")
  again = report.build(str(exp_dir), registry.get("gaussian1d_loss"), [], figures=False)[
      "summary_obj"
  ]
  assert again["arms"][0]["recovered"] == {"1": "summary.json"} and _w1(again, "ns") == _w1(
      after, "ns"
  )
  assert "Recovered values" in (exp_dir / "report.md").read_text()


# --- 5: damaged lines in metrics.jsonl ---------------------------------------------------------


@pytest.mark.slow
def test_5_a_garbled_middle_line_changes_no_value_and_resume_keeps_the_good_rows(sweep):
  exp_dir = sweep / "gaussian1d_loss"
  before = _w1(_summary(sweep, "gaussian1d_loss"), "ns")
  path = exp_dir / "ns" / "seed0" / "metrics.jsonl"
  lines = path.read_text().splitlines()
  middle = next(i for i, l in enumerate(lines) if json.loads(l)["step"] == 20)
  lines[middle] = '{"step": 20, "train/d_lo'  # garbled, before evaluations it must not hide
  path.write_text("\n".join(lines) + "\n")
  assert report_cli.main([str(exp_dir)]) == 0
  rebuilt = _summary(sweep, "gaussian1d_loss")
  assert _w1(rebuilt, "ns") == before
  assert any("damaged line" in p and "ns/seed0" in p for p in rebuilt["problems"])
  # Resuming to a longer run rewinds the log: every good row survives, the damaged one is kept
  # aside.
  assert _main(sweep, "gaussian1d_loss", "--seeds", "1", "--set", "train.steps=90", "--resume") == 0
  rows = tracking.read_jsonl(str(path))
  assert sorted({r["step"] for r in rows if "eval/w1" in r}) == [0, 30, 60, 90]
  # after the damaged line
  assert len([r for r in rows if r["step"] == 50 and "train/d_loss" in r]) == 1
  assert "train/d_lo" in (exp_dir / "ns" / "seed0" / "metrics.jsonl.damaged").read_text()


def test_5_a_torn_last_line_of_a_finished_run_keeps_the_right_value(sweep):
  exp_dir = sweep / "gaussian1d_loss"
  before = _w1(_summary(sweep, "gaussian1d_loss"), "ns")
  path = exp_dir / "ns" / "seed1" / "metrics.jsonl"
  text = path.read_text()
  assert '"eval/w1"' in text.splitlines()[-1]  # the final evaluation is the last row
  path.write_text(text[:-40])  # torn by a kill
  assert report_cli.main([str(exp_dir)]) == 0
  assert _w1(_summary(sweep, "gaussian1d_loss"), "ns") == before


def test_5_read_jsonl_skips_bad_lines_and_says_which():

  with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    f.write('{"step": 1}\n[1, 2]\n{"step": "x"}\n\xff garbage\n{"step": 2}\n{"step": 3, "a"')
  damaged = []
  assert tracking.read_jsonl(f.name, damaged) == [{"step": 1}, {"step": 2}]
  assert [i for i, _ in damaged] == [2, 3, 4, 6]
  os.remove(f.name)


# --- 4: checkpoints and memory pressure --------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 MB"),
        RuntimeError("can't start new thread"),
        OSError(errno.EMFILE, "Too many open files"),
    ],
)
def test_4_a_checkpoint_that_fails_for_lack_of_resources_is_left_in_place(
    sweep, capsys, monkeypatch, error
):
  run_dir = sweep / "gaussian1d_loss" / "ns" / "seed0"
  steps = sorted(os.listdir(run_dir / "checkpoints"))

  def failing(self, step, target):
    raise error

  monkeypatch.setattr(ckpt_lib.Checkpointer, "restore", failing)
  assert _main(sweep, "gaussian1d_loss", "--seeds", "1", "--set", "train.steps=90", "--resume") == 2
  err = _err(capsys)
  assert "left in place" in err and "step 60" in err
  assert (
      sorted(os.listdir(run_dir / "checkpoints")) == steps
      and not (run_dir / "checkpoints_unreadable").exists()
  )
  for main, argv in (
      (evaluate.main, ["--run", str(run_dir)]),
      (sample.main, ["--run", str(run_dir), "--n", "3", "--out", str(sweep / "s.npz")]),
  ):
    assert main(argv) == 2 and "left in place" in _err(capsys)
  assert sorted(os.listdir(run_dir / "checkpoints")) == steps


def test_4_only_decode_and_validation_failures_prove_damage():
  assert ckpt_lib.is_damage(ckpt_lib.CheckpointError("non-finite values"))
  assert ckpt_lib.is_damage(ValueError("Unexpected end of data while decoding"))
  assert not ckpt_lib.is_damage(MemoryError())
  assert not ckpt_lib.is_damage(ValueError("RESOURCE_EXHAUSTED: out of memory"))
  wrapped = ValueError("restore failed")
  wrapped.__cause__ = MemoryError()
  assert not ckpt_lib.is_damage(wrapped)
  assert not ckpt_lib.is_damage(RuntimeError("something else"))


# --- 6, 7: values and options that break or do nothing ----------------------------------------


@pytest.mark.parametrize(
    "exp,key,value",
    [
        ("dcgan", "train.g_ema", "1"),
        ("dcgan", "optim.b1", "1"),
        ("dcgan", "optim.b2", "1"),
        ("dcgan_atienza", "optim.rho", "1"),
        ("gaussian1d", "train.steps", "0"),
        ("gaussian1d", "seed", "-1"),
    ],
)
def test_6_in_range_values_that_break_runs_are_refused(exp, key, value):
  with pytest.raises(config_lib.ConfigError, match=key.replace(".", r"\.")):
    families.validate(config_lib.apply_overrides(registry.get(exp).config, {key: value}))


@pytest.mark.parametrize(
    "exp,key,value,family",
    [
        ("ae_dense", "loss.r1_gamma", "1", "autoencoder"),
        ("ae_dense", "train.g_ema", "0.99", "autoencoder"),
        ("ae_dense", "model.spectral_norm", "true", "autoencoder"),
        ("ae_dense", "loss.generator", "wgan_gp", "autoencoder"),
        ("vae", "loss.n_critic", "3", "vae"),
        ("dcgan", "loss.gp_weight", "5", "GAN"),
        ("dcgan", "loss.beta", "2", "GAN"),
        ("gaussian1d", "loss.recon", "bce", "GAN"),
        ("ae_dense", "data.noise", "fresh", "autoencoder"),
    ],
)
def test_7_an_option_the_family_does_not_use_is_refused(exp, key, value, family):
  with pytest.raises(config_lib.ConfigError, match=f"the {family} family .* does not use"):
    families.validate(config_lib.apply_overrides(registry.get(exp).config, {key: value}))


@pytest.mark.parametrize(
    "exp,sets",
    [
        ("dcgan", {"loss.r1_gamma": "1"}),
        ("dcgan", {"train.g_ema": "0.99"}),
        ("dcgan", {"loss.generator": "wgan_gp", "loss.gp_weight": "5"}),
        ("vae", {"loss.beta": "2"}),
        ("ae_denoising", {"data.noise": "fresh"}),
    ],
)
def test_7_the_same_options_are_accepted_where_they_are_used(exp, sets):
  families.validate(config_lib.apply_overrides(registry.get(exp).config, sets))


@pytest.mark.slow
def test_6_a_run_diverging_before_its_first_checkpoint_says_there_is_none(
    tmp_path, capsys, monkeypatch
):

  exp = registry.Experiment(
      "diverging1",
      "diverges at once",
      gaussian1d.BASE,
      (("bad", {"optim.d_lr": 1e30, "optim.g_lr": 1e30}),),
  )
  everything = registry._all()  # pylint: disable=protected-access
  monkeypatch.setattr(registry, "_all", lambda: {**everything, "diverging1": exp})
  assert (
      run.main([
          "--exp=diverging1",
          "--out",
          str(tmp_path),
          "--set",
          "train.steps=60",
          "--set",
          "train.log_every=10",
          "--set",
          "eval.every=0",
          "--set",
          "ckpt.every=60",
          "--set",
          "eval.num_samples=2000",
          "--wandb",
          "disabled",
          "--quiet",
      ])
      == 0
  )
  out = capsys.readouterr().out
  assert "DIVERGED" in out and "before its first checkpoint" in out and "is kept in" not in out


# --- 8: metrics below their minimum -------------------------------------------------------------


def test_8_a_test_split_below_the_minimum_is_refused_by_run_and_evaluate(tmp_path, capsys):
  helpers.write_idx_dataset(str(tmp_path / "small"), n_train=300, n_test=100)
  assert (
      run.main([
          "--exp=dcgan",
          "--out",
          str(tmp_path / "out"),
          "--set",
          "data.name=fashion_mnist",
          "--set",
          f"data.dir={tmp_path / 'small'}",
          "--set",
          "eval.num_samples=200",
          "--wandb",
          "disabled",
      ])
      == 2
  )
  assert "has 100 images" in _err(capsys) and not (tmp_path / "out" / "dcgan" / "base").exists()
  np.savez(tmp_path / "imgs.npz", images=np.zeros((300, 28, 28), np.uint8))
  assert (
      evaluate.main([
          "--npz",
          str(tmp_path / "imgs.npz"),
          "--data",
          "fashion_mnist",
          "--data-dir",
          str(tmp_path / "small"),
      ])
      == 2
  )
  assert "at least 200" in _err(capsys)


# --- 9: --until-decided with nothing to decide ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--exp=gaussian1d"],
        ["--exp=gaussian1d_label_smoothing", "--arms", "one_sided,two_sided"],
        ["--exp=gaussian1d_loss", "--arms", "ns"],
    ],
)
def test_9_until_decided_without_a_baseline_comparison_is_refused(tmp_path, capsys, argv):
  assert run.main(argv + ["--until-decided", "--out", str(tmp_path), "--wandb", "disabled"]) == 2
  assert "--until-decided" in _err(capsys)
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_9_until_decided_keeps_its_design_and_says_where_it_stopped(sweep, capsys):
  # A design over the 2 seeds on disk (looks 2, 4), then the same sweep asked for other looks.
  args = [
      "--seeds",
      "2",
      "--set",
      "train.steps=60",
      "--until-decided",
      "--max-seeds",
      "4",
      "--resume",
  ]
  assert _main(sweep, "gaussian1d_loss", *args) == 0
  out = capsys.readouterr().out
  assert "look 1 of 2" in out and "stopped at look 2 of 2 (4 seeds per arm)" in out
  assert _main(sweep, "gaussian1d_loss", *args[:-3], "--max-seeds", "6", "--resume") == 2
  assert "another seeds-on-demand design" in _err(capsys)


# --- 10: wandb never stops a run ---------------------------------------------------------------


class _FullDiskRun:
  summary = {}

  def log(self, *a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", "/x/wandb/run.wandb")

  def finish(self, *a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_10_a_failing_wandb_is_reported_once_and_the_run_goes_on(tmp_path, capsys):
  tracker = tracking.Tracker(
      str(tmp_path), "disabled", project="p", group="g", job_type="j", name="n", config={}
  )
  tracker._wandb = _FullDiskRun()  # pylint: disable=protected-access
  tracker.log(1, {"a": 1.0})
  tracker.log(2, {"a": 2.0})
  tracker.summary({"a": 2.0})
  tracker.finish()
  assert capsys.readouterr().err.count("wandb failed") == 1
  assert [r["step"] for r in tracking.read_jsonl(str(tmp_path / "metrics.jsonl"))] == [1, 2]


# --- 11: a planted floors cache ---------------------------------------------------------------


@pytest.mark.slow
def test_11_a_planted_or_edited_floors_file_is_recomputed(tmp_path, monkeypatch):

  monkeypatch.setenv("GEN_MODELS_CACHE", str(tmp_path / "cache"))
  monkeypatch.setattr(features, "_ENSEMBLES", {})
  data = data_lib.synthetic(300, 300)
  ens = features.get("fashion_mnist", data, lambda s: None)  # the shipped networks, nothing trained
  true = ens._floor(0, 200)  # pylint: disable=protected-access
  (floor_file,) = list((tmp_path / "cache" / "classifier" / "floors").iterdir())
  saved = json.loads(floor_file.read_text())
  for planted in (
      {**saved["values"], "fid": 0.0001},  # an old-style file: values only
      # values edited, hash kept
      {**saved, "values": {**saved["values"], "fid": 0.0001}},
  ):
    floor_file.write_text(json.dumps(planted))
    fresh = features.get("fashion_mnist", data, lambda s: None)
    monkeypatch.setattr(fresh, "_floors", {})
    # pylint: disable-next=protected-access
    assert fresh._floor(0, 200)["fid"] == pytest.approx(true["fid"])
  # The key names the metrics' code: a changed fid.py or device.py never reads an old file.
  for i in range(2):
    changed = list(features.METRICS_SOURCES)
    changed[i] = str(tmp_path / f"other_{i}.py")
    (tmp_path / f"other_{i}.py").write_text("# another version of the metrics\n")
    monkeypatch.setattr(features, "METRICS_SOURCES", changed)
    # pylint: disable-next=protected-access
    assert features._floor_ident(ens.members[0], 200, data) != saved["ident"]


# --- 12, 13: damaged config.json and summary.json ------------------------------------------------


@pytest.mark.parametrize("content", ['{"seed": 0, "data": {', "[1, 2, 3]", "\xff\xfe"])
def test_12_a_damaged_config_json_gets_a_message_from_every_tool(sweep, capsys, content):
  run_dir = sweep / "gaussian1d_loss" / "ns" / "seed0"
  (run_dir / "config.json").write_bytes(content.encode("latin-1"))
  for main, argv in (
      (evaluate.main, ["--run", str(run_dir)]),
      (diagnose.main, ["--run", str(run_dir)]),
      (sample.main, ["--run", str(run_dir), "--out", str(sweep / "s.npz")]),
  ):
    assert main(argv) == 2, main
    assert "config" in _err(capsys)
  assert _main(sweep, "gaussian1d_loss", "--seeds", "2", "--set", "train.steps=60", "--resume") == 2
  err = _err(capsys)
  assert "seed0/config.json is damaged" in err and "restore it" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    "content", ["[1, 2]", "7", '"text"', '{"arms": 3, "command": 5}', '{"arms": [1, {"name": 2}]}']
)
def test_13_a_summary_json_of_the_wrong_shape_is_rebuilt(sweep, content):
  exp_dir = sweep / "gaussian1d_loss"
  before = _w1(_summary(sweep, "gaussian1d_loss"), "ns")
  (exp_dir / "summary.json").write_text(content)
  assert report_cli.main([str(exp_dir)]) == 0
  assert _w1(_summary(sweep, "gaussian1d_loss"), "ns") == before
  (exp_dir / "summary.json").write_text(content)
  assert _main(sweep, "gaussian1d_loss", "--seeds", "2", "--set", "train.steps=60", "--resume") == 0
  assert _w1(_summary(sweep, "gaussian1d_loss"), "ns") == before


# --- 14, 15: diagnose and evaluate inputs --------------------------------------------------------


@pytest.mark.parametrize("n", ["0", "-1", "5", "199"])
def test_14_diagnose_states_its_minimum(tmp_path, capsys, n):
  assert diagnose.main(["--run", str(tmp_path), "--n", n]) == 2
  assert "at least 200" in _err(capsys)


def test_15_evaluate_refuses_an_npy_and_a_damaged_npz(tmp_path, capsys):
  images = np.zeros((300, 28, 28), np.uint8)
  np.save(tmp_path / "plain.npy", images)
  np.savez(tmp_path / "good.npz", images=images)
  raw = (tmp_path / "good.npz").read_bytes()
  (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
  flipped = bytearray(raw)
  flipped[len(raw) // 3] ^= 0xFF  # bad CRC inside the array data
  (tmp_path / "crc.npz").write_bytes(bytes(flipped))
  for name, fragment in (
      ("plain.npy", "single .npy array"),
      ("cut.npz", "cannot be read"),
      ("crc.npz", "cannot be read"),
  ):
    assert evaluate.main(["--npz", str(tmp_path / name), "--data", "fashion_mnist"]) == 2, name
    assert fragment in _err(capsys)


# --- 16, 17: unwritable places and a full disk ------------------------------------------------


def _immutable(path):
  """chattr +i (root cannot write there either), or skip where the file system has no such flag."""
  if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
    pytest.skip("chattr +i is not available here")
  return path


def test_16_read_only_places_are_refused_before_the_work(sweep, capsys, tmp_path):
  run_dir = sweep / "gaussian1d_loss" / "ns" / "seed1"
  ro_out = tmp_path / "ro_out"
  ro_out.mkdir()
  _immutable(run_dir)
  _immutable(ro_out)
  try:
    assert (
        _main(sweep, "gaussian1d_loss", "--seeds", "2", "--set", "train.steps=90", "--resume") == 2
    )
    assert "run directory of ns/seed1" in _err(capsys)
    assert evaluate.main(["--run", str(run_dir)]) == 2
    assert "cannot be used" in _err(capsys)
    good = sweep / "gaussian1d_loss" / "ns" / "seed0"
    assert sample.main(["--run", str(good), "--out", str(ro_out / "s.npz")]) == 2
    assert "directory of --out" in _err(capsys)
  finally:
    subprocess.run(["chattr", "-i", str(run_dir), str(ro_out)], check=True)
  assert json.loads((run_dir / "result.json").read_text())["step"] == 60  # untouched


@pytest.mark.slow
def test_17_a_full_disk_during_a_checkpoint_names_the_path_and_resume_finishes(
    sweep, capsys, monkeypatch
):
  real = ckpt_lib.Checkpointer.save

  def full(self, step, state, meta):
    if step == 90:
      raise OSError(errno.ENOSPC, "No space left on device", os.path.join(self.directory, "90"))
    return real(self, step, state, meta)

  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", full)
  extra = ("--seeds", "1", "--set", "train.steps=90", "--resume")
  assert _main(sweep, "gaussian1d_loss", *extra) == 2
  err = _err(capsys)
  assert (
      "no space left on the device while writing" in err
      and "checkpoints/90" in err
      and "--resume" in err
  )
  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", real)
  assert _main(sweep, "gaussian1d_loss", *extra) == 0
  assert (
      json.loads((sweep / "gaussian1d_loss" / "ns" / "seed0" / "result.json").read_text())["step"]
      == 90
  )


def test_17_a_full_disk_while_writing_the_report(sweep, capsys, monkeypatch):
  def full(path, text):
    raise OSError(errno.ENOSPC, "No space left on device", path)

  monkeypatch.setattr(rundir, "write_atomic", full)
  assert report_cli.main([str(sweep / "gaussian1d_loss")]) == 2
  assert "summary.json" in _err(capsys)


# --- 18: a damaged manifest of the shipped extractors ---------------------------------------------


@pytest.mark.parametrize(
    "damage,fragment",
    [
        ("garbled", "cannot be read"),
        ("escape", "outside"),
        ("missing", "missing"),
        ("shape", "malformed"),
    ],
)
def test_18_a_damaged_manifest_says_reinstall_and_reads_nothing_outside(
    tmp_path, monkeypatch, damage, fragment
):
  weights = tmp_path / "weights"
  shutil.copytree(features.WEIGHTS_DIR, weights)
  manifest = json.loads((weights / "manifest.json").read_text())
  member = manifest["fashion_mnist"]["members"][0]
  if damage == "garbled":
    (weights / "manifest.json").write_text('{"fashion_mnist": {"reci')
  else:
    if damage == "escape":
      member["file"] = "../../../../../../etc/passwd"
    elif damage == "missing":
      os.remove(weights / member["file"])
    else:
      member["seed"] = [1]
    (weights / "manifest.json").write_text(json.dumps(manifest))
  monkeypatch.setattr(features, "WEIGHTS_DIR", str(weights))
  monkeypatch.setattr(features, "MANIFEST", str(weights / "manifest.json"))
  monkeypatch.setattr(features, "_load_checked", lambda *a: pytest.fail("nothing may be read"))
  with pytest.raises(features.ExtractorError) as e:
    features._shipped("fashion_mnist")  # pylint: disable=protected-access
  assert fragment in str(e.value) and "Reinstall" in str(e.value)


# --- 19: the environment -----------------------------------------------------------------------


def _proc(args, env_extra=None, drop=()):
  env = {k: v for k, v in os.environ.items() if k not in drop}
  env.update(WANDB_MODE="disabled", **(env_extra or {}))
  return subprocess.run(
      [P, "-m", *args], cwd=helpers.ROOT, env=env, capture_output=True, text=True, timeout=300
  )


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [
        {"JAX_PLATFORMS": "cuda"},
        {"JAX_PLATFORMS": "rocm"},
        {"XLA_FLAGS": "--no_such_xla_flag=1"},
    ],
)
def test_19_a_backend_this_machine_lacks_is_refused_before_anything_is_written(tmp_path, env):
  # In a process of its own: JAX reads these once, when its backend starts.
  p = _proc(
      [
          "experiments.run",
          "--exp=gaussian1d",
          "--out",
          str(tmp_path / "out"),
          "--wandb",
          "disabled",
      ],
      env,
  )
  assert p.returncode == 2, p.stderr[-2000:]
  assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr[-2000:]
  assert any(k in p.stderr for k in env)  # the message names the variable
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "env",
    [
        {"GEN_MODELS_DISTRIBUTED": "yes"},
        {"GEN_MODELS_DISTRIBUTED": "1", "GEN_MODELS_COORDINATOR": "localhost:1"},
        {
            "GEN_MODELS_DISTRIBUTED": "1",
            "GEN_MODELS_COORDINATOR": "nohostport",
            "GEN_MODELS_NUM_PROCESSES": "1",
            "GEN_MODELS_PROCESS_ID": "0",
        },
        {"GEN_MODELS_CACHE": ""},
        {"GEN_MODELS_TUNING": "maybe"},
    ],
)
def test_19_a_bad_setting_variable_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch, env
):
  # The project's own variables are read by run's first check: in this process.
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  code = run.main(["--exp=gaussian1d", "--out", str(tmp_path / "out"), "--wandb", "disabled"])
  err = capsys.readouterr().err
  assert code == 2, err[-2000:]
  assert err.startswith("error: ") and "Traceback" not in err, err[-2000:]
  assert any(k in err for k in env)  # the message names the variable
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_19_a_one_process_distributed_1d_gan_runs(tmp_path):

  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = {
      "GEN_MODELS_DISTRIBUTED": "1",
      "GEN_MODELS_COORDINATOR": f"localhost:{port}",
      "GEN_MODELS_NUM_PROCESSES": "1",
      "GEN_MODELS_PROCESS_ID": "0",
  }
  p = _proc(
      [
          "experiments.run",
          "--exp=gaussian1d",
          "--out",
          str(tmp_path),
          "--set",
          "train.steps=60",
          *FAST,
      ],
      env,
  )
  assert p.returncode == 0, p.stderr[-2000:]
  assert (tmp_path / "gaussian1d" / "summary.json").exists()


@pytest.mark.parametrize(
    "command,args,fragment",
    [
        (extractors, ["--show", "bogus"], "invalid choice"),
        (bench, ["--batch", "0"], "batch sizes >= 1"),
        (bench, ["--batch", "abc"], "batch sizes"),
    ],
)
def test_19_bad_arguments_of_the_other_tools(capsys, command, args, fragment):
  try:
    code = command.main(args)
  except SystemExit as e:  # argparse's own refusals
    code = e.code
  err = capsys.readouterr().err
  assert code == 2 and fragment in err and "Traceback" not in err, err[-2000:]


def test_19_an_out_too_long_for_the_files_below_it_is_refused(tmp_path, capsys):
  out = tmp_path
  while len(str(out)) < 3900:
    out = out / ("d" * 200)
  assert _main(out, "gaussian1d", "--set", "train.steps=60") == 2
  assert "path limit" in _err(capsys)
  assert not os.path.exists(str(tmp_path / ("d" * 200)))


@pytest.mark.slow
def test_plan_needs_a_pilot_and_then_says_what_the_design_can_find(sweep, tmp_path, capsys):
  args = ["--seeds", "3", "--max-seeds", "9", "--plan"]
  assert _main(tmp_path / "empty", "gaussian1d_loss", *args) == 2
  assert "--plan needs a pilot" in _err(capsys)
  assert _main(sweep, "gaussian1d_loss", "--seeds", "3", "--set", "train.steps=60", "--resume") == 0
  capsys.readouterr()
  assert _main(sweep, "gaussian1d_loss", "--set", "train.steps=60", *args) == 0
  out = capsys.readouterr().out
  assert "4 looks at 3, 5, 7, 9 seeds per arm" in out
  assert "minimax vs ns (3 pilot seeds" in out and "seeds per arm" in out
  assert "over what the pilot supports (80% intervals:" in out  # a range, not one number
  assert not (sweep / "gaussian1d_loss" / "ns" / "seed3").exists()  # --plan trains nothing
