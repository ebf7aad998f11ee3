"""Run in a subprocess with 4 forced CPU devices by tests/test_data_parallel.py: one data-parallel
step against the same step on one device, and a short sharded training run."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from tests import helpers
from tests.helpers import tiny_image


def main(out_dir):
  assert jax.device_count() == 4, jax.devices()
  cfg = tiny_image(**{"train.batch_size": 8})
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  dev = jax.device_put(data["train"])
  hp = jax.tree.map(jnp.asarray, task.hparams)
  mesh = loop.data_parallel_mesh(task.spec.padded_size)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  out, arrays = {}, {}  # small values as JSON, parameters as .npz (JSON lists took 30 s)
  for name, batch_sharding in (("one", None), ("four", sharding)):
    state = task.init(jax.random.key(1))
    args = (state, dev, jax.random.key(2), jnp.int32(0), hp)
    if batch_sharding is not None:
      args = jax.device_put(args, replicated)
    # the compiled program is both run and read (its HLO must all-reduce the gradients)
    compiled = loop.run_chunk.lower(
        *args, step_fn=task.step, spec=task.spec, length=1, batch_sharding=batch_sharding
    ).compile()
    new, metrics = compiled(*args)
    # After one step Adam's first moment is 0.1 * gradient: compare gradients through it.
    mu = [s.inner_state[0].mu for s in (new["g"].opt_state, new["d"].opt_state)]
    out[name] = {"metrics": {k: float(v[0]) for k, v in metrics.items()}}
    arrays.update({f"mu_{name}_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(mu))})
    if batch_sharding is not None:
      out["all_reduce"] = "all-reduce" in compiled.as_text()
      out["param_sharding"] = str(jax.tree.leaves(new)[0].sharding)
  run_cfg = tiny_image(**{"train.batch_size": 8, "train.steps": 4})
  state4, result = helpers.train(run_cfg, out_dir + "/run", exp_name="dcgan")  # 4 devices
  out["run_status"] = result["status"]
  loop.data_parallel_mesh = lambda batch_size: None  # the same run on one device
  # Only its parameters are compared: no evaluations (their keys are not training's), the same
  # one step per dispatch as with them.
  quiet = {"eval.every": 0, "eval.num_samples": 0, "train.scan_chunk": 1}
  state1, _ = helpers.train(
      tiny_image(**{"train.batch_size": 8, "train.steps": 4, **quiet}),
      out_dir + "/run1",
      exp_name="dcgan",
  )
  for name, s in (("four", state4), ("one", state1)):
    arrays.update({f"run_{name}_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(s))})
  np.savez(out_dir + "/dp.npz", **arrays)
  with open(out_dir + "/dp.json", "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main(sys.argv[1])
