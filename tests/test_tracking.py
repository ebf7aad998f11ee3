import os

import pytest

from gen_models import tracking


def test_mode_defaults_to_offline_without_a_key(monkeypatch, tmp_path):
  monkeypatch.delenv("WANDB_MODE", raising=False)
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
  assert tracking.resolve_mode(None) == "offline"
  assert tracking.resolve_mode("disabled") == "disabled"
  with pytest.raises(tracking.TrackingError, match="wandb login"):
    tracking.resolve_mode("online")  # would prompt for a key: refuse with instructions instead
  monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
  assert tracking.resolve_mode(None) == "online"
  monkeypatch.setenv("WANDB_MODE", "offline")
  assert tracking.resolve_mode(None) == "offline"


def test_offline_run_writes_jsonl_and_wandb_files(tmp_path, monkeypatch):
  monkeypatch.delenv("WANDB_MODE", raising=False)
  t = tracking.Tracker(
      str(tmp_path),
      "offline",
      project="gen-models-test",
      group="exp",
      job_type="arm",
      name="arm-seed0",
      config={"a": 1},
  )
  t.log(1, {"train/d_loss": 0.5})
  t.log(2, {"train/d_loss": float("nan")})
  t.summary({"w1": 0.1})
  t.finish()
  rows = tracking.read_jsonl(os.path.join(tmp_path, "metrics.jsonl"))
  assert rows[0] == {"step": 1, "train/d_loss": 0.5} and rows[1]["train/d_loss"] == "nan"
  assert any(d.startswith("offline-run-") for d in os.listdir(tmp_path / "wandb"))


def test_rewind_keeps_rows_up_to_the_checkpoint(tmp_path):
  t = tracking.Tracker(
      str(tmp_path), "disabled", project="p", group="g", job_type="a", name="n", config={}
  )
  for s in (10, 20, 30):
    t.log(s, {"x": s})
  t.rewind(20)
  t.log(30, {"x": 31})
  t.finish()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 40, "x"')  # a torn line from a killed process
  assert [r["x"] for r in tracking.read_jsonl(str(tmp_path / "metrics.jsonl"))] == [10, 20, 31]
