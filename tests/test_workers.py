"""Workers sharing one sweep: runs claimed (not directories locked), a dead worker's run taken over,
the report built once, another command refused, and --workers N."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from experiments import planning
from experiments import registry
from experiments import workers
from gen_models import rundir
from gen_models.errors import RunError
from tests import helpers

ROOT = helpers.ROOT


def _env():
  return dict(helpers.env(), GEN_MODELS_CLAIM_POLL_S="0.3")


def _start(out, steps, *extra):
  return subprocess.Popen(
      helpers.worker_cmd(out, steps, *extra),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )


def _drain(proc, lines):
  for line in proc.stdout:
    lines.append(line)


@pytest.fixture(scope="module")
def reference():
  """The same sweep trained by one process alone (once per test run, shared with test_slurm)."""
  return helpers.lone_sweep(3000)


@pytest.mark.slow
def test_two_identical_commands_share_a_sweep_and_write_the_single_process_summary(
    tmp_path, reference
):
  first, second = _start(tmp_path, 3000), _start(tmp_path, 3000)
  outs = [p.communicate(timeout=600)[0] for p in (first, second)]
  assert first.returncode == 0 and second.returncode == 0, outs
  trained = [helpers.trained_runs(o) for o in outs]
  assert sorted(trained[0] + trained[1]) == sorted(helpers.WORKER_RUNS)  # every run exactly once
  assert all(trained), f"one worker trained everything: {trained}"  # the work was shared
  built = [o for o in outs if "Report: " in o and "(built by another worker)" not in o]
  assert len(built) == 1, outs  # the report was built once
  assert helpers.per_seed(tmp_path) == reference


@pytest.mark.slow
def test_a_killed_workers_run_is_resumed_by_another_and_the_summary_is_unchanged(
    tmp_path, reference
):
  exp_dir = tmp_path / "gaussian1d_loss"
  victim = _start(tmp_path, 3000)
  survivor, survivor_out = None, []
  deadline = time.time() + 300
  killed = None
  while killed is None:
    assert victim.poll() is None and time.time() < deadline, victim.stdout.read()[-3000:]
    if survivor is None and (exp_dir / "sweep.json").exists():
      survivor = _start(tmp_path, 3000)
      reader = threading.Thread(target=_drain, args=(survivor, survivor_out), daemon=True)
      reader.start()
    # Kill only once the survivor has joined: a command that finds nobody running the sweep is
    # a new one and (without --resume) is refused, as it should be.
    joined = any("joining the sweep" in line for line in survivor_out)
    claims = exp_dir / ".claims" if joined else tmp_path / "not yet"
    for f in claims.glob("*.seed*") if claims.is_dir() else []:
      arm, seed = f.name.split(".seed")
      run = rundir.RunPaths(str(exp_dir / arm / f"seed{seed}"))
      if (
          f"pid {victim.pid} " in f.read_text()
          and run.checkpoint_steps()
          and not os.path.exists(run.result)
      ):
        victim.send_signal(signal.SIGKILL)  # mid-run, after a checkpoint
        killed = f"{arm}/seed{seed}"
        break
    time.sleep(0.05)
  victim.wait(timeout=60)
  survivor.wait(timeout=600)
  reader.join(timeout=60)
  out = "".join(survivor_out)
  assert survivor.returncode == 0, out[-3000:]
  assert killed in helpers.trained_runs(out)  # taken over
  arm, seed = killed.split("/seed")
  result = json.loads((exp_dir / arm / f"seed{seed}" / "result.json").read_text())
  assert result["status"] == "finished" and result["resumed_from"] > 0  # from its checkpoint
  assert helpers.per_seed(tmp_path) == reference


@pytest.mark.slow
def test_another_command_on_a_live_sweep_is_refused_and_the_sweep_goes_on(tmp_path):
  first = _start(tmp_path, 8000)
  deadline = time.time() + 120
  while not (tmp_path / "gaussian1d_loss" / "sweep.json").exists():
    assert first.poll() is None and time.time() < deadline
    time.sleep(0.05)
  other = subprocess.run(
      helpers.worker_cmd(tmp_path, 8000, "--set", "optim.d_lr=0.002"),
      cwd=ROOT,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert other.returncode == 2, other.stdout[-2000:] + other.stderr[-2000:]
  assert "started with other settings" in other.stderr and "optim.d_lr" in other.stderr
  assert "Traceback" not in other.stderr
  first.send_signal(signal.SIGTERM)
  first.communicate(timeout=300)
  assert first.returncode == 130


def test_claims_are_all_or_nothing_and_free_when_released(tmp_path):
  a, b = rundir.Claims(str(tmp_path)), rundir.Claims(str(tmp_path))
  assert a.take([("ns", 0)])
  assert not b.take([("ns", 1), ("ns", 0)])  # ns/0 is held: b holds nothing
  assert a.take([("ns", 1)])  # so ns/1 is still free
  a.release()
  assert b.take([("ns", 1), ("ns", 0)])
  assert "claimed by pid" in b.holder("ns", 0)


def test_a_run_directory_another_worker_is_creating_is_planned_as_new(tmp_path, monkeypatch):
  """A worker creating a run writes its directory's config.json through a temporary file in that
  directory: a second worker planning at that instant sees a directory holding only the
  temporary. It is a run not yet started, not a damaged one (that error, exit 2, ended one of two
  until-decided workers at a look). A directory without a config.json but with anything else is
  still refused."""
  exp = registry.get("gaussian1d_loss")
  arm_cfgs = planning.build_configs(exp, [], 1, None)
  run_dir = rundir.ExpPaths.of(str(tmp_path), exp.name).run("ns", 0).dir
  real, plans = os.replace, []

  def replace(src, dst):  # the other worker plans between the temporary's write and its rename
    if dst.endswith("config.json"):
      assert os.listdir(run_dir) == [os.path.basename(src)]
      plans.append(planning.plan_runs(exp, arm_cfgs, str(tmp_path), resume=True))
    real(src, dst)

  monkeypatch.setattr(os, "replace", replace)
  os.makedirs(run_dir)
  rundir.write_atomic(rundir.RunPaths(run_dir).config, "{}")
  assert [(arm, seed, action) for arm, _, seed, _, action in plans[0]] == [
      ("ns", 0, "new"),
      ("minimax", 0, "new"),
  ]
  os.remove(rundir.RunPaths(run_dir).config)
  open(os.path.join(run_dir, "metrics.jsonl"), "w").close()
  with pytest.raises(RunError, match="no readable config.json"):
    planning.plan_runs(exp, arm_cfgs, str(tmp_path), resume=True)


def test_a_filesystem_whose_locks_are_local_is_refused(tmp_path, monkeypatch):
  for fs in (("lustre", ["rw", "localflock"]), ("nfs", ["rw", "vers=3", "nolock"])):
    monkeypatch.setattr(rundir, "_mount_of", lambda path, fs=fs: fs)
    with pytest.raises(RunError, match="local to each machine"):
      rundir.check_flock(str(tmp_path))
  monkeypatch.setattr(rundir, "_mount_of", lambda path: ("nfs4", ["rw", "vers=4.2"]))
  rundir.check_flock(str(tmp_path))  # NFSv4 locks are the server's
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".flock-probe")]


def test_a_filesystem_without_flock_is_refused(tmp_path, monkeypatch):
  def no_flock(fd, op):
    raise OSError(38, "Function not implemented")

  monkeypatch.setattr(rundir.fcntl, "flock", no_flock)
  with pytest.raises(RunError, match="does not support file locks"):
    rundir.check_flock(str(tmp_path))


@pytest.mark.slow
def test_workers_n_starts_pinned_workers_that_share_the_sweep(tmp_path, reference):
  done = subprocess.run(
      helpers.worker_cmd(tmp_path, 3000, "--workers", "2"),
      cwd=ROOT,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  lines = done.stdout.splitlines()
  per_worker = {
      k: helpers.trained_runs("\n".join(l[5:] for l in lines if l.startswith(f"[w{k}] ")))
      for k in (0, 1)
  }
  assert sorted(per_worker[0] + per_worker[1]) == sorted(helpers.WORKER_RUNS), per_worker
  assert "w0 on cores" in lines[0] and "each with status 0" in lines[-1]
  assert sum("Report: " in l for l in lines) == 1  # one merged view, one report
  # One core per worker, two cores for the lone process: the 1-D GAN's runs are the same bits.
  assert helpers.per_seed(tmp_path) == reference


def test_cores_are_split_between_workers_without_sharing():

  assert workers.cpu_shares(2, [0, 1, 2, 3, 4]) == [[0, 1], [2, 3, 4]]
  assert workers.cpu_shares(3, [0, 1]) == [[0], [1], [0]]  # more workers than cores
  assert workers.strip_workers(["--exp=x", "--workers", "2", "--workers=3", "--quiet"]) == [
      "--exp=x",
      "--quiet",
  ]


def test_workers_auto_is_one_per_core_for_conv_gans_one_per_gpu_else_one(monkeypatch):

  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
  assert workers.resolve("auto", "dcgan_label_smoothing") == 3
  assert workers.resolve("auto", "gaussian1d_loss") == 1  # one process vmaps the whole sweep
  assert workers.resolve("auto", "ae_latent") == 1
  assert workers.resolve("auto", "no_such_experiment") == 1  # reported by the run itself
  assert workers.resolve("4", "gaussian1d_loss") == 4
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
  assert workers.resolve("auto", "dcgan_loss") == 2 == workers.resolve("auto", "ae_latent")
  for bad in ("0", "-1", "two"):
    with pytest.raises(ValueError, match="--workers"):
      workers.resolve(bad, "dcgan_loss")


@pytest.mark.slow
def test_until_decided_across_two_workers_trains_each_look_once_and_stops_together(tmp_path):
  # Both workers read the same summary at each look, so they compute the same next round, claim
  # from it, and stop at the same look: every run of the design trained once, 2 + 1 + 1 seeds.
  design = ["--until-decided", "--seeds", "2", "--seed-batch", "1", "--max-seeds", "4"]
  first, second = _start(tmp_path, 1000, *design), _start(tmp_path, 1000, *design)
  outs = [p.communicate(timeout=900)[0] for p in (first, second)]
  assert first.returncode == 0 and second.returncode == 0, [o[-3000:] for o in outs]
  trained = helpers.trained_runs(outs[0]) + helpers.trained_runs(outs[1])
  want = {f"{arm}/seed{k}" for arm in ("ns", "minimax") for k in range(4)}
  assert sorted(trained) == sorted(want)  # each run once, over all looks
  for out in outs:
    assert "stopped at look 3 of 3 (4 seeds per arm): the seed budget" in out
  seq = json.loads((tmp_path / "gaussian1d_loss" / "summary.json").read_text())["sequential"]
  assert seq["look"] == 2
