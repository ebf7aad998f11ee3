"""Reliability, round four (issue 38): every file the project writes and later reads, damaged in
each way, ends in exit 2 with a message naming it and nothing changed, or (for the files the
report can rebuild from the runs) in a report that lists the damage; plus the issue's five cases:
damaged results, a damaged claims area, distributed settings, an address-space limit, huge
designs."""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest

from experiments import report
from experiments.commands import run
from gen_models import rundir

P = sys.executable
RUN = [
    "--exp=gaussian1d_loss",
    "--until-decided",
    "--seeds",
    "6",
    "--seed-batch",
    "1",
    "--max-seeds",
    "7",
    "--set",
    "train.steps=30",
    "--set",
    "eval.every=15",
    "--set",
    "train.log_every=15",
    "--set",
    "ckpt.every=15",
    "--wandb",
    "disabled",
    "--quiet",
]


def _run(out, *extra):
  return run.main(RUN + ["--out", str(out), *extra])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A finished gaussian1d_loss sweep under a sequential design (sequential.json, eval_noise.json,
  summary.json and sweep.json all written), copied per test."""
  out = tmp_path_factory.mktemp("built")
  assert _run(out) == 0
  exp = out / "gaussian1d_loss"
  for name in ("sequential.json", "eval_noise.json", "summary.json", "sweep.json"):
    assert (exp / name).is_file(), name
  return out


@pytest.fixture
def out(built, tmp_path):
  shutil.copytree(built, tmp_path / "out", symlinks=True)
  return tmp_path / "out"


def _tree(root, skip=()):
  """{relative path: sha256} of every file under root but the locks and `skip`."""
  got = {}
  for d, dirs, names in os.walk(root):
    for n in names:
      p = os.path.join(d, n)
      rel = os.path.relpath(p, root)
      if n.startswith(".") or any(rel.startswith(s) for s in skip) or not os.path.isfile(p):
        continue
      with open(p, "rb") as f:
        got[rel] = hashlib.sha256(f.read()).hexdigest()
  return got


def _edit_json(path, fn):
  with open(path) as f:
    value = json.load(f)
  fn(value)
  with open(path, "w") as f:
    json.dump(value, f)


def _set(*keys, value=None, delete=False):
  def fn(v):
    for k in keys[:-1]:
      v = v[k]
    if delete:
      del v[keys[-1]]
    else:
      v[keys[-1]] = value

  return fn


def _edit_last_row(path, fn):
  with open(path) as f:
    rows = [json.loads(l) for l in f if l.strip()]
  fn(rows[-1])
  with open(path, "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows))


# The files the report reads, where each lives, what its damage leads to, and per damage of its
# content the edit. "refuse": exit 2 naming the file, nothing changed. "listed": the report is
# written and names the file among its problems; no run's files change.
NAN = float("nan")
FILES = {
    "config.json": (
        "ns/seed0/config.json",
        "refuse",
        {
            "missing key": _set("seed", delete=True),
            "wrong type": _set("train", value=[1, 2]),
            "non-numeric string": _set("seed", value="abc"),
            "NaN": _set("seed", value=NAN),
        },
    ),
    "result.json": (
        "ns/seed0/result.json",
        "refuse",
        {
            "missing key": _set("status", delete=True),
            "wrong type": _set("metrics", value=[1, 2]),
            "non-numeric string": _set("wall_s", value="abc"),
            "NaN": _set("step", value=NAN),
        },
    ),
    "sequential.json": (
        "sequential.json",
        "refuse",
        {
            "missing key": _set("design", "looks", delete=True),
            "wrong type": _set("design", "levels", value=[0.1]),
            "non-numeric string": _set("design", "alpha", value="abc"),
            "NaN": _set("design", "alpha", value=NAN),
        },
    ),
    "summary.json": (
        "summary.json",
        "listed",
        {
            "missing key": _set("arms", delete=True),
            "wrong type": _set("arms", value={"ns": 1}),
            "non-numeric string": lambda v: v["arms"][0]["seeds"].__setitem__(0, "abc"),
            "NaN": lambda v: v["arms"][0]["seeds"].__setitem__(0, NAN),
        },
    ),
    "eval_noise.json": (
        "eval_noise.json",
        "listed",
        {
            "missing key": _set("std", delete=True),
            "wrong type": _set("std", value=[1]),
            "non-numeric string": _set("step", value="abc"),
            "NaN": _set("std", "w1", value=NAN),
        },
    ),
    "metrics.jsonl": (
        "ns/seed0/metrics.jsonl",
        "listed",  # a damaged line is skipped and listed; a damaged place is refused
        {
            "missing key": lambda r: r.pop("step"),
            "wrong type": lambda r: r.__setitem__("step", [30]),
            "non-numeric string": lambda r: r.__setitem__("eval/w1", "abc"),
            "NaN": lambda r: r.__setitem__("step", NAN),
        },
    ),
}
CONTENT = ("missing key", "wrong type", "non-numeric string", "NaN")
PLACE = ("a directory", "a file for its directory", "a symlink out of the tree", "empty file")


def _damage(exp, tmp_path, name, damage):
  rel, _, edits = FILES[name]
  path = exp / rel
  if damage in CONTENT:
    if name == "metrics.jsonl":
      _edit_last_row(path, edits[damage])
    else:
      _edit_json(path, edits[damage])
  elif damage == "a directory":
    os.remove(path)
    path.mkdir()
    (path / "x").write_text("a user's file")
  elif damage == "a file for its directory":
    holder = path.parent
    shutil.move(str(holder), str(tmp_path / "moved_away"))
    holder.write_text("not a directory")
  elif damage == "a symlink out of the tree":
    outside = tmp_path / ("outside_" + os.path.basename(rel))
    shutil.copy(path, outside)
    os.remove(path)
    os.symlink(outside, path)
  else:
    path.write_text("")
  return path


def _expected(name, damage):
  if damage == "a file for its directory":  # a run's directory is a file: that seed is left out
    return "listed" if FILES[name][0].startswith("ns/") else "refuse-exp"
  if name == "eval_noise.json":
    return "listed"  # the report only reads it; the runner recomputes it
  if name == "summary.json" and damage == "a symlink out of the tree":
    return "listed"  # rebuilt as a file of the tree; the link's target is not touched
  if damage in ("a directory", "a symlink out of the tree"):
    return "refuse"  # nothing can be rebuilt into a place that is not the project's file
  return FILES[name][1]


@pytest.mark.slow
@pytest.mark.parametrize("damage", CONTENT + PLACE)
@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_damaged_each_way(out, tmp_path, capsys, name, damage):
  exp = out / "gaussian1d_loss"
  capsys.readouterr()
  path = _damage(exp, tmp_path, name, damage)
  runs_before = (
      _tree(
          exp,
          skip=("summary", "report", "eval_noise", "sweep")
          + tuple(f for f in os.listdir(exp) if f.endswith(".png")),
      )
      if exp.is_dir()
      else None
  )
  everything_before = _tree(exp) if exp.is_dir() else None
  code = report.main([str(exp)])
  err = capsys.readouterr().err
  assert "Traceback" not in err, err
  expected = _expected(name, damage)
  if expected == "refuse":
    assert code == 2, err
    shown = path if damage != "a file for its directory" else path.parent
    assert str(shown) in err or os.path.basename(str(shown)) in err, err
    assert _tree(exp) == everything_before  # nothing changed, the damaged file included
  elif expected == "refuse-exp":
    assert code == 2 and str(exp) in err, err
    assert exp.read_text() == "not a directory"
  else:
    assert code == 0, err
    named = "seed0 is a file" if damage == "a file for its directory" else FILES[name][0]
    assert os.path.basename(named) in err, err  # listed among the problems
    after = _tree(exp)
    assert {k: v for k, v in after.items() if k in runs_before} == runs_before
    assert "Problems reading the runs" in (exp / "report.md").read_text()
  if name == "metrics.jsonl" and damage in CONTENT:
    assert "metrics.jsonl has 1 damaged line" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["config.json", "result.json", "sequential.json"])
def test_resume_refuses_a_damaged_file_and_changes_nothing(out, tmp_path, capsys, name):
  exp = out / "gaussian1d_loss"
  path = _damage(exp, tmp_path, name, "non-numeric string")
  before = _tree(exp, skip=("sweep.json",))
  capsys.readouterr()
  assert _run(out, "--resume") == 2
  err = capsys.readouterr().err
  assert str(path) in err and "is damaged" in err and "Traceback" not in err, err
  assert _tree(exp, skip=("sweep.json",)) == before


@pytest.mark.slow
@pytest.mark.parametrize("content", ['{"identity": 3}', "", '{"other": {}}', "[1]"])
def test_a_damaged_sweep_json_of_a_live_sweep_is_named(out, capsys, content):
  exp = out / "gaussian1d_loss"
  identity = json.loads((exp / "sweep.json").read_text())["identity"]
  with rundir.join_sweep(str(exp), identity):  # a worker of this sweep is running
    (exp / "sweep.json").write_text(content)
    before = _tree(exp)
    capsys.readouterr()
    assert _run(out, "--resume") == 2
    err = capsys.readouterr().err
  assert "sweep.json is damaged" in err and "Traceback" not in err, err
  assert _tree(exp) == before


# --- the five cases ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, said",
    [
        (_set("extractors", value={"members": 3}), "extractors.ident is missing"),
        (_set("train_s", value="abc"), "train_s is 'abc'"),
    ],
)
def test_1_a_damaged_result_json_exits_2_in_report_and_resume(out, capsys, edit, said):
  exp = out / "gaussian1d_loss"
  path = exp / "minimax" / "seed1" / "result.json"
  _edit_json(path, edit)
  damaged = path.read_bytes()
  for command in (lambda: report.main([str(exp)]), lambda: _run(out, "--resume")):
    capsys.readouterr()
    assert command() == 2
    err = capsys.readouterr().err
    assert f"{path} is damaged ({said}" in err and "Traceback" not in err, err
  assert path.read_bytes() == damaged


@pytest.mark.slow
def test_2_a_damaged_claims_area_exits_2(out, capsys):
  exp = out / "gaussian1d_loss"
  claims = exp / ".claims"
  shutil.rmtree(claims, ignore_errors=True)
  (claims / "ns.seed7").mkdir(parents=True)  # the next run's claim is a directory
  capsys.readouterr()
  assert _run(out, "--resume", "--no-until-decided", "--seeds", "8") == 2
  err = capsys.readouterr().err
  assert "ns.seed7 cannot be used (it is a directory)" in err and "Traceback" not in err, err
  assert (claims / "ns.seed7").is_dir() and not (exp / "ns" / "seed7").exists()
  shutil.rmtree(claims)
  claims.write_text("a file")
  assert _run(out, "--resume", "--no-until-decided", "--seeds", "8") == 2
  err = capsys.readouterr().err
  assert "it is a file, not a directory" in err and "Traceback" not in err, err
  assert claims.read_text() == "a file"


@pytest.mark.slow
def test_3_distributed_without_a_coordinator_names_the_settings(tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "GEN_MODELS_"))}
  p = subprocess.run(
      [P, "-m", "experiments.run", "--exp=gaussian1d", "--out", str(tmp_path), "--wandb",
       "disabled"],
      capture_output=True, text=True, env={**env, "GEN_MODELS_DISTRIBUTED": "1"}, timeout=300,
  )  # fmt: skip
  assert p.returncode == 2, p.stderr
  for name in ("GEN_MODELS_COORDINATOR", "GEN_MODELS_NUM_PROCESSES", "GEN_MODELS_PROCESS_ID"):
    assert name in p.stderr
  assert "Traceback" not in p.stderr and not os.listdir(tmp_path)


@pytest.mark.slow
def test_4_sample_under_an_address_space_limit_exits_2_and_leaves_the_checkpoint(out, tmp_path):
  run_dir = out / "gaussian1d_loss" / "ns" / "seed0"
  before = _tree(run_dir)
  limit = int(1.4 * 2**30)
  p = subprocess.run(
      [P, "-m", "experiments.sample", "--run", str(run_dir), "--out", str(tmp_path / "s.npz")],
      capture_output=True, text=True, timeout=300,
      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
  )  # fmt: skip
  assert p.returncode == 2, p.stderr
  assert "ulimit -v" in p.stderr and "Traceback" not in p.stderr, p.stderr
  assert _tree(run_dir) == before and not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize(
    "flags", [["--max-seeds", "2000"], ["--max-seeds", "100", "--seed-batch", "1"]]
)
def test_5_a_huge_design_is_refused_in_seconds(tmp_path, capsys, flags):
  t = time.perf_counter()
  code = run.main(
      ["--exp=dcgan_loss", "--set", "data.name=synthetic", "--summary", "--out", str(tmp_path)]
      + flags
  )
  err = capsys.readouterr().err
  assert code == 2 and "Traceback" not in err, err
  assert ("--max-seeds 2000 is above" in err) or ("make 90 looks" in err), err
  assert time.perf_counter() - t < 60


@pytest.mark.slow
def test_5_the_largest_accepted_design_is_built_in_under_a_minute(tmp_path):
  """4 comparisons, 19 looks up to 100 seeds: the largest a command accepts (sequential.MAX_*)."""
  t = time.perf_counter()
  p = subprocess.run(
      [P, "-m", "experiments.run", "--exp=dcgan_losses", "--set", "data.name=synthetic",
       "--max-seeds", "100", "--seed-batch", "5", "--summary"],
      capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert p.returncode == 0, p.stderr
  assert "calibrating the sequential design: 19 looks x 4 comparison(s)" in p.stderr
  assert time.perf_counter() - t < 60
