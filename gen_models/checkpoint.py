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
  """A checkpoint proven damaged: it decoded wrongly or failed validation."""


class CheckpointEnvironmentError(RuntimeError):
  """A checkpoint could not be read for a reason outside it (memory, file handles, permissions):
  it is left in place and the command stops; the message says what to do."""


# What reading a damaged checkpoint raises (orbax / tensorstore decode and validation failures).
# Anything else, and any of these whose message names an exhausted resource, is the environment's.
DAMAGE_ERRORS = (
    CheckpointError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
    UnicodeDecodeError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
)
RESOURCE_WORDS = (
    "resource_exhausted",
    "resource exhausted",
    "out of memory",
    "cannot allocate memory",
    "bad_alloc",
    "can't start new thread",
    "too many open files",
    "no space left",
    "permission denied",
    "read-only file system",
)


def is_damage(e: BaseException) -> bool:
  """Whether a restore failure proves the checkpoint damaged (rather than the machine short of
  memory or file handles, where the same checkpoint reads fine on the next try)."""
  chain, seen = [], set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    chain.append(e)
    e = e.__cause__ or e.__context__
  text = " ".join(str(x) for x in chain).lower()
  if any(isinstance(x, (MemoryError, PermissionError)) for x in chain) or any(
      w in text for w in RESOURCE_WORDS
  ):
    return False
  return isinstance(chain[0], DAMAGE_ERRORS)


def _manager(directory: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False
  )
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _checked_meta(meta, step: int) -> dict:
  """The checkpoint's metadata, validated: its step is the directory's, its times finite numbers
  (a damaged one is a damaged checkpoint: moved aside like any other)."""
  if not isinstance(meta, dict):
    raise CheckpointError(f"checkpoint {step}: its metadata is not a JSON object")
  if meta.get("step") != step or isinstance(meta.get("step"), bool):
    raise CheckpointError(f"checkpoint {step}: its metadata gives step {meta.get('step')!r}")
  for k in ("time", "train_s"):
    v = meta.get(k, 0.0)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
      raise CheckpointError(f"checkpoint {step}: its metadata gives {k} {v!r}, not a number")
  return dict(meta)


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
    return state, _checked_meta(out.meta, step)

  def restore_latest(self, target):
    """(state, meta) of the newest checkpoint that loads, or (None, None) if there is none.
    A checkpoint proven damaged is reported and moved aside (never deleted); any other failure
    raises CheckpointEnvironmentError and moves nothing."""
    for step in reversed(self.steps()):
      try:
        return self.restore(step, target)
      except Exception as e:  # pylint: disable=broad-except
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        if not is_damage(e):
          raise CheckpointEnvironmentError(
              f"the checkpoint at step {step} in {self.directory} could not be read"
              f" ({type(e).__name__}: {msg}). That is not a sign of damage (memory, file handles or"
              " permissions ran short), so it was left in place, untouched. Fix the cause (e.g."
              " raise `ulimit -v` or free memory) and rerun the same command (with --resume to"
              " continue training)."
          ) from None
        aside = self._set_aside(step)
        print(
            f"WARNING: checkpoint at step {step} in {self.directory} is unreadable ({msg}); "
            f"moved it to {aside} and using the previous one.",
            file=sys.stderr,
            flush=True,
        )
    return None, None

  def _set_aside(self, step: int) -> str:
    """Moves an unreadable step out of the manager's directory (never deletes it), so the run
    can write that step again."""
    src = os.path.join(self.directory, str(step))
    dst_root = os.path.join(
        os.path.dirname(os.path.abspath(self.directory)), "checkpoints_unreadable"
    )
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
