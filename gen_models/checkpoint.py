"""Checkpoints: an orbax CheckpointManager behind save / restore_latest.

Orbax writes each step into a temporary directory and renames it on commit, so a killed write
never leaves a half checkpoint under a step's name. Restore still verifies what it reads: a
checkpoint that fails to load is reported and the previous one is used.
"""

import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  pass


def _manager(directory: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


class Checkpointer:
  """Saves {"state": pytree, "meta": json} per step; keeps the last `keep` steps."""

  def __init__(self, directory: str, keep: int = 3):
    self.directory = directory
    self._mngr = _manager(directory, keep)

  def steps(self) -> list[int]:
    self._mngr.reload()
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state, meta: dict) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    self._mngr.save(step, args=args, force=True)
    self._mngr.wait_until_finished()

  def restore(self, step: int, target):
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    out = self._mngr.restore(step, args=args)
    state = out.state
    leaves = jax.tree.leaves(state)
    if len(leaves) != len(jax.tree.leaves(target)):
      raise CheckpointError(f"checkpoint {step} has a different structure than this model")
    for leaf in leaves:  # a truncated array file can decode to garbage: check it is finite
      arr = np.asarray(leaf)
      if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise CheckpointError(f"checkpoint {step} holds non-finite values")
    return state, dict(out.meta)

  def restore_latest(self, target):
    """(state, meta) of the newest checkpoint that loads, or (None, None) if there is none.
    Checkpoints that fail to load are reported (and left on disk for inspection)."""
    for step in reversed(self.steps()):
      try:
        return self.restore(step, target)
      except Exception as e:  # pylint: disable=broad-except
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        aside = self._set_aside(step)
        print(f"WARNING: checkpoint at step {step} in {self.directory} is unreadable ({msg}); "
              f"moved it to {aside} and using the previous one.", file=sys.stderr, flush=True)
    return None, None

  def _set_aside(self, step: int) -> str:
    """Moves an unreadable step out of the manager's directory (never deletes it), so the run
    can write that step again."""
    src = os.path.join(self.directory, str(step))
    dst_root = os.path.join(os.path.dirname(os.path.abspath(self.directory)), "checkpoints_unreadable")
    os.makedirs(dst_root, exist_ok=True)
    dst, k = os.path.join(dst_root, str(step)), 1
    while os.path.exists(dst):
      dst, k = os.path.join(dst_root, f"{step}.{k}"), k + 1
    if os.path.exists(src):
      os.rename(src, dst)
    self._mngr.reload()
    return dst

  def close(self):
    self._mngr.close()
