"""The command line: --list, bad input fails fast with a clear message, the end-to-end sweep."""

import json
import os
import subprocess
import sys
import sys as sys_

import pytest

import experiments
from experiments import design_loop
from experiments import planning
from experiments import registry
from experiments.commands import run
from gen_models import report
from gen_models.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--set",
    "train.steps=60",
    "--set",
    "train.scan_chunk=10",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=30",
    "--set",
    "eval.num_samples=2000",
    "--set",
    "eval.kl_samples=500",
    "--set",
    "ckpt.every=30",
    "--wandb",
    "disabled",
    "--quiet",
]


def test_list_names_every_required_experiment(capsys):
  assert run.main(["--list"]) == 0
  out = capsys.readouterr().out
  for name in ("gaussian1d", "gaussian1d_label_smoothing", "gaussian1d_loss"):
    assert name in out
  assert set(registry.names()) <= set(line.split()[0] for line in out.splitlines())


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--exp=gaussian1dd"], "Unknown experiment 'gaussian1dd'. Did you mean gaussian1d"),
        (["--exp=gaussian1d", "--set", "train.stepz=5"], "Unknown config key 'train.stepz'"),
        (
            ["--exp=gaussian1d", "--set", "train.steps=five"],
            "'train.steps': 'five' is not an integer",
        ),
        (["--exp=gaussian1d", "--set", "optim.d_lr=-1"], "'optim.d_lr'"),
        (["--exp=gaussian1d", "--set", "loss.generator=wgan"], "Allowed: ns, minimax"),
        (["--exp=gaussian1d", "--set", "steps"], "expected key=value"),
        (["--exp=gaussian1d_loss", "--arms", "ns,hinge"], "Unknown arm(s) hinge"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(argv, fragment, capsys, tmp_path):
  assert run.main(argv + ["--out", str(tmp_path), "--wandb", "disabled"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and fragment in err
  assert not os.listdir(tmp_path)  # nothing was created


@pytest.mark.slow
def test_bad_input_exit_code_from_a_real_process(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.run", "--exp=nope", "--out", str(tmp_path)],
      capture_output=True,
      text=True,
      cwd=ROOT,
      timeout=120,
  )
  assert out.returncode == 2 and "Unknown experiment 'nope'" in out.stderr
  assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_sweep_end_to_end_and_no_overwrite(tmp_path, capsys, figures):
  argv = ["--exp=gaussian1d_label_smoothing", "--seeds", "2", "--out", str(tmp_path)] + TINY
  assert run.main(argv) == 0
  exp_dir = tmp_path / "gaussian1d_label_smoothing"
  summary = json.loads((exp_dir / "summary.json").read_text())
  assert summary["experiment"] == "gaussian1d_label_smoothing"
  assert [a["name"] for a in summary["arms"]] == ["none", "one_sided", "two_sided"]
  for arm in summary["arms"]:
    assert arm["seeds"] == [0, 1] and arm["wall_s"] > 0
    for key in ("w1", "ks", "kl", "kl_floor", "mean", "std", "skew", "kurtosis", "d_loss"):
      m = arm["metrics"][key]
      assert len(m["per_seed"]) == 2 and m["mean"] == pytest.approx(sum(m["per_seed"]) / 2)
  assert summary["arms"][1]["overrides"] == {"loss.real_target": 0.9, "loss.fake_target": 0.0}
  report = (exp_dir / "report.md").read_text()
  # The floor row shows the seed KL's sampling floor in the KL column (not just any "0.2").
  lines = report.splitlines()
  header = next(l for l in lines if l.startswith("| arm | seeds |")).split("|")
  floor_row = next(l for l in lines if "floor (perfect G)" in l).split("|")
  kl_cell = floor_row[[c.strip() for c in header].index("hist. KL (seed) ↓")].strip().strip("*")
  kl_floor = summary["arms"][0]["metrics"]["kl_floor"]["mean"]
  assert float(kl_cell) == pytest.approx(kl_floor, abs=1e-4) and 0.1 < kl_floor < 0.6
  for png in ("curves.png", "final.png", "densities.png"):
    assert (exp_dir / png).stat().st_size > 10_000
  run_dir = exp_dir / "none" / "seed1"
  for name in (
      "config.json",
      "metrics.jsonl",
      "result.json",
      "samples/density.png",
      "samples/curves.png",
  ):
    assert (run_dir / name).exists(), name
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["30", "60"]

  # Running again into the same place without --resume refuses and changes nothing.
  before = {p: p.stat().st_mtime_ns for p in exp_dir.rglob("*") if p.is_file()}
  capsys.readouterr()
  assert run.main(argv) == 2
  assert "already holds a run" in capsys.readouterr().err
  assert before == {
      p: p.stat().st_mtime_ns for p in exp_dir.rglob("*") if p.is_file() and p in before
  }
  # --resume skips the finished runs.
  assert run.main(argv + ["--resume"]) == 0
  assert capsys.readouterr().out.count("finished earlier, skipped") == 6


def test_a_broken_experiment_file_is_an_error_not_a_shorter_list(monkeypatch):

  monkeypatch.setitem(sys_.modules, "experiments.images", None)  # as if images.py failed to import
  monkeypatch.delattr(experiments, "images", raising=False)
  with pytest.raises(ImportError, match="experiments.images"):
    run.main(["--list"])
  assert run.main(["--exp=dcgan", "--summary"]) == 1  # the import error, not "Unknown experiment"


def test_an_experiment_compares_with_the_baseline_it_names():
  # the seed's latent size, not the first arm
  assert registry.get("dcgan_latent").baseline_arm() == "z100"
  with pytest.raises(ConfigError, match="baseline 'z7' is not one of its arms"):
    registry.Experiment(
        "x", "x", registry.get("gaussian1d").config, (("a", {}), ("b", {})), baseline="z7"
    )

  exp = registry.Experiment(
      "x", "x", registry.get("gaussian1d").config, (("a", {}), ("b", {}), ("c", {})), baseline="c"
  )
  w1 = {"a": [0.10, 0.20, 0.30], "b": [0.5, 0.5, 0.7], "c": [0.0, 0.1, 0.1]}
  summary = {
      "family": "gan1d",
      "arms": [
          {
              "name": n,
              "seeds": [0, 1, 2],
              "metrics": {"w1_last3": {"per_seed": v}, "ks_last3": {"per_seed": v}},
          }
          for n, v in w1.items()
      ],
  }
  comps = [c for c in report.comparisons(summary, exp, 3) if c["metric"] == "w1"]
  assert [(c["arm"], c["baseline"]) for c in comps] == [("a", "c"), ("b", "c")]
  assert comps[0]["mean_diff"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)  # a - c, seed by seed


CARD_SWEEPS = (
    "dcgan_label_smoothing",
    "dcgan_loss",
    "dcgan_latent",
    "dcgan_losses",
    "dcgan_critic_steps",
    "dcgan_stabilisers",
)


@pytest.mark.parametrize("name", CARD_SWEEPS)
def test_the_card_sweeps_default_to_the_book_protocol_and_a_reachable_design(name):
  exp = registry.get(name)
  args = design_loop.resolve_design_flags(exp, run.parse_args([f"--exp={name}"]))
  assert args.until_decided and (args.seeds, args.seed_batch, args.max_seeds) == (11, 5, 21)
  arm_cfgs = planning.build_configs(exp, [], args.seeds, args.arms)
  cfg = arm_cfgs[0][2]
  assert (cfg.train.steps, cfg.train.batch_size, cfg.eval.every) == (4000, 32, 500)
  design, _ = design_loop.design_of(exp, arm_cfgs, args)
  m = len(exp.arm_items()) - 1
  assert design.looks == (11, 16, 21) and design.m == m
  # Every look can give a verdict: with all n seeds of one sign the exact two-sided sign-flip p
  # is 2 / 2^n (textbook), below Holm's first-step level there (the first look is the tightest).
  assert 2 / 2**11 < design.levels[m][0] / m
  assert all("a verdict is possible" in line for line in design_loop.reachable_lines(design))
  # The seed's own length is one flag away.
  long = planning.build_configs(exp, [], 3, None, "epochs")[0][2]
  assert (long.train.steps, long.eval.every) == (9375, 1000)


def test_seeds_alone_is_a_fixed_number_and_no_until_decided_turns_the_default_off():
  exp = registry.get("dcgan_loss")
  fixed = design_loop.resolve_design_flags(
      exp, run.parse_args(["--exp=dcgan_loss", "--seeds", "7"])
  )
  assert not fixed.until_decided and fixed.seeds == 7
  off = design_loop.resolve_design_flags(
      exp, run.parse_args(["--exp=dcgan_loss", "--no-until-decided"])
  )
  assert not off.until_decided and off.seeds is None  # the config's seeds
  start = design_loop.resolve_design_flags(
      exp, run.parse_args(["--exp=dcgan_loss", "--until-decided", "--seeds", "7"])
  )
  assert start.until_decided and start.seeds == 7 and start.max_seeds == 21
  plain = registry.get(
      "gaussian1d_loss"
  )  # declares no design: fixed seeds, the old flags' defaults
  args = design_loop.resolve_design_flags(plain, run.parse_args(["--exp=gaussian1d_loss"]))
  assert not args.until_decided and (args.seed_batch, args.max_seeds) == (2, 20)


def test_summary_shows_the_protocol_and_the_design(capsys):
  argv = ["--exp=dcgan_label_smoothing", "--set", "data.name=synthetic", "--summary"]
  assert run.main(argv) == 0
  out = capsys.readouterr().out
  assert "protocol: 4,000 steps x 32; evaluated every 500 steps" in out
  assert "those at 3,000, 3,500, 4,000" in out
  assert "3 looks at 11, 16, 21 seeds per arm" in out
  assert "look 1 (11 seeds per arm): smallest possible p 0.00098" in out
  assert "no better/worse verdict possible" not in out
  assert "--protocol epochs" in out
  assert run.main(argv + ["--seeds", "3"]) == 0
  assert "every one reads no difference" in capsys.readouterr().out  # 3 seeds cannot decide


def test_an_unknown_protocol_names_the_known_ones(capsys):
  assert run.main(["--exp=dcgan_loss", "--protocol", "long", "--summary"]) == 2
  err = capsys.readouterr().err
  assert "'long'" in err and "epochs" in err
