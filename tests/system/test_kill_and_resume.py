"""Reliability: runs killed with SIGKILL or stopped with SIGTERM resume to exactly the result of
an uninterrupted run; unreadable checkpoints are set aside; divergence is recorded, not fatal;
bad input of any kind gives a clear message (property-tested)."""

import json
import os
import random
import re
import signal
import subprocess
import time

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from experiments import gaussian1d
from experiments import planning
from experiments import registry
from experiments.commands import run
from gen_models import config as config_lib
from gen_models import families
from gen_models import runs
from gen_models.config import ConfigError
from gen_models.families import gan as gan_family
from tests import helpers
from tests.helpers import tiny_1d

ROOT, GAN, _cmd, _env = helpers.ROOT, helpers.GAN, helpers.run_cmd, helpers.env
# A small autoencoder that compiles in seconds, with enough steps (one per dispatch) to be
# interrupted.
AE = [
    "--exp=ae_dense",
    "--set",
    "data.name=synthetic",
    "--set",
    "data.num_train=256",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.steps=8000",
    "--set",
    "train.scan_chunk=1",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=0",
    "--set",
    "ckpt.every=500",
    "--set",
    "ckpt.keep=20",
]


def _run(args, out, *extra, check=True):
  p = subprocess.run(
      _cmd(args, out, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  if check:
    assert p.returncode == 0, p.stderr[-3000:]
  return p


def _run_dir(out, args):
  return os.path.join(str(out), args[0].split("=")[1], "base", "seed0")


def _rows(run_dir):
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    return [helpers.without_timings(json.loads(l)) for l in f]


def _start_and_stop(args, out, sig, seed):
  """Starts a run, waits for its first checkpoint, then sends `sig` at a random moment."""
  p = subprocess.Popen(
      _cmd(args, out),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  ckpt_dir = os.path.join(_run_dir(out, args), "checkpoints")
  deadline = time.time() + 300
  while not (os.path.isdir(ckpt_dir) and [d for d in os.listdir(ckpt_dir) if d.isdigit()]):
    assert p.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
    time.sleep(0.05)
  time.sleep(random.Random(seed).uniform(0.0, 1.0))
  assert p.poll() is None, "the run finished before it could be interrupted"
  p.send_signal(sig)
  output = p.communicate(timeout=300)[0]
  return p.returncode, output


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The run dir of `args` trained uninterrupted, once for every test that compares with it."""
  done = {}

  def run_dir(args):
    if tuple(args) not in done:
      out = tmp_path_factory.mktemp("uninterrupted")
      _run(args, out)
      done[tuple(args)] = _run_dir(out, args)
    return done[tuple(args)]

  return run_dir


def _compare(reference_dir, resumed_dir):
  _, ref_state, _, _, ref_step = runs.load_run(reference_dir)
  _, state, _, _, step = runs.load_run(resumed_dir)
  assert step == ref_step
  helpers.assert_bit_identical(ref_state, state)
  rows = _rows(resumed_dir)
  assert rows == _rows(reference_dir)  # each step logged exactly once
  assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("args,seed", [(GAN, 1), (AE, 2)], ids=["gan", "autoencoder"])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, reference, args, seed):
  code, output = _start_and_stop(args, tmp_path / "killed", signal.SIGKILL, seed)
  assert code == -signal.SIGKILL, output[-2000:]
  assert not os.path.exists(os.path.join(_run_dir(tmp_path / "killed", args), "result.json"))
  # Without --resume the existing run is refused; with it, the run continues to the end.
  refused = run.main(
      args + ["--seeds", "1", "--out", str(tmp_path / "killed"), "--wandb", "disabled"]
  )
  assert refused == 2  # (in-process: the refusal happens before anything is compiled)
  resumed = _run(args, tmp_path / "killed", "--resume")
  assert "resumed from the checkpoint at step" in resumed.stdout
  _compare(reference(args), _run_dir(tmp_path / "killed", args))


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_finishes_identically(tmp_path, reference):
  code, output = _start_and_stop(GAN, tmp_path / "stopped", signal.SIGTERM, 3)
  assert code == 130, output[-2000:]
  assert "checkpoint saved at step" in output
  saved = re_step(output)
  assert saved % 10 == 0  # at a log point (train.log_every=10), not only at ckpt.every multiples
  assert str(saved) in os.listdir(os.path.join(_run_dir(tmp_path / "stopped", GAN), "checkpoints"))
  _run(GAN, tmp_path / "stopped", "--resume")
  _compare(reference(GAN), _run_dir(tmp_path / "stopped", GAN))


def re_step(output):

  return int(re.search(r"checkpoint saved at step (\d+)", output).group(1))


@pytest.mark.slow
def test_unreadable_latest_checkpoint_is_set_aside_and_the_previous_used(tmp_path, capsys):
  base = [
      "--exp=gaussian1d",
      "--seeds",
      "1",
      "--set",
      "train.log_every=10",
      "--set",
      "eval.every=30",
      "--set",
      "ckpt.every=30",
      "--set",
      "ckpt.keep=5",
      "--set",
      "eval.num_samples=2000",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(base + ["--set", "train.steps=90", "--out", str(tmp_path / "ref")]) == 0
  assert run.main(base + ["--set", "train.steps=60", "--out", str(tmp_path / "bad")]) == 0
  run_dir = tmp_path / "bad" / "gaussian1d" / "base" / "seed0"
  # truncate its array data
  for root, _, files in os.walk(run_dir / "checkpoints" / "60" / "state"):
    for name in files:
      if os.path.basename(root) == "d":
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(10)
  capsys.readouterr()
  assert (
      run.main(base + ["--set", "train.steps=90", "--out", str(tmp_path / "bad"), "--resume"]) == 0
  )
  err = capsys.readouterr().err
  assert "checkpoint at step 60" in err and "unreadable" in err
  # kept for inspection, not deleted
  assert os.path.isdir(run_dir / "checkpoints_unreadable" / "60")
  _, ref_state, *_ = runs.load_run(str(tmp_path / "ref" / "gaussian1d" / "base" / "seed0"))
  _, state, *_ = runs.load_run(str(run_dir))
  helpers.assert_bit_identical(ref_state, state)


@pytest.mark.slow
def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path, capsys, monkeypatch):

  exp = registry.Experiment(
      "diverging",
      "an arm that diverges, then one that does not",
      gaussian1d.BASE,
      (("bad", {"optim.d_lr": 1e30, "optim.g_lr": 1e30}), ("good", {})),
  )
  everything = registry._all()  # pylint: disable=protected-access
  monkeypatch.setattr(registry, "_all", lambda: {**everything, "diverging": exp})
  argv = [
      "--exp=diverging",
      "--seeds",
      "1",
      "--out",
      str(tmp_path),
      "--set",
      "train.steps=60",
      "--set",
      "train.log_every=10",
      "--set",
      "eval.every=30",
      "--set",
      "ckpt.every=10",
      "--set",
      "eval.num_samples=2000",
      "--set",
      "train.vmap_runs=false",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(argv) == 0
  assert "DIVERGED" in capsys.readouterr().out
  summary = json.loads((tmp_path / "diverging" / "summary.json").read_text())
  bad, good = summary["arms"]
  assert bad["status"] == {"0": "diverged"} and bad["diverged"] == [0] and not bad["metrics"]
  assert good["status"] == {"0": "finished"} and "w1" in good["metrics"]  # the sweep went on
  result = json.loads((tmp_path / "diverging" / "bad" / "seed0" / "result.json").read_text())
  assert "diverged at step" in result["error"] and result["step"] >= 1
  assert "Diverged runs" in (tmp_path / "diverging" / "report.md").read_text()


def test_a_diverged_run_keeps_its_last_good_checkpoint(tmp_path, monkeypatch):

  exp = registry.get("gaussian1d")
  cfg = tiny_1d(**{"train.steps": 20, "ckpt.every": 10, "eval.every": 10})
  run_dir = str(tmp_path / "run")
  state20, result = helpers.run_one(exp, "base", cfg, run_dir, "disabled", resume=False, quiet=True)
  assert result["status"] == "finished"
  # Continue it to step 60 with a NaN label target: the loss is NaN from step 21 on.
  monkeypatch.setattr(
      gan_family,
      "hparams",
      lambda c: {
          "real_target": np.float32("nan"),
          "fake_target": np.float32(0),
          "gen_target": np.float32(1),
          "minimax": np.float32(0),
      },
  )
  longer = config_lib.set_key(cfg, "train.steps", 60)
  state, result = helpers.run_one(exp, "base", longer, run_dir, "disabled", resume=True, quiet=True)
  assert state is None and result["status"] == "diverged" and result["step"] == 21
  assert max(int(d) for d in os.listdir(os.path.join(run_dir, "checkpoints"))) == 20
  _, restored, *_ = runs.load_run(run_dir)  # the last good checkpoint: the state at step 20
  helpers.assert_bit_identical(restored, state20)


@pytest.mark.slow
def test_a_resumed_sweep_skips_finished_runs_and_continues_the_rest(tmp_path, capsys):
  argv = [
      "--exp=gaussian1d",
      "--seeds",
      "2",
      "--out",
      str(tmp_path),
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
      "--set",
      "train.vmap_runs=false",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(argv) == 0
  seed1 = tmp_path / "gaussian1d" / "base" / "seed1"
  os.remove(seed1 / "result.json")  # as if seed 1 had been killed after its last checkpoint
  os.remove(tmp_path / "gaussian1d" / "report.md")
  capsys.readouterr()
  assert run.main(argv + ["--resume"]) == 0
  out = capsys.readouterr().out
  assert "base/seed0: finished earlier, skipped" in out and "[1/1] base/seed1" in out
  assert (tmp_path / "gaussian1d" / "report.md").exists()


def test_resuming_a_run_of_an_old_config_version_is_refused(tmp_path, capsys):
  argv = [
      "--exp=gaussian1d",
      "--seeds",
      "1",
      "--out",
      str(tmp_path),
      "--set",
      "train.steps=30",
      "--set",
      "train.log_every=10",
      "--set",
      "eval.every=0",
      "--set",
      "ckpt.every=30",
      "--wandb",
      "disabled",
      "--quiet",
  ]
  assert run.main(argv) == 0
  path = tmp_path / "gaussian1d" / "base" / "seed0" / "config.json"
  saved = json.loads(path.read_text())
  saved["version"] = 0
  path.write_text(json.dumps(saved))
  capsys.readouterr()
  assert run.main(argv + ["--resume"]) == 2
  assert "version 0" in capsys.readouterr().err


# --- property tests: arbitrary input never crashes with a traceback ---------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
known_keys = st.sampled_from(config_lib.keys() + ["train", "data.", ".seed", "optim.d_lr.x"])


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.one_of(text, known_keys.map(lambda k: k + "=")), text)
def test_any_override_is_parsed_or_rejected_with_a_message(key, value):
  try:
    k, v = config_lib.parse_assignment(f"{key}={value}" if "=" not in key else key + value)
    families.validate(config_lib.set_key(config_lib.Config(), k, v))
  except ConfigError as e:
    assert str(e)  # a ConfigError with a message, never another exception


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    known_keys, st.one_of(text, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
)
def test_any_value_for_a_known_key_is_parsed_or_rejected_with_a_message(key, value):
  try:
    families.validate(config_lib.set_key(config_lib.Config(), key, value))
  except ConfigError as e:
    assert str(e)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(st.lists(text, max_size=3))
def test_cli_overrides_never_raise_anything_but_config_errors(sets):

  try:
    planning.build_configs(registry.get("gaussian1d"), sets, None, None)
  except ConfigError as e:
    assert str(e)
