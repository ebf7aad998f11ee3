"""A saved run on disk: its config and latest checkpoint, for the tools that read runs
(evaluate, sample, diagnose, the runner's evaluation-noise check)."""

import os

import jax

from gen_models import checkpoint as ckpt_lib
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import files
from gen_models import rundir
from gen_models.errors import RunError


def load_run(run_dir: str):
  """(cfg, state, data, key, step) of a saved run, from its config.json and latest checkpoint."""
  path = rundir.RunPaths(run_dir).config
  saved = files.read(path, "config")  # damaged: DamagedFile (exit 2), naming it
  if saved is None:
    raise RunError(
        f"{run_dir} is not a run directory (no config.json). Give a path like "
        "runs/<exp>/<arm>/seed<k>."
    )
  try:
    cfg = families.validate(config_lib.from_dict(saved))
  except (OSError, ValueError, TypeError, AttributeError) as e:  # ConfigError is a ValueError
    raise RunError(
        f"{path} cannot be read as a run's config ({type(e).__name__}: {str(e)[:200]}). It was left"
        " as it is. If it was damaged, restore it (it is the config the run was trained with) or"
        " retrain."
    ) from None
  data = data_lib.load(cfg, log=lambda s: None)
  key = jax.random.key(cfg.seed)
  task = families.make_task(cfg, data, key)
  checkpointer = ckpt_lib.Checkpointer(rundir.RunPaths(run_dir).checkpoints, keep=cfg.ckpt.keep)
  try:
    state, meta = checkpointer.restore_latest(task.init(jax.random.fold_in(key, 1)))
  finally:
    checkpointer.close()
  if state is None:
    raise RunError(f"{run_dir} has no readable checkpoint; train it first (or --resume it).")
  return cfg, state, data, key, int(meta["step"])
