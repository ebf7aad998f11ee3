"""When two configs count as the same: the four questions the project asks, in one place.

- `protocol(cfg)`: do two runs' results belong in one table? Every key but EXECUTION_KEYS, the
  keys that change how a run executes and never what it computes (bit-identical either way).
  Used by the report (gen_models.report.collect) to pool runs and to show the others apart.
- `resume_diff(saved, new)`: may this command resume that saved run? Every key but
  RESUMABLE_CHANGES must match (experiments.planning).
- `sweep_identity(arm_cfgs)`: are two commands workers of one sweep? Every arm's config but its
  seeds (written to sweep.json by the first worker: gen_models.rundir.join_sweep).
- `compile_key(cfg)`: may two runs share one compiled program (a vmapped group)? The same step
  function and the same config apart from the values the family traces (experiments.runner).
"""

import json

from gen_models import config as config_lib
from gen_models import families

# Keys that change how a run executes, never what it computes: runs that differ only in them
# belong together.
EXECUTION_KEYS = (
    "seed",
    "seeds",
    "version",
    "train.scan_chunk",
    "train.vmap_runs",
    "ckpt.every",
    "ckpt.keep",
)

# Keys a resumed run may change: training longer continues the same trajectory, and so does
# training it vectorised or not (train.vmap_runs, e.g. auto on a GPU, then resumed on a CPU).
RESUMABLE_CHANGES = ("train.steps", "train.vmap_runs")


def protocol(cfg) -> dict:
  """What a run's results depend on, apart from its seed: every key but EXECUTION_KEYS."""
  return {k: v for k, v in config_lib.flatten(cfg).items() if k not in EXECUTION_KEYS}


def resume_diff(saved: dict, new: dict) -> list[str]:
  """Why a saved run's config (a dict) cannot be resumed by `new` ([] if it can)."""
  a = config_lib.flatten(config_lib.from_dict(saved))
  b = config_lib.flatten(config_lib.from_dict(new))
  return [
      f"{k}: {a[k]!r} (saved) vs {b[k]!r} (now)"
      for k in a
      if a[k] != b[k] and k not in RESUMABLE_CHANGES
  ]


def sweep_identity(arm_cfgs) -> dict:
  """What workers of one sweep must agree on: every arm's config except its seeds."""
  out = {}
  for arm, _, cfg, _ in arm_cfgs:
    for k, v in config_lib.flatten(cfg).items():
      if k not in ("seed", "seeds"):
        out[f"{arm}/{k}"] = v
  return json.loads(json.dumps(out, default=str))


def identity_arms(identity: dict) -> dict:
  """sweep_identity's inverse: {arm: {key: value}} of a sweep.json's identity."""
  out = {}
  for k, v in identity.items():
    arm, _, key = k.partition("/")
    out.setdefault(arm, {})[key] = v
  return out


def compile_key(cfg):
  """Runs with equal keys share a compiled program: the same step function and the same config
  apart from the values the family traces (gen_models.families)."""
  family = families.of(cfg)
  static = cfg
  for key in family.traced_keys(cfg):
    static = config_lib.set_key(static, key, config_lib.get(config_lib.Config(), key))
  return static, family.step(cfg)
