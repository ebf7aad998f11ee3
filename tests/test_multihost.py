"""Multi-host data parallelism: two processes (one CPU device each) joined by
jax.distributed.initialize() train one run together; only process 0 writes logs and reports."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from gen_models import data as data_lib
from gen_models import metric_names as names
from gen_models import runs
from gen_models.metrics import features
from tests.helpers import leaves_close
from tests.helpers import tiny_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [
    "--exp=dcgan",
    "--set",
    "data.name=synthetic",
    "--set",
    "data.num_train=256",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.steps=4",
    "--set",
    "train.log_every=2",
    "--set",
    "eval.every=0",
    "--set",
    "eval.num_samples=200",
    "--set",
    "ckpt.every=2",
    "--seeds",
    "1",
    "--wandb",
    "disabled",
    "--quiet",
]


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(tmp_path, args, out):
  port = _free_port()
  procs = []
  for pid in (0, 1):  # each process its own classifier cache: only process 0 may write one
    env = dict(
        os.environ,
        GEN_MODELS_DISTRIBUTED="1",
        GEN_MODELS_COORDINATOR=f"localhost:{port}",
        GEN_MODELS_NUM_PROCESSES="2",
        GEN_MODELS_PROCESS_ID=str(pid),
        JAX_PLATFORMS="cpu",
        GEN_MODELS_CACHE=str(tmp_path / f"cache{pid}"),
    )
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "experiments.run", *args, "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
  return procs


@pytest.mark.slow
def test_a_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
  """The stop decision is collective: one process seeing SIGTERM must not checkpoint and leave
  while the other enters the next step's all-reduce (that hangs the job)."""
  args = [
      (
          "train.steps=4000"
          if a == "train.steps=4"
          else "ckpt.every=1000"
          if a == "ckpt.every=2"
          else a
      )
      for a in ARGS
  ]
  procs = _start(tmp_path, args, tmp_path / "multi")
  rows = tmp_path / "multi" / "dcgan" / "base" / "seed0" / "metrics.jsonl"
  deadline = time.time() + 300
  while not (rows.exists() and len(rows.read_text().splitlines()) >= 3):
    assert all(p.poll() is None for p in procs) and time.time() < deadline
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)  # the process that writes nothing
  try:
    outs = [p.communicate(timeout=120)[0] for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    tails = [p.communicate()[0][-1500:] for p in procs]
    pytest.fail(f"a SIGTERM to one process left the job hanging: {tails}")
  assert [p.returncode for p in procs] == [130, 130], outs[0][-2000:] + outs[1][-2000:]
  run_dir = rows.parent
  result = json.loads((run_dir / "result.json").read_text())
  assert result["status"] == "interrupted" and 0 < result["step"] < 4000
  assert os.listdir(run_dir / "checkpoints") == [str(result["step"])]  # both saved this step


@pytest.mark.slow
def test_two_processes_train_one_run(tmp_path):
  # Each process has its own classifier cache. Process 0's holds the synthetic data's classifiers
  # (trained once per test run in the shared cache) without their noise floors, so process 0
  # computes and writes the floors; process 1's lacks the third member too, so it trains that one
  # itself: only process 0 may write either.
  features.get("synthetic", data_lib.load(tiny_image()), log=lambda s: None)
  shared = os.path.join(features.cache_root(), "classifier")
  shutil.copytree(
      shared, tmp_path / "cache0" / "classifier", ignore=shutil.ignore_patterns("floors")
  )
  shutil.copytree(
      shared, tmp_path / "cache1" / "classifier", ignore=shutil.ignore_patterns("floors", "s2.*")
  )
  files = lambda d: sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)
  cache1 = files(tmp_path / "cache1")
  port = _free_port()
  procs = []
  for pid in (0, 1):
    env = dict(
        os.environ,
        GEN_MODELS_DISTRIBUTED="1",
        GEN_MODELS_COORDINATOR=f"localhost:{port}",
        GEN_MODELS_NUM_PROCESSES="2",
        GEN_MODELS_PROCESS_ID=str(pid),
        JAX_PLATFORMS="cpu",
        GEN_MODELS_CACHE=str(tmp_path / f"cache{pid}"),
    )
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "experiments.run", *ARGS, "--out", str(tmp_path / "multi")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
  outs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
  run_dir = tmp_path / "multi" / "dcgan" / "base" / "seed0"
  assert json.loads((run_dir / "result.json").read_text())["status"] == "finished"
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["2", "4"]
  assert (tmp_path / "multi" / "dcgan" / "report.md").exists()
  # The same run in one process on one device logs the same losses.
  env = dict(os.environ, JAX_PLATFORMS="cpu", GEN_MODELS_CACHE=str(tmp_path / "cache0"))
  single = subprocess.run(
      [sys.executable, "-m", "experiments.run", *ARGS, "--out", str(tmp_path / "single")],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert single.returncode == 0, single.stderr[-3000:]
  rows = lambda d: [json.loads(l) for l in open(d / "dcgan" / "base" / "seed0" / "metrics.jsonl")]
  multi_rows, single_rows = rows(tmp_path / "multi"), rows(tmp_path / "single")
  # Process 1 logged nothing: a second writer would have duplicated (or rewound) these rows.
  assert [r["step"] for r in multi_rows] == [r["step"] for r in single_rows] == [2, 4, 4]
  for m, s in zip(multi_rows, single_rows):
    assert set(m) == set(s)
    for k in m:
      if k != "step" and k not in names.TIMINGS:
        # evaluation metrics of a 4-step generator (FID ~ 1e4) amplify the all-reduce's rounding
        np.testing.assert_allclose(
            m[k], s[k], rtol=1e-3 if k.startswith("eval/") else 1e-4, atol=1e-6, err_msg=k
        )
  assert "training member seed 2" in outs[1] and "training member seed" not in outs[0]
  assert os.listdir(tmp_path / "cache0" / "classifier" / "floors")  # written by process 0
  assert files(tmp_path / "cache1") == cache1  # process 1 wrote neither its member nor floors
  # and the two-process run ends with the one-process run's parameters

  multi_state = runs.load_run(str(run_dir))[1]
  single_state = runs.load_run(str(tmp_path / "single" / "dcgan" / "base" / "seed0"))[1]
  leaves_close(multi_state, single_state, rtol=1e-4, floor=1e-4)  # floor: see test_data_parallel
