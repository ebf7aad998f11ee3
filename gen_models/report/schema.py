"""The shape of summary.json as typed records: what docs/summary.md writes down, and what
tests/test_docs.py checks that page and every committed summary against. Fields are only ever
added, never renamed; a field that only some summaries have is marked optional in the page."""

from typing import Optional, TypedDict


class Metric(TypedDict):
  mean: float
  std: float  # the sample std over seeds (ddof 1)
  per_seed: list


class Arm(TypedDict, total=False):
  name: str
  overrides: dict
  seeds: list  # the finished runs reported (same settings, run on disk)
  metrics: dict  # {metric: Metric}
  partial: dict  # {metric: {seed: value}}: metrics some seeds lack
  status: dict  # {seed: finished | diverged | running | interrupted | missing}
  diverged: list
  recovered: dict  # {seed: "metrics.jsonl" | "summary.json"}
  other_configs: dict  # {seed: [why its settings differ]}
  wall_s: float


class Comparison(TypedDict, total=False):
  arm: str
  baseline: str
  metric: str
  lower_is_better: bool
  headline: str
  role: str  # primary | secondary
  n: int
  seeds: list
  diffs: list
  mean_diff: float
  ci_low: Optional[float]
  ci_high: Optional[float]
  level: float
  p: float
  p_holm: float
  verdict: str
  diverged: dict
  divergence_p: float
  per_extractor: list
  every_extractor: bool
  design_look: int  # seeds on demand: the look the design decided (or last tested) at


class Sequential(TypedDict):
  design: dict
  metric: str
  look: Optional[int]
  decisions: dict
  open: list
  stop: Optional[str]
  described: str


class Summary(TypedDict, total=False):
  experiment: str
  description: str
  family: str
  command: str
  generated: str
  protocol: dict
  columns: list
  headline_k: int
  floors: dict
  extractors: Optional[dict]
  eval_noise: Optional[dict]
  problems: list
  sequential: Optional[Sequential]
  built_from: list  # the runner's status@step of each run: tells a sweep's workers it is current
  arms: list  # [Arm]
  comparisons: list  # [Comparison]
