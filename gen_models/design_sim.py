"""Simulated sweeps run through a sequential design's own decision functions: the error rates
docs/metrics.md states and tests/test_sequential.py checks.

A simulated sweep has a baseline and m arms, `seeds` per arm at the design's last look. Seed k of
every arm shares a seed effect (it cancels in the paired differences, as common random numbers do
in a real sweep); each run adds its arm's effect and its own noise of one kind (sequential.draw:
normal, t3 or log-normal, sd 1), and diverges with its arm's probability (its value is lost). At
each look the differences are sequential.look_diffs_many (a diverged run is the worst outcome),
the p-values sequential.sign_flip_p_many (design_p, vectorised) and the decisions
sequential.step_down: the rule decide applies. Equivalence is left out here: an equivalence
verdict closes a comparison without freeing any level for the others, so it can only lower the
rate of false better/worse verdicts measured without it.
"""

import math

import numpy as np

from gen_models import sequential


def sweep_values(effects, seeds, kind="normal", diverge=None, sims=8000, seed=0) -> np.ndarray:
  """(1 + arms, sims, seeds) run values of simulated sweeps, row 0 the baseline, NaN where a run
  diverged (the seed effect, shared by a seed's runs, is left out: it cancels in every pair).
  kind "<noise> differences" (e.g. "lognormal differences"): a noiseless baseline, so each
  paired difference carries one draw of the noise (right-skewed for log-normal: the arm changes
  the shape of the distribution, not its mean, a null the sign-flip test does not cover)."""
  rng = np.random.default_rng(seed)
  values = sequential.draw(rng, kind.removesuffix(" differences"), (len(effects) + 1, sims, seeds))
  if kind.endswith(" differences"):  # the noise in the differences themselves (skewed stays so)
    values[0] = 0.0
  values += np.concatenate([[0.0], effects])[:, None, None]
  for who, prob in (diverge or {}).items():
    row = 0 if who == "baseline" else who + 1
    values[row][rng.random((sims, seeds)) < prob] = np.nan
  return values


def simulate(design, effects, kind="normal", diverge=None, sims=8000, seed=0) -> dict:
  """Runs `sims` sweeps of len(effects) arms against one baseline through `design` (lower is
  better). effects: each arm's true mean difference in noise sds (0 = no difference); diverge:
  {arm index or "baseline": probability a run diverges}. Returns per arm the share of sweeps
  calling it "better" / "worse" and the look it was decided at, plus "false": the share with a
  better/worse verdict on some arm whose effect is 0 (the family-wise error over the true
  nulls), and "looks_reached": the share of sweeps still open at each look."""
  m, looks = len(effects), design.looks
  diverge = diverge or {}
  values = sweep_values(effects, looks[-1], kind, diverge, sims, seed)
  verdict = np.zeros((sims, m), np.int8)  # 0 open, -1 better, +1 worse
  open_at = np.zeros(len(looks))
  for k, n in enumerate(looks):
    live = (verdict == 0).any(axis=1)
    open_at[k] = live.mean()
    p = np.full((sims, m), np.inf)  # a decided comparison is never tested again
    diffs = []
    for j in range(m):
      d = sequential.look_diffs_many(values[j + 1, :, :n], values[0, :, :n], True)
      diffs.append(d)
      p[:, j] = np.where(verdict[:, j] == 0, sequential.sign_flip_p_many(d), np.inf)
    unrejected = m - (verdict != 0).sum(axis=1)
    rejected, _ = sequential.step_down(p, design, k, unrejected)
    for j in range(m):
      new = rejected[:, j] & (verdict[:, j] == 0) & live
      verdict[new, j] = np.where(diffs[j][new].mean(axis=1) < 0, -1, 1)
  # a true null: no effect and the baseline's chance of diverging (diverging more is a difference)
  null = np.array([
      e == 0 and diverge.get(j, 0.0) == diverge.get("baseline", 0.0) for j, e in enumerate(effects)
  ])
  return {
      "false": float(np.mean((verdict[:, null] != 0).any(axis=1))) if null.any() else 0.0,
      "better": (verdict == -1).mean(axis=0).tolist(),
      "worse": (verdict == 1).mean(axis=0).tolist(),
      "looks_reached": open_at.tolist(),
      "verdicts": verdict,
      "sims": sims,
      "mc_error": 2 * math.sqrt(design.alpha * (1 - design.alpha) / sims),
  }


# The grid a design's error rate is checked on: 1-4 comparisons x three kinds of run noise
# (normal, t3, log-normal with sigma 1: skewed runs, symmetric heavy-tailed paired differences)
# x every arm null, or real arms (d_z 0.8) beside null ones.
KINDS = ("normal", "t3", "lognormal")
REAL = 0.8


def grid_cells(max_m: int = 4) -> list:
  """[(name, effects)] of the grid: all-null for 1..max_m comparisons, and for 2..max_m one null
  arm beside m - 1 real ones."""
  cells = [(f"{m} null", [0.0] * m) for m in range(1, max_m + 1)]
  cells += [(f"1 null beside {m - 1} real", [REAL] * (m - 1) + [0.0]) for m in range(2, max_m + 1)]
  return cells


def grid(looks, max_m=4, sims=8000, seed=0) -> list:
  """The realised false-verdict rate in every cell of the grid, for the design of these looks
  with max_m comparisons (a cell with fewer arms uses the design calibrated for that many)."""
  out = []
  for name, effects in grid_cells(max_m):
    design = sequential.calibrate(tuple(looks), len(effects))
    for kind in KINDS:
      r = simulate(design, effects, kind, sims=sims, seed=seed)
      out.append({"cell": name, "m": len(effects), "kind": kind, "rate": r["false"], **r})
      seed += 1
  return out


def equivalence_rate(design, delta, sd, kind="lognormal", sims=2000, seed=0, true=None) -> float:
  """The share of sweeps of one comparison with true mean difference `true` (default +delta, the
  margin itself: there equivalence is false) that the design calls "equivalent within +-delta":
  paired differences true + sd * noise, right-skewed for "lognormal" (the tail away from 0, the case
  that fools a symmetric test), looks and levels as decide (step_down, then `equivalent`)."""
  d = (delta if true is None else true) + sd * sequential.draw(
      np.random.default_rng(seed), kind, (sims, design.looks[-1])
  )
  state = np.zeros(sims, np.int8)  # 0 open, 1 better/worse, 2 equivalent
  for k, n in enumerate(design.looks):
    live = np.flatnonzero(state == 0)
    x = d[live, :n]
    rejected, level = sequential.step_down(
        sequential.sign_flip_p_many(x)[:, None], design, k, np.full(len(live), design.m)
    )
    state[live[rejected[:, 0]]] = 1
    rest = ~rejected[:, 0]
    eq = sequential.equivalent(x[rest], delta, level[rest, 0])
    state[live[rest][eq]] = 2
  return float(np.mean(state == 2))
