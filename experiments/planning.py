"""What a command will run, checked before anything trains: the arms' configs, every run
directory's plan (new, resume or skip, under the resume rules of gen_models.equivalence), the data
each arm needs and every path it will write."""

import os
import time

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import equivalence
from gen_models import families
from gen_models import files
from gen_models import rundir
from gen_models.config import ConfigError
from gen_models.errors import RunError
from gen_models.metrics import features


def build_configs(exp, sets: list[str], seeds_flag, arms_flag, protocol=None):
  """[(arm, overrides, cfg, seeds)] for every arm, validated before anything runs; `protocol`
  names one of the experiment's protocols, applied under --set."""

  pairs = [config_lib.parse_assignment(s) for s in sets]
  cli = dict(pairs)
  twice = sorted(k for k in cli if sum(key == k for key, _ in pairs) > 1)
  if twice:
    given = "; ".join(
        f"{k}: " + ", ".join(config_lib.short(v) for key, v in pairs if key == k) for k in twice
    )
    raise ConfigError(
        f"{', '.join(twice)} set more than once with --set ({given}). Give each key once."
    )
  base = exp.config
  if protocol:
    base = config_lib.apply_overrides(base, exp.protocol(protocol))
  base = config_lib.apply_overrides(base, cli)
  if seeds_flag is not None:
    base = config_lib.set_key(base, "seeds", seeds_flag)
  arm_items = exp.arm_items()
  if arms_flag is not None:
    wanted = [a.strip() for a in arms_flag.split(",") if a.strip()]
    known = [a for a, _ in arm_items]
    if not wanted:
      raise ConfigError(
          f"--arms is empty; give a comma-separated subset of {', '.join(known)}, or leave "
          "--arms out to run them all."
      )
    unknown = [a for a in wanted if a not in known]
    if unknown:
      raise ConfigError(
          f"Unknown arm(s) {', '.join(config_lib.short(a, quote=False) for a in unknown)} for"
          f" {exp.name}; its arms are {', '.join(known)}."
      )
    arm_items = [(a, o) for a, o in arm_items if a in wanted]
  out = []
  for arm, overrides in arm_items:
    clash = sorted(set(cli) & set(overrides))
    if clash:
      print(
          f"note: {', '.join(clash)} is set by arm '{arm}' of this sweep; the arm's value is used."
      )
    cfg = families.validate(config_lib.apply_overrides(base, overrides))
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    out.append((arm, dict(overrides), cfg, seeds))
  return out


def _run_dir(out, exp_name, arm, seed):
  return rundir.ExpPaths.of(out, exp_name).run(arm, seed).dir


def _steps_reached(run_dir, result) -> int:
  """The furthest step a run has on disk: its checkpoints and its result.json."""
  steps = rundir.RunPaths(run_dir).checkpoint_steps()
  if result and isinstance(result.get("step"), int) and result.get("status") == "finished":
    steps.append(result["step"])
  return max(steps, default=0)


def plan_runs(exp, arm_cfgs, out, resume):
  """Checks every run directory before anything trains. Returns [(arm, cfg, seed, run_dir, action)]
  with action in {"new", "resume", "skip"}."""
  plan = []
  for arm, _, cfg, seeds in arm_cfgs:
    for seed in seeds:
      run_cfg = config_lib.set_key(config_lib.set_key(cfg, "seed", seed), "seeds", 1)
      run_dir = _run_dir(out, exp.name, arm, seed)
      if not rundir.holds_files(run_dir):
        plan.append((arm, run_cfg, seed, run_dir, "new"))
        continue
      if not resume:
        raise RunError(
            f"{run_dir} already holds a run. Nothing was changed. To continue it (and "
            "skip finished runs) add --resume; to start afresh pick another --out "
            f"directory (e.g. --out runs_{time.strftime('%Y%m%d_%H%M%S')})."
        )
      saved = files.read(rundir.RunPaths(run_dir).config, "config")  # damaged: exit 2
      if saved is None:
        raise RunError(
            f"{run_dir} exists but has no readable config.json (missing, damaged or not a JSON "
            "object), so it cannot be resumed safely. Nothing was changed. Move it away or pick "
            "another --out directory."
        )
      try:
        diff = equivalence.resume_diff(saved, config_lib.to_dict(run_cfg))
      except (ConfigError, TypeError, ValueError, AttributeError) as e:
        raise RunError(
            f"{run_dir}: its config.json cannot be read as a config ({e}). Nothing was changed. "
            "Move it away or pick another --out directory."
        ) from None
      if diff:
        raise RunError(
            f"--resume: the config of {run_dir} differs from this command's:\n  "
            + "\n  ".join(diff)
            + "\nUse the original settings to resume, or pick "
            "another --out directory for the new ones."
        )
      result = files.read(rundir.RunPaths(run_dir).result, "result")  # damaged: exit 2
      reached = _steps_reached(run_dir, result)
      if reached > run_cfg.train.steps:
        raise RunError(
            f"--resume: {run_dir} is trained to step {reached}, beyond this command's"
            f" train.steps={run_cfg.train.steps}; a run is never shortened (its checkpoints and"
            " metrics are of the longer run). Nothing was changed. Resume with train.steps >="
            f" {reached}, or pick another --out directory for the shorter protocol."
        )
      done = result is not None and (
          result.get("status") == "diverged"
          or (result.get("status") == "finished" and result.get("step") == run_cfg.train.steps)
      )
      plan.append((arm, run_cfg, seed, run_dir, "skip" if done else "resume"))
  return plan


def preflight(arm_cfgs):
  """Loads every arm's dataset and checks what needs the data (batch size vs training set, a test
  split for image metrics), before anything is compiled or written. Raises DataError/ConfigError."""

  for arm, _, cfg, _ in arm_cfgs:
    data = data_lib.load(cfg)
    n = len(data["train"]["x"])
    if cfg.train.batch_size > n:
      raise ConfigError(
          f"'train.batch_size'={cfg.train.batch_size} (arm {arm}) is larger than the "
          f"{cfg.data.name} training set ({n} examples). Lower train.batch_size."
      )
    if families.of(cfg).needs_test(cfg) and "test" not in data:
      raise data_lib.DataError(f"{cfg.data.name} has no test split, which the evaluation needs.")
    n_test = len(data["test"]["x"]) if "test" in data else 0
    if families.of(cfg).scores_images(cfg) and n_test < config_lib.MIN_EVAL_SAMPLES_IMAGES:
      raise data_lib.DataError(
          f"the {cfg.data.name} test split{f' in {cfg.data.dir}' if cfg.data.dir else ''} has"
          f" {n_test} images, but the image metrics compare at least"
          f" {config_lib.MIN_EVAL_SAMPLES_IMAGES} generated images with as many test images (FID's"
          " 128-d covariance needs more samples than dimensions). Give a data.dir with a larger"
          " test split, or eval.num_samples=0 for no sample-based metrics."
      )


def needs_classifier(cfg) -> bool:

  return families.of(cfg).scores_images(cfg)


def check_outputs(out, exp, arm_cfgs) -> str:
  """Every path the command will write, checked (and created) before anything is compiled."""
  longest = max(len(os.path.abspath(os.path.join(out, exp.name, arm))) for arm, *_ in arm_cfgs)
  if longest + PATH_ROOM > os.pathconf("/", "PC_PATH_MAX"):
    raise RunError(
        f"The output directory (--out) is {len(os.path.abspath(out)):,} characters long; the files"
        " a run writes under it would pass the system's path limit"
        f" ({os.pathconf('/', 'PC_PATH_MAX')} characters, {PATH_ROOM} of them needed below the"
        " experiment directory). Nothing was trained or written. Pick a shorter --out."
    )
  exp_dir = rundir.ensure_writable(os.path.join(out, exp.name), "The output directory (--out)")
  if any(needs_classifier(cfg) for _, _, cfg, _ in arm_cfgs):

    rundir.ensure_writable(
        os.path.join(features.cache_root(), "classifier"),
        "The classifier cache (GEN_MODELS_CACHE, default ~/.cache/gen_models)",
    )
  return exp_dir


# Room under an experiment directory for the deepest file a run writes
# (<arm>/seed<k>/checkpoints/<step>.orbax-checkpoint-tmp-<n>/state/ocdbt.process_0/d/<hash>).
PATH_ROOM = 400


def check_run_dirs(plan) -> None:
  """Every run directory the plan will write exists and takes a file, before anything trains."""
  for arm, _, seed, run_dir, action in plan:
    if action != "skip" and os.path.isdir(run_dir):
      rundir.ensure_writable(run_dir, f"The run directory of {arm}/seed{seed}")
      checkpoints = rundir.RunPaths(run_dir).checkpoints
      if os.path.isdir(checkpoints):
        rundir.ensure_writable(checkpoints, f"The checkpoints of {arm}/seed{seed}")
