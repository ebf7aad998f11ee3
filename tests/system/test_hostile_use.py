"""Hostile but realistic use (issue 13): every case ends with a clear message and the right exit
code, and nothing written earlier is lost."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import report
from experiments.commands import evaluate
from experiments.commands import run
from experiments.commands import sample
from gen_models.families import gan1d
from tests import helpers

GAN, ROOT, _cmd, _env = helpers.GAN, helpers.ROOT, helpers.run_cmd, helpers.env

P = sys.executable
TINY = [
    "--exp=gaussian1d",
    "--seeds",
    "1",
    "--set",
    "train.steps=60",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=30",
    "--set",
    "ckpt.every=30",
    "--set",
    "eval.num_samples=2000",
    "--quiet",
]


def _proc(args, env=None, timeout=300):
  return subprocess.run(
      [P, "-m", *args], cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout
  )


def _err(capsys):
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "Traceback" not in err, err
  return err


# --- output paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "under_file", "proc", "sys"])
def test_unusable_out_is_refused_before_anything_runs(tmp_path, capsys, where):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  out = {
      "file": a_file,
      "under_file": a_file / "sub",
      "proc": "/proc/gen_models_out",
      "sys": "/sys/gen_models_out",
  }[where]
  assert run.main(TINY + ["--out", str(out), "--wandb", "disabled"]) == 2
  assert "The output directory (--out)" in _err(capsys)
  assert a_file.read_text() == "x"


def test_unusable_cache_is_refused_before_training(tmp_path, capsys, monkeypatch):
  cache = tmp_path / "cache_is_a_file"
  cache.write_text("x")
  monkeypatch.setenv("GEN_MODELS_CACHE", str(cache))
  argv = [
      "--exp=dcgan",
      "--set",
      "data.name=synthetic",
      "--set",
      "train.steps=4",
      "--set",
      "train.log_every=2",
      "--set",
      "ckpt.every=2",
      "--set",
      "eval.every=0",
      "--set",
      "eval.num_samples=200",
      "--seeds",
      "1",
      "--wandb",
      "disabled",
      "--out",
      str(tmp_path / "out"),
      "--quiet",
  ]
  assert run.main(argv) == 2
  assert "classifier cache" in _err(capsys)
  assert not (tmp_path / "out" / "dcgan" / "base").exists()  # nothing trained


@pytest.mark.slow
def test_a_failing_final_evaluation_keeps_the_trained_checkpoint(tmp_path, capsys, monkeypatch):

  real = gan1d.eval_fn

  def failing(cfg, x, key):
    inner = real(cfg, x, key)
    return (
        lambda state, step: (_ for _ in ()).throw(OSError("disk full"))
        if step == 60
        else inner(state, step)
    )

  monkeypatch.setattr(gan1d, "eval_fn", failing)
  argv = TINY + ["--out", str(tmp_path), "--wandb", "disabled"]
  assert run.main(argv) == 1
  err = capsys.readouterr().err
  assert "disk full" in err and "--resume" in err
  run_dir = tmp_path / "gaussian1d" / "base" / "seed0"
  assert "60" in os.listdir(run_dir / "checkpoints")  # the training is on disk
  monkeypatch.setattr(gan1d, "eval_fn", real)
  assert run.main(argv + ["--resume"]) == 0
  result = json.loads((run_dir / "result.json").read_text())
  assert result["status"] == "finished" and result["resumed_from"] == 60
  rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "eval/w1" in r] == [0, 30, 60]  # evaluated once at 60


# --- one writer per experiment directory -----------------------------------------------------


@pytest.mark.slow
def test_another_command_on_the_same_out_is_refused_and_the_first_loses_nothing(tmp_path):
  args = GAN[:1] + [
      "--set",
      "train.steps=3000",
      "--set",
      "train.scan_chunk=1",
      "--set",
      "train.log_every=50",
      "--set",
      "eval.every=0",
      "--set",
      "eval.num_samples=2000",
      "--set",
      "ckpt.every=100",
  ]
  first = subprocess.Popen(
      _cmd(args, tmp_path),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  lock = tmp_path / "gaussian1d" / ".lock"
  deadline = time.time() + 120
  while not (lock.exists() and lock.read_text().strip()):
    assert first.poll() is None and time.time() < deadline
    time.sleep(0.02)
  # Another command (other settings) is refused; the same command would join as a worker
  # (tests/test_workers.py).
  second = subprocess.run(
      _cmd(args + ["--set", "optim.d_lr=0.002"], tmp_path),
      cwd=ROOT,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert second.returncode == 2 and "started with other settings" in second.stderr, second.stderr[
      -2000:
  ]
  assert "Traceback" not in second.stderr
  assert first.wait(timeout=300) == 0, first.stdout.read()[-2000:]
  rows = (tmp_path / "gaussian1d" / "base" / "seed0" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == 3000 // 50 + 1  # every log row plus the final evaluation
  # The lock died with its holder: the directory is usable again.
  assert (
      run.main(
          args
          + ["--seeds", "1", "--out", str(tmp_path), "--wandb", "disabled", "--resume", "--quiet"]
      )
      == 0
  )


# --- signals ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_after_training_still_writes_the_summary_and_report(tmp_path):
  args = GAN[:1] + [
      "--set",
      "train.steps=300",
      "--set",
      "train.log_every=10",
      "--set",
      "eval.every=0",
      "--set",
      "eval.num_samples=2000",
      "--set",
      "ckpt.every=100",
  ]
  p = subprocess.Popen(
      _cmd(args, tmp_path),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  for line in p.stdout:
    if "[1/1] base/seed0" in line:  # training and the run's files are done; the report is next
      p.send_signal(signal.SIGTERM)
      break
  out = p.stdout.read()
  assert p.wait(timeout=120) == 0, out
  exp_dir = tmp_path / "gaussian1d"
  assert "w1" in json.loads((exp_dir / "summary.json").read_text())["arms"][0]["metrics"]
  assert (exp_dir / "report.md").exists()


@pytest.mark.slow
def test_a_second_sigint_aborts_at_once(tmp_path):
  # Log points 20,000 steps apart: the first SIGINT alone would wait for the next one.
  args = GAN[:1] + [
      "--set",
      "train.steps=400000",
      "--set",
      "train.scan_chunk=1",
      "--set",
      "train.log_every=20000",
      "--set",
      "eval.every=0",
      "--set",
      "eval.num_samples=2000",
      "--set",
      "ckpt.every=20000",
  ]
  p = subprocess.Popen(
      _cmd(args, tmp_path),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  ckpt = tmp_path / "gaussian1d" / "base" / "seed0" / "checkpoints"
  deadline = time.time() + 300
  while not (ckpt.is_dir() and [d for d in os.listdir(ckpt) if d.isdigit()]):
    assert p.poll() is None and time.time() < deadline, p.stdout.read()
    time.sleep(0.05)
  before = sorted(os.listdir(ckpt))
  p.send_signal(signal.SIGINT)
  time.sleep(0.1)
  t = time.time()
  p.send_signal(signal.SIGINT)
  assert p.wait(timeout=30) == 130
  assert time.time() - t < 5
  assert "aborting now" in p.stdout.read()
  assert sorted(d for d in os.listdir(ckpt) if d.isdigit()) == [d for d in before if d.isdigit()]


# --- wandb never stops a run -----------------------------------------------------------------


@pytest.mark.slow
def test_a_garbage_wandb_mode_in_the_environment_does_not_break_offline(tmp_path):
  env = dict(_env(), WANDB_MODE="garbage")
  p = _proc(["experiments.run", *TINY, "--wandb", "offline", "--out", str(tmp_path)], env=env)
  assert p.returncode == 0, p.stderr[-2000:]
  assert list((tmp_path / "gaussian1d" / "base" / "seed0" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_online_with_an_unreachable_server_falls_back_to_offline_in_seconds(tmp_path):
  env = dict(_env(), WANDB_API_KEY="0" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
  env.pop("WANDB_MODE")
  t = time.time()
  p = _proc(["experiments.run", *TINY, "--wandb", "online", "--out", str(tmp_path)], env=env)
  assert p.returncode == 0, p.stderr[-2000:]
  assert "unreachable; logging this run offline" in p.stderr
  assert time.time() - t < 60
  assert list((tmp_path / "gaussian1d" / "base" / "seed0" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_no_home_gives_no_wandb_log_lines(tmp_path):
  env = {k: v for k, v in _env().items() if k not in ("HOME", "XDG_CACHE_HOME", "WANDB_MODE")}
  env["GEN_MODELS_CACHE"] = str(tmp_path / "cache")
  p = _proc(["experiments.run", *TINY, "--wandb", "offline", "--out", str(tmp_path)], env=env)
  assert p.returncode == 0, p.stderr[-2000:]
  assert "ERROR" not in p.stderr and "INFO" not in p.stderr, p.stderr[-2000:]


# --- report, evaluate, sample ----------------------------------------------------------------


def test_report_of_a_missing_or_a_run_directory_says_so(tmp_path, capsys):
  assert report.main([str(tmp_path / "nope")]) == 2
  assert "does not exist" in _err(capsys)
  assert run.main(TINY + ["--out", str(tmp_path), "--wandb", "disabled"]) == 0
  capsys.readouterr()
  assert report.main([str(tmp_path / "gaussian1d" / "base" / "seed0")]) == 2
  err = _err(capsys)
  assert "single run's directory" in err and str(tmp_path / "gaussian1d") in err


@pytest.mark.slow
def test_report_keeps_metrics_of_a_missing_result_and_says_so(tmp_path, capsys):
  assert run.main(TINY + ["--seeds", "2", "--out", str(tmp_path), "--wandb", "disabled"]) == 0
  exp_dir = tmp_path / "gaussian1d"
  before = json.loads((exp_dir / "summary.json").read_text())["arms"][0]["metrics"]
  os.remove(exp_dir / "base" / "seed0" / "result.json")  # as if killed before writing it
  os.remove(exp_dir / "base" / "seed1" / "result.json")
  (exp_dir / "base" / "seed1" / "metrics.jsonl").write_text("")  # and nothing to rebuild it from
  capsys.readouterr()
  # written, with the problems listed (exit 1 is for internal errors)
  assert report.main([str(exp_dir)]) == 0
  err = capsys.readouterr().err
  assert "seed0: result.json" not in err  # a missing one is the kill case: rebuilt, marked
  assert (
      "seed1: no readable result.json; its metrics are kept from the previous summary.json" in err
  )
  after = json.loads((exp_dir / "summary.json").read_text())["arms"][0]["metrics"]
  for key in ("w1", "ks", "kl", "d_loss"):
    assert after[key]["per_seed"] == before[key]["per_seed"], key
  assert "Problems reading the runs" in (exp_dir / "report.md").read_text()


@pytest.mark.slow
def test_evaluate_n0_and_sampling_an_autoencoder_exit_2(tmp_path, capsys):
  # in-process: the exit code and the message are the commands' logic (every command's entry shim
  # is the same entry.main call; `run`'s and `sample`'s run as processes in tests/system/)
  assert run.main(TINY + ["--out", str(tmp_path), "--wandb", "disabled"]) == 0
  capsys.readouterr()
  assert evaluate.main(["--run", str(tmp_path / "gaussian1d" / "base" / "seed0"), "--n", "0"]) == 2
  assert "at least 1000" in _err(capsys)
  ae = [
      "--exp=ae_dense",
      "--set",
      "data.name=synthetic",
      "--set",
      "data.num_train=256",
      "--set",
      "train.batch_size=16",
      "--set",
      "train.steps=4",
      "--set",
      "train.scan_chunk=1",
      "--set",
      "train.log_every=2",
      "--set",
      "eval.every=0",
      "--set",
      "ckpt.every=2",
      "--seeds",
      "1",
      "--out",
      str(tmp_path),
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(ae) == 0
  capsys.readouterr()
  argv = ["--run", str(tmp_path / "ae_dense" / "base" / "seed0"), "--n", "10"]
  assert sample.main(argv + ["--out", str(tmp_path / "f.npz")]) == 2
  assert "no prior" in _err(capsys) and not (tmp_path / "f.npz").exists()


# --- input accepted though meaningless -------------------------------------------------------


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--set", "eval.num_samples=1"], "use at least 1000"),
        (["--set", "eval.kl_samples=5"], "use at least 100"),
        (
            ["--set", "train.steps=600", "--set", "train.steps=700"],
            "train.steps set more than once",
        ),
        (["--arms", ""], "--arms is empty"),
    ],
)
def test_meaningless_input_is_refused(tmp_path, capsys, extra, fragment):
  assert run.main(["--exp=gaussian1d", *extra, "--out", str(tmp_path), "--wandb", "disabled"]) == 2
  assert fragment in _err(capsys)
  assert not os.listdir(tmp_path)


def test_image_sample_counts_below_the_minimum_are_refused(tmp_path, capsys):
  argv = [
      "--exp=dcgan",
      "--set",
      "data.name=synthetic",
      "--set",
      "eval.num_samples=50",
      "--out",
      str(tmp_path),
  ]
  assert run.main(argv) == 2
  assert "use at least 200" in _err(capsys)


def test_summary_checks_the_batch_against_the_data(capsys):
  argv = [
      "--exp=dcgan",
      "--set",
      "data.name=synthetic",
      "--set",
      "data.num_train=64",
      "--set",
      "train.batch_size=128",
      "--summary",
  ]
  assert run.main(argv) == 2
  assert "larger than the synthetic training set" in _err(capsys)


def test_a_huge_value_is_not_echoed_in_full(capsys):
  assert run.main(["--exp=gaussian1d", "--set", "train.steps=" + "9x" * 5000, "--summary"]) == 2
  err = _err(capsys)
  assert len(err) < 600 and "characters)" in err
