"""The training loop's parts on their own: init_or_restore, place, advance, log_metrics, save and
evaluate compose into exactly what train_many does, and log_metrics finds the first bad step."""

import jax
import numpy as np

from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from tests import helpers
from tests.helpers import tiny_1d


class ListTracker:

  def __init__(self):
    self.rows = []

  def rewind(self, step):
    self.rows = [r for r in self.rows if r[0] < step]

  def log(self, step, metrics):
    self.rows.append((step, metrics))

  def log_image(self, step, key, path):
    pass


def _run(cfg):
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(cfg.seed))
  return loop.Run(
      task, cfg, jax.device_put(data["train"]), jax.random.key(cfg.seed), ListTracker(), label="t"
  )


def test_the_parts_compose_into_train_many():
  cfg = tiny_1d(**{"train.steps": 40, "eval.every": 20, "ckpt.every": 0})
  whole = _run(cfg)
  (want,) = loop.train_many([whole], print_fn=lambda s: None)
  run = _run(cfg)
  states, start = loop.init_or_restore([run], resume=False, print_fn=lambda s: None)
  group = loop.place([run], states, start, loop.chunk_length(cfg), print_fn=lambda s: None)
  assert start == 0 and group.length == 10
  loop.evaluate(group)
  while group.step < cfg.train.steps:
    metrics = loop.advance(group)
    loop.log_metrics(group, [metrics])
    if group.step % cfg.eval.every == 0:
      loop.evaluate(group, print_fn=lambda s: None)
  helpers.assert_bit_identical(group.state_of(0), want)
  strip = lambda rows: [(s, helpers.without_timings(m)) for s, m in rows]
  assert strip(run.tracker.rows) == strip(whole.tracker.rows)  # every logged value
  assert [s for s, m in run.tracker.rows if "eval/w1" in m] == [0, 20, 40]


def test_log_metrics_marks_the_first_non_finite_step_and_save_refuses_broken_parameters():
  cfg = tiny_1d(**{"train.steps": 40})
  run = _run(cfg)
  states, start = loop.init_or_restore([run], resume=False)
  group = loop.place([run], states, start, 10)
  group.step = 20  # two chunks of 10 steps logged at once: steps 1..20
  good = {"d_loss": np.zeros(10, np.float32)}
  bad = {"d_loss": np.r_[np.zeros(3), np.nan, np.zeros(6)].astype(np.float32)}
  assert loop.log_metrics(group, [good, bad]) is None  # nothing left to show
  # the 4th step of the second chunk
  assert run.status == "diverged" and run.info["diverged_step"] == 14
  run2 = _run(cfg)
  states, _ = loop.init_or_restore([run2], resume=False)
  saved = []

  class Ckpt:

    def save(self, step, state, meta):
      saved.append(step)

  run2.checkpointer = Ckpt()
  broken = dict(
      states[0],
      g=states[0]["g"].replace(params=jax.tree.map(lambda p: p * np.nan, states[0]["g"].params)),
  )
  group2 = loop.place([run2], [broken], 0, 10)
  loop.save(group2)
  assert not saved and run2.status == "diverged"


def test_step_t_draws_its_batch_and_noise_from_step_t():
  """The loop's key contract written out as a plain Python loop (no scan, no loop helpers): step t
  (0-based) samples its batch with fold_in(fold_in(key, 2), t) -> 0 and its noise -> 1, from the
  state fold_in(key, 1) initialises. Catches a shifted step index, which the composition test
  above cannot (the parts and train_many share advance)."""
  cfg = tiny_1d(**{"train.steps": 20, "eval.every": 0, "ckpt.every": 0})
  run = _run(cfg)
  (got,) = loop.train_many([run], print_fn=lambda s: None)
  task, data = run.task, run.data
  state = task.init(jax.random.fold_in(run.key, 1))
  key = jax.random.fold_in(run.key, 2)
  step = jax.jit(task.step)
  for t in range(cfg.train.steps):
    rng = jax.random.fold_in(key, t)
    batch = data_lib.sample_batch(task.spec, data, jax.random.fold_in(rng, 0), t)
    state, _ = step(state, batch, jax.random.fold_in(rng, 1), task.hparams)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
