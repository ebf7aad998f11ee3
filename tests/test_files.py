"""gen_models.files: the validating reader, kind by kind and damage by damage (the commands that
meet each damage are tested in tests/system/test_damaged_state.py)."""

import json
import math
import os

import pytest

from gen_models import files

# One valid value per kind, and per kind of damage the edit that breaks it.
VALID = {
    "config": {"seed": 0, "data": {"name": "gaussian1d"}, "train": {"steps": 30}},
    "result": {
        "status": "finished",
        "step": 30,
        "metrics": {"w1": 0.1, "kl": float("nan")},
        "wall_s": 1.5,
        "cost": {"flops": 1.0},
        "extractors": {"ident": "abc"},
    },
    "summary": {"arms": [{"name": "ns", "seeds": [0, 1], "metrics": {"w1": {"per_seed": [1, 2]}}}]},
    "sweep": {"identity": {"ns/seed": 0}},
    "sequential": {
        "design": {
            "looks": [6, 7],
            "m": 1,
            "alpha": 0.05,
            "delta": 0.01,
            "levels": {"1": [0.03, 0.04]},
            "spent": {"1": 0.05},
        },
        "decisions": {"minimax": {"verdict": "better", "look": 0, "n": 6, "level": 0.03}},
        "metric": "w1",
    },
    "eval_noise": {"run": "ns/seed0", "step": 30, "std": {"w1": 0.002}},
}


def _set(path):
  def edit(v, value):
    *head, last = path
    for k in head:
      v = v[k]
    if value is _DELETE:
      del v[last]
    else:
      v[last] = value

  return edit


_DELETE = object()
# kind: (a required key, a typed field, a numeric field, a field where NaN is damage)
FIELDS = {
    "config": (("seed",), ("data",), ("seed",), ("seed",)),
    "result": (("status",), ("metrics",), ("wall_s",), ("step",)),
    "summary": (("arms",), ("arms",), ("arms", 0, "seeds", 0), ("arms", 0, "seeds", 0)),
    "sweep": (("identity",), ("identity",), ("identity",), ("identity",)),
    "sequential": (
        ("design",),
        ("design", "looks"),
        ("design", "alpha"),
        ("design", "levels", "1", 0),
    ),
    "eval_noise": (("std",), ("std",), ("step",), ("std", "w1")),
}
EDITS = {
    "missing key": lambda f: (f[0], _DELETE),
    "wrong type": lambda f: (f[1], "text" if f[1] != ("data",) else [1, 2]),
    "non-numeric string": lambda f: (f[2], "abc"),
    "NaN": lambda f: (f[3], float("nan")),
}


def _write(path, value):
  with open(path, "w") as f:
    json.dump(value, f)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_valid_file_reads_back_and_a_missing_one_is_none(tmp_path, kind):
  path = tmp_path / "f.json"
  _write(path, VALID[kind])
  got = files.read(str(path), kind)
  assert json.dumps(got, sort_keys=True) == json.dumps(VALID[kind], sort_keys=True)
  assert files.read(str(tmp_path / "nope.json"), kind) is None


@pytest.mark.parametrize("damage", sorted(EDITS))
@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_content_damage_is_named(tmp_path, kind, damage):
  if kind == "sweep" and damage == "NaN":
    pytest.skip("sweep.json holds no number: its identity is any JSON object")
  value = json.loads(json.dumps(VALID[kind]))
  field, new = EDITS[damage](FIELDS[kind])
  _set(field)(value, new)
  path = tmp_path / "f.json"
  _write(path, value)
  before = path.read_bytes()
  with pytest.raises(files.DamagedFile) as e:
    files.read(str(path), kind)
  assert str(path) in str(e.value) and "is damaged" in str(e.value)
  assert path.read_bytes() == before  # left as it is


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize(
    "damage", ["empty file", "not JSON", "a directory", "a symlink out of the tree", "a FIFO"]
)
def test_each_place_damage_is_named(tmp_path, kind, damage):
  tree = tmp_path / "exp" / "arm" / "seed0"
  tree.mkdir(parents=True)
  path = tree / "f.json"
  if damage == "empty file":
    path.write_text("")
  elif damage == "not JSON":
    path.write_bytes(b'{"status": "fini\xff')
  elif damage == "a directory":
    path.mkdir()
  elif damage == "a symlink out of the tree":
    outside = tmp_path / "elsewhere.json"
    _write(outside, VALID[kind])  # even a valid file: the tree's files are its own
    os.symlink(outside, path)
  else:
    os.mkfifo(path)
  with pytest.raises(files.DamagedFile) as e:
    files.read(str(path), kind, root=str(tmp_path / "exp"))
  assert str(path) in str(e.value)


def test_a_symlink_inside_the_tree_is_followed(tmp_path):
  (tmp_path / "exp" / "a").mkdir(parents=True)
  _write(tmp_path / "exp" / "a" / "real.json", VALID["result"])
  os.symlink(tmp_path / "exp" / "a" / "real.json", tmp_path / "exp" / "a" / "result.json")
  got = files.read(
      str(tmp_path / "exp" / "a" / "result.json"), "result", root=str(tmp_path / "exp")
  )
  assert got["step"] == 30 and math.isnan(got["metrics"]["kl"])


def test_a_diverged_result_needs_no_metrics_but_a_finished_one_does(tmp_path):
  path = tmp_path / "r.json"
  _write(path, {"status": "diverged", "step": 12, "metrics": {}})
  assert files.read(str(path), "result")["step"] == 12
  _write(path, {"status": "finished", "step": 12})
  with pytest.raises(files.DamagedFile, match="metrics is missing"):
    files.read(str(path), "result")
  _write(path, {"status": "done", "step": 12, "metrics": {}})
  with pytest.raises(files.DamagedFile, match="status is 'done'"):
    files.read(str(path), "result")
