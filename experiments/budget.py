"""Arms matched on compute, not steps (train.budget_unit): every arm of a sweep gets the baseline
arm's budget, `train.steps` of the baseline times its per-step cost in the unit (D updates, real
images D trains on, or training FLOPs from XLA's cost analysis of the lowered step), so an arm that
costs more per step trains fewer steps. Each arm keeps the baseline's number of evaluation
intervals, so its evaluations (and the late window its headline averages) fall at the same
fractions of the budget, and the paired verdict compares the arms at equal cost."""

import functools
import json

import jax

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from gen_models.config import ConfigError


@functools.lru_cache(maxsize=64)
def _per_step(cfg_json: str, unit: str) -> float:

  cfg = config_lib.from_dict(json.loads(cfg_json))
  data = data_lib.load(cfg, log=lambda s: None)
  task = families.make_task(cfg, data, jax.random.key(0))
  if unit != "flops":
    if unit not in task.cost_per_step:
      raise ConfigError(
          f"train.budget_unit={unit}: {families.of(cfg).name} runs count no {unit} (they count"
          f" {', '.join(task.cost_per_step) or 'nothing'}); use flops or g_steps."
      )
    return float(task.cost_per_step[unit])
  run = loop.Run(task, cfg, jax.device_put(dict(data["train"])), jax.random.key(0), tracker=None)
  flops = loop.step_flops(run, task.init(jax.random.key(1)), 0)
  if not flops:
    raise ConfigError(
        "train.budget_unit=flops: this backend gives no FLOP estimate for the step; use"
        " d_updates or real_images."
    )
  return flops


def per_step(cfg, unit: str) -> float:
  """One training step's cost in `unit` (1 for g_steps)."""
  if unit == "g_steps":
    return 1.0
  return _per_step(json.dumps(config_lib.to_dict(cfg), sort_keys=True), unit)


def match(exp, arm_cfgs):
  """arm_cfgs with every arm's train.steps, eval.every and ckpt.every derived from the baseline's
  budget in its train.budget_unit, and [(arm, cost per step, steps, budget)] for printing (empty
  for g_steps)."""
  units = {cfg.train.budget_unit for _, _, cfg, _ in arm_cfgs}
  if units == {"g_steps"}:
    return arm_cfgs, []
  if len(units) > 1:
    raise ConfigError(f"train.budget_unit differs between arms ({sorted(units)}); give one.")
  (unit,) = units
  by_arm = {arm: cfg for arm, _, cfg, _ in arm_cfgs}
  base_arm = exp.baseline_arm()
  if base_arm not in by_arm:
    raise ConfigError(
        f"train.budget_unit={unit} gives every arm the budget of the baseline '{base_arm}', which"
        " --arms leaves out. Add it to --arms."
    )
  base = by_arm[base_arm]
  if base.eval.every <= 0 or base.train.steps % base.eval.every:
    raise ConfigError(
        f"train.budget_unit={unit} places every arm's evaluations at the baseline's fractions of"
        f" the budget: train.steps ({base.train.steps}) must be a multiple of eval.every"
        f" ({base.eval.every}) > 0."
    )
  intervals = base.train.steps // base.eval.every
  ckpt_per_eval = max(1, base.ckpt.every // base.eval.every) if base.ckpt.every else 0
  budget = per_step(base, unit) * base.train.steps
  out, info = [], []
  for arm, overrides, cfg, seeds in arm_cfgs:
    cost = per_step(cfg, unit)
    every = max(1, round(budget / cost / intervals))
    steps = every * intervals
    cfg = config_lib.apply_overrides(
        cfg,
        {"train.steps": steps, "eval.every": every, "ckpt.every": every * ckpt_per_eval},
    )
    out.append((arm, overrides, cfg, seeds))
    info.append((arm, cost, steps, cost * steps))
  return out, info


def describe(unit: str, info, baseline: str) -> list:
  """Lines stating the common budget and each arm's derived length."""
  if not info:
    return []
  budget = dict((arm, total) for arm, _, _, total in info)[baseline]
  lines = [
      f"arms matched on {unit} (train.budget_unit): a budget of {budget:,.4g} {unit} (the"
      f" baseline {baseline}'s), each arm's steps derived from its cost per step"
  ]
  for arm, cost, steps, total in info:
    lines.append(
        f"  {arm}: {cost:,.4g} {unit} per step x {steps:,} steps = {total:,.4g} {unit}"
        f" ({total / budget:.3f} of the budget)"
    )
  return lines
