"""Fault injection: a sweep killed again and again (at random moments, during checkpoint writes,
during report writing) and resumed each time ends with the summary.json of an uninterrupted run;
and the report never loses a metric that was on disk, whatever happened to the per-run files."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import hypothesis
from hypothesis import strategies as st
import pytest

from experiments import registry
from gen_models import config as config_lib
from gen_models import files
from gen_models import report
from tests import helpers

ROOT, _env = helpers.ROOT, helpers.env

SWEEP = [
    "--exp=gaussian1d_loss",
    "--seeds",
    "2",
    "--set",
    "train.steps=2000",
    "--set",
    "train.scan_chunk=1",
    "--set",
    "train.log_every=20",
    "--set",
    "eval.every=1000",
    "--set",
    "eval.num_samples=2000",
    "--set",
    "ckpt.every=200",
    "--set",
    "train.vmap_runs=false",
    "--wandb",
    "disabled",
    "--quiet",
]
VOLATILE = ("wall_s", "generated", "command")  # times, and the command (its --out differs)


def _cmd(out, *extra):

  return [sys.executable, "-m", "experiments.run", *SWEEP, "--out", str(out), *extra]


def _stable(summary):
  """summary.json without what legitimately differs between two runs (times)."""
  if isinstance(summary, dict):
    return {k: _stable(v) for k, v in summary.items() if k not in VOLATILE}
  if isinstance(summary, list):
    return [_stable(v) for v in summary]
  return summary


def _kill_when(p, out, strategy, rng):
  """Waits for the moment `strategy` names, then SIGKILLs p. Returns False if p ended first."""
  exp_dir = os.path.join(str(out), "gaussian1d_loss")
  started = time.time()
  deadline = time.time() + 120
  if strategy == "random":
    time.sleep(rng.uniform(3.0, 6.0))
  while strategy != "random" and p.poll() is None and time.time() < deadline:
    if strategy == "checkpoint":  # orbax writes a step into a temporary directory, then renames it
      if any("tmp" in d for _, dirs, _ in os.walk(exp_dir) for d in dirs):
        break
    elif strategy == "report":  # the report's first figure is written, its summary not yet
      curves = os.path.join(exp_dir, "curves.png")
      if os.path.exists(curves) and os.path.getmtime(curves) > started:
        break
    time.sleep(0.001)
  if p.poll() is not None:
    return False
  p.send_signal(signal.SIGKILL)
  p.wait()
  return True


@pytest.mark.slow
def test_killed_again_and_again_then_resumed_equals_uninterrupted(tmp_path):
  # The interrupted commands render their figures (a report kill waits for curves.png); the
  # uninterrupted and the final command do not (summary.json is the same either way).
  ref = subprocess.run(
      _cmd(tmp_path / "ref"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  assert ref.returncode == 0, ref.stderr[-2000:]
  reference = json.loads((tmp_path / "ref" / "gaussian1d_loss" / "summary.json").read_text())
  rng = random.Random(7)
  out = tmp_path / "killed"
  killed_at = []
  kills, strategies = 0, ["checkpoint", "random", "checkpoint", "report", "random", "report"]
  for i, strategy in enumerate(strategies):
    p = subprocess.Popen(
        _cmd(out, *(["--resume"] if i else [])),
        cwd=ROOT,
        env=dict(_env(), GEN_MODELS_FIGURES="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if not _kill_when(p, out, strategy, rng):
      assert p.returncode == 0, p.stderr.read()[-2000:]
      break
    kills += 1
    killed_at.append((
        strategy,
        sorted(os.listdir(out / "gaussian1d_loss")) if (out / "gaussian1d_loss").exists() else [],
    ))
  assert kills >= 4, kills  # the sweep really was interrupted again and again
  final = subprocess.run(
      _cmd(out, "--resume"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
  )
  assert final.returncode == 0, final.stderr[-2000:]
  summary = json.loads((out / "gaussian1d_loss" / "summary.json").read_text())
  diff = [
      (a["name"], k, a["metrics"][k]["per_seed"], b["metrics"].get(k, {}).get("per_seed"))
      for a, b in zip(reference["arms"], summary["arms"])
      for k in a["metrics"]
      if a["metrics"][k] != b["metrics"].get(k)
  ]
  assert not diff, (diff, killed_at)
  assert _stable(summary) == _stable(reference)


# --- property: the report never loses a metric that was on disk -----------------------------

EXP = registry.get("gaussian1d_loss")
CFG = config_lib.apply_overrides(EXP.config, {"train.steps": 60})
damage = st.sampled_from([
    "none",
    "delete_result",
    "truncate_result",
    "garbage_result",
    "delete_jsonl",
    "delete_result_and_jsonl",
    "delete_run_dir",
    "delete_checkpoint",
])


def _write_run(run_dir, arm_overrides, seed, metrics):
  os.makedirs(os.path.join(run_dir, "checkpoints", "60"))
  cfg = config_lib.set_key(config_lib.apply_overrides(CFG, arm_overrides), "seed", seed)
  with open(os.path.join(run_dir, "config.json"), "w") as f:
    json.dump(config_lib.to_dict(cfg), f)
  rows = [
      {"step": 60, **{f"train/{k}": v for k, v in metrics.items() if k.endswith("loss")}},
      {
          "step": 60,
          **{f"eval/{k}": v for k, v in metrics.items() if not k.endswith("loss")},
          "eval/eval_s": 0.1,
      },
  ]
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump({"status": "finished", "step": 60, "metrics": metrics, "wall_s": 1.0}, f)


def _damage(run_dir, how):
  """Damages one run's files; what is already gone stays gone."""
  result, jsonl = os.path.join(run_dir, "result.json"), os.path.join(run_dir, "metrics.jsonl")
  rm = lambda path: os.path.exists(path) and os.remove(path)
  if how in ("delete_result", "delete_result_and_jsonl"):
    rm(result)
  if how in ("delete_jsonl", "delete_result_and_jsonl"):
    rm(jsonl)
  if how == "truncate_result" and os.path.exists(result):
    with open(result, "r+") as f:
      f.truncate(7)
  if how == "garbage_result":
    with open(result, "wb") as f:
      f.write(b"\xff\x00garbage")
  if how == "delete_run_dir":
    shutil.rmtree(run_dir)
  if how == "delete_checkpoint":
    shutil.rmtree(os.path.join(run_dir, "checkpoints"), ignore_errors=True)


def _values(summary):
  """{(arm, seed, metric): value} of a summary, from its metrics and its per-seed partial ones."""
  out = {}
  for arm in summary["arms"]:
    for k, m in arm["metrics"].items():
      for seed, v in zip(arm["seeds"], m["per_seed"]):
        out[(arm["name"], int(seed), k)] = v
    for k, by_seed in arm.get("partial", {}).items():
      for seed, v in by_seed.items():
        out[(arm["name"], int(seed), k)] = v
  return out


def _build_as_advised(exp_dir, arm_cfgs):
  """report.build, doing what its message says for a damaged result.json (exit 2, naming it,
  nothing changed): remove it, and build again (the run is rebuilt from its other files)."""
  for _ in range(20):
    before = {
        os.path.join(d, n): os.path.getmtime(os.path.join(d, n))
        for d, _, ns in os.walk(exp_dir)
        for n in ns
    }
    try:
      return report.build(exp_dir, EXP, arm_cfgs, figures=False)["summary_obj"]
    except files.DamagedFile as e:
      assert e.path.endswith("result.json") and "is damaged" in str(e), e
      after = {
          os.path.join(d, n): os.path.getmtime(os.path.join(d, n))
          for d, _, ns in os.walk(exp_dir)
          for n in ns
      }
      assert after == before  # refused before writing anything
      os.remove(e.path)
  raise AssertionError("the report kept refusing")


finite = st.floats(-1e3, 1e3, allow_nan=False)
FIRST_DAMAGE = (
    "delete_result",
    "truncate_result",
    "garbage_result",
    "delete_jsonl",
    "delete_checkpoint",
)


@pytest.mark.slow
@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    st.integers(1, 3),
    st.lists(st.tuples(finite, finite, finite), min_size=6, max_size=6),
    st.lists(damage, min_size=6, max_size=6),
    st.lists(damage, min_size=6, max_size=6),
)
def test_report_never_loses_a_metric_that_was_on_disk(n_seeds, values, first_damage, second_damage):

  with tempfile.TemporaryDirectory() as tmp:
    exp_dir = os.path.join(tmp, EXP.name)
    runs = [(arm, overrides, seed) for arm, overrides in EXP.arm_items() for seed in range(n_seeds)]
    for i, (arm, overrides, seed) in enumerate(runs):
      w1, ks, d_loss = values[i]
      _write_run(
          os.path.join(exp_dir, arm, f"seed{seed}"),
          overrides,
          seed,
          {"w1": w1, "ks": ks, "d_loss": d_loss},
      )
    on_disk = {
        (arm, seed, k): v
        for i, (arm, _, seed) in enumerate(runs)
        for k, v in zip(("w1", "ks", "d_loss"), values[i])
    }
    arm_cfgs = [
        (a, o, config_lib.apply_overrides(CFG, o), list(range(n_seeds))) for a, o in EXP.arm_items()
    ]
    # Damage before the first report: each run's values are still on disk in one of its files.
    for i, (arm, _, seed) in enumerate(runs):
      if first_damage[i] in FIRST_DAMAGE:
        _damage(os.path.join(exp_dir, arm, f"seed{seed}"), first_damage[i])
    first = _build_as_advised(exp_dir, arm_cfgs)
    seen = _values(first)
    # (plus the derived headline values)
    assert {k: v for k, v in seen.items() if k in on_disk} == on_disk
    # Then anything at all: every value the first report showed is still in the second, unless
    # its run directory is gone (a value is only reported for a run that exists on disk).
    unreadable = False
    for i, (arm, _, seed) in enumerate(runs):
      run_dir = os.path.join(exp_dir, arm, f"seed{seed}")
      had_result = os.path.exists(os.path.join(run_dir, "result.json"))
      _damage(run_dir, second_damage[i])
      unreadable |= second_damage[i] in ("delete_result_and_jsonl", "delete_run_dir") or (
          second_damage[i] == "delete_result"
          and had_result
          and not os.path.exists(os.path.join(run_dir, "metrics.jsonl"))
      )
    second = _build_as_advised(exp_dir, arm_cfgs)
    alive = {
        k: v for k, v in seen.items() if os.path.isdir(os.path.join(exp_dir, k[0], f"seed{k[1]}"))
    }
    assert _values(second) == alive, second_damage
    if unreadable:
      assert second["problems"]  # and it says what it could not read


# --- property: runs that do not belong together are never compared (issue 29: 1, 2, 3, 5) -----


def _garble_a_line(run_dir, rng):
  path = os.path.join(run_dir, "metrics.jsonl")
  with open(path) as f:
    lines = f.read().splitlines()
  lines.insert(
      rng.randrange(len(lines) + 1),
      rng.choice(['{"step": 3', "garbage", "[1, 2]", '{"step": "x"}']),
  )
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


@pytest.mark.slow
@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    st.integers(1, 4),
    st.lists(st.sampled_from([60, 60, 90]), min_size=8, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.integers(0, 3),
    st.integers(0, 2**31),
)
def test_report_never_compares_runs_that_do_not_belong_or_values_without_a_run(
    n_seeds, steps, garble, n_fake, seed
):

  rng = random.Random(seed)
  with tempfile.TemporaryDirectory() as tmp:
    exp_dir = os.path.join(tmp, EXP.name)
    runs = [(arm, overrides, s) for arm, overrides in EXP.arm_items() for s in range(n_seeds)]
    written = {}
    # some runs at another length (a mixture of commands)
    for i, (arm, overrides, s) in enumerate(runs):
      run_dir = os.path.join(exp_dir, arm, f"seed{s}")
      metrics = {"w1": rng.uniform(0, 1), "ks": rng.uniform(0, 1), "d_loss": rng.uniform(0, 1)}
      cfg = config_lib.set_key(config_lib.apply_overrides(CFG, overrides), "train.steps", steps[i])
      _write_run_at(run_dir, cfg, s, metrics)
      written[(arm, s)] = (steps[i], metrics)
      if garble[i]:
        _garble_a_line(run_dir, rng)
    arm_cfgs = [
        (a, o, config_lib.apply_overrides(CFG, o), list(range(n_seeds))) for a, o in EXP.arm_items()
    ]
    report.build(exp_dir, EXP, arm_cfgs, figures=False)
    if n_fake:  # made-up seeds in summary.json, far apart between the arms
      path = os.path.join(exp_dir, "summary.json")
      with open(path) as f:
        summary = json.load(f)
      for arm in summary["arms"]:
        arm["seeds"] += list(range(100, 100 + n_fake))
        for m in arm["metrics"].values():
          m["per_seed"] += [0.0 if arm["name"] == "minimax" else 9.0] * n_fake
      with open(path, "w") as f:
        json.dump(summary, f)
    summary = report.build(exp_dir, EXP, arm_cfgs, figures=False)["summary_obj"]
    belongs = {(a, s) for (a, s), (st_, _) in written.items() if st_ == 60}
    for arm in summary["arms"]:
      for s in arm["seeds"]:  # every reported run exists and was trained with the report's settings
        assert (arm["name"], s) in belongs
        assert (
            arm["metrics"]["w1"]["per_seed"][arm["seeds"].index(s)]
            == written[(arm["name"], s)][1]["w1"]
        )
      assert {(arm["name"], int(s)) for s in arm["other_configs"]} == {
          (a, s) for (a, s) in written if a == arm["name"] and (a, s) not in belongs
      }
    paired = sum(("ns", s) in belongs and ("minimax", s) in belongs for s in range(n_seeds))
    assert all(c["n"] == paired for c in summary["comparisons"])


def _write_run_at(run_dir, cfg, seed, metrics):
  steps = cfg.train.steps
  os.makedirs(os.path.join(run_dir, "checkpoints", str(steps)))
  with open(os.path.join(run_dir, "config.json"), "w") as f:
    json.dump(config_lib.to_dict(config_lib.set_key(cfg, "seed", seed)), f)
  rows = [
      {"step": steps, **{f"train/{k}": v for k, v in metrics.items() if k.endswith("loss")}},
      {"step": steps, **{f"eval/{k}": v for k, v in metrics.items() if not k.endswith("loss")}},
  ]
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  with open(os.path.join(run_dir, "result.json"), "w") as f:
    json.dump({"status": "finished", "step": steps, "metrics": metrics, "wall_s": 1.0}, f)
