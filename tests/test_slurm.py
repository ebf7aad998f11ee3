"""The cluster recipe on a real SLURM: experiments/slurm/local_cluster.sh starts munged, slurmctld
and slurmd on this machine, experiments/slurm/sweep.sbatch runs as a 2-task job array, and the
sweep ends as one process alone ends it. Skipped (saying why) where slurm-wlm is not installed or
the daemons cannot be started (they run as root); .ci/run installs slurm-wlm where it can."""

import os
import shutil
import subprocess

import pytest

from tests import helpers

ROOT = helpers.ROOT
SLURM = os.path.join(ROOT, "experiments", "slurm")
NEEDED = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo")


@pytest.fixture
def cluster(tmp_path):
  missing = [b for b in NEEDED if shutil.which(b) is None]
  if missing:
    pytest.skip(f"no SLURM here ({', '.join(missing)} not found): apt-get install slurm-wlm munge")
  if os.geteuid() != 0:
    pytest.skip("the local SLURM daemons run as root")
  state = tmp_path / "slurm"
  start = subprocess.run(
      [os.path.join(SLURM, "local_cluster.sh"), "start", str(state)],
      capture_output=True,
      text=True,
      timeout=120,
  )
  if start.returncode != 0:
    pytest.skip(f"the local SLURM cluster did not start: {start.stderr[-1500:]}")
  try:
    yield dict(helpers.env(), SLURM_CONF=str(state / "slurm.conf"))
  finally:
    subprocess.run([os.path.join(SLURM, "local_cluster.sh"), "stop", str(state)], timeout=60)


@pytest.mark.slow
def test_a_slurm_job_array_shares_one_sweep_and_ends_as_one_process_alone(tmp_path, cluster):
  out, logs = tmp_path / "shared", tmp_path / "logs"
  logs.mkdir()
  sweep = helpers.worker_cmd(out, 3000)[3:]  # the flags after `python -m experiments.run`
  exp = sweep.pop(0).split("=", 1)[1]
  job = subprocess.run(
      ["sbatch", "--wait", "--array=0-1", f"--output={logs}/slurm-%A_%a.out"]
      + [os.path.join(SLURM, "sweep.sbatch"), exp, *sweep],
      cwd=ROOT,
      env=dict(cluster, GEN_MODELS_CLAIM_POLL_S="0.3"),
      capture_output=True,
      text=True,
      timeout=900,
  )
  texts = [p.read_text() for p in sorted(logs.iterdir())]
  assert job.returncode == 0, job.stdout + job.stderr + "\n".join(t[-2000:] for t in texts)
  assert len(texts) == 2  # two array tasks
  trained = [helpers.trained_runs(t) for t in texts]
  assert sorted(trained[0] + trained[1]) == sorted(helpers.WORKER_RUNS)  # every run exactly once
  assert sum("Report: " in t and "(built by another worker)" not in t for t in texts) == 1
  assert helpers.per_seed(out) == helpers.lone_sweep(3000)  # as one process alone ends it
