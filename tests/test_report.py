"""gen_models/report/: which settings a sweep's arms are reported under."""

import json
import os

from experiments import planning
from experiments import registry
from gen_models import equivalence
from gen_models import rundir
from gen_models.report import collect


def test_a_rebuild_reports_under_the_last_commands_settings_from_sweep_json(tmp_path):
  exp = registry.get("gaussian1d_loss")
  last = planning.build_configs(exp, ["train.steps=300"], 2, None)
  other = planning.build_configs(exp, ["train.steps=200"], 1, None)
  exp_dir = str(tmp_path / exp.name)
  os.makedirs(exp_dir)
  sweep = rundir.ExpPaths(exp_dir).sweep
  rundir.write_atomic(sweep, json.dumps({"identity": equivalence.sweep_identity(last)}))
  # most runs on disk were trained with other settings: the vote alone would pick those
  disk = [(o, c) for _, o, c, _ in other] * 3 + [(o, c) for _, o, c, _ in last]
  refs, base = collect.reference_configs(exp, collect.sweep_configs(exp_dir, exp), None, disk)
  assert base["train.steps"] == 300 and {c.train.steps for c in refs.values()} == {300}
  assert {a: c.loss.generator for a, c in refs.items()} == {"ns": "ns", "minimax": "minimax"}
  os.remove(sweep)  # no sweep.json (and no previous summary): the settings most runs share
  refs, base = collect.reference_configs(exp, collect.sweep_configs(exp_dir, exp), None, disk)
  assert base["train.steps"] == 200 and {c.train.steps for c in refs.values()} == {200}
  with open(sweep, "w") as f:
    f.write("{not json")  # damaged: the fallback, never an error
  assert collect.sweep_configs(exp_dir, exp) == []
