"""Vectorised sweeps: runs that share shapes train as one jax.vmap'ed program and end exactly
where the same runs trained one by one end (parameters and logged metrics)."""

import json

import jax
import numpy as np
import pytest

from experiments import registry
from experiments import runner
from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import families
from gen_models import loop
from gen_models import metric_names as names
from tests import helpers
from tests.helpers import tiny_1d
from tests.helpers import tiny_ae
from tests.helpers import tiny_image


def _rows(path):
  return [helpers.without_timings(json.loads(l)) for l in open(path)]


@pytest.mark.slow
def test_vmapped_runs_equal_runs_one_by_one(tmp_path):
  exp = registry.get("gaussian1d_label_smoothing")
  arms = [
      ("none", tiny_1d(**{"loss.real_target": 1.0, "loss.fake_target": 0.0, "seed": 0})),
      ("two_sided", tiny_1d(**{"seed": 1})),
      (
          "minimax",
          tiny_1d(
              **{"loss.generator": "minimax", "optim.d_lr": 3e-3, "optim.g_lr": 1e-4, "seed": 2}
          ),
      ),
  ]
  one_by_one = [
      helpers.run_one(exp, a, c, str(tmp_path / "seq" / a), "disabled", resume=False, quiet=True)[0]
      for a, c in arms
  ]
  together = runner.run_group(
      exp, [(a, c, str(tmp_path / "vmap" / a), False) for a, c in arms], "disabled", quiet=True
  )
  for (arm, _), state, (vstate, result) in zip(arms, one_by_one, together):
    assert result["status"] == "finished" and result["vectorised_with"] == 3
    helpers.assert_bit_identical(state, vstate)
    assert _rows(tmp_path / "seq" / arm / "metrics.jsonl") == _rows(
        tmp_path / "vmap" / arm / "metrics.jsonl"
    )


def test_sweep_groups_runs_that_differ_only_in_traced_values():
  cfg = tiny_1d(**{"train.vmap_runs": True})
  plan = [
      ("a", cfg, 0, "/x/a0", "new"),
      ("b", tiny_1d(**{"train.vmap_runs": True, "loss.real_target": 1.0}), 0, "/x/b0", "new"),
      # other shapes
      ("c", tiny_1d(**{"train.vmap_runs": True, "model.hidden": 8}), 0, "/x/c0", "new"),
      ("d", cfg, 1, "/x/d1", "skip"),
  ]
  groups = runner._groups(plan)  # pylint: disable=protected-access
  assert [[item[0] for item in g] for g in groups] == [["a", "b"], ["c"]]
  off = {"train.vmap_runs": False}
  no_vmap = [("a", tiny_1d(**off), 0, "/x/a0", "new"), ("b", tiny_1d(**off), 1, "/x/b1", "new")]
  assert len(runner._groups(no_vmap)) == 2  # pylint: disable=protected-access


@pytest.mark.slow
def test_vmapped_autoencoders_sharing_one_dataset_match_one_by_one(tmp_path):
  # Batched matmuls may sum in another order than single ones: for these models vmapped runs agree
  # with one-by-one runs to float rounding, not bit for bit (the 1-D GAN above is bit-identical),
  # which is why vmap_runs is on by default only for the gaussian1d experiments.

  exp = registry.get("ae_denoising_noise")
  arms = [
      ("noise25", tiny_ae(**{"data.noise_std": 0.25})),
      ("noise75", tiny_ae(**{"data.noise_std": 0.75, "seed": 1})),
  ]
  one_by_one = [
      helpers.run_one(exp, a, c, str(tmp_path / "seq" / a), "disabled", resume=False, quiet=True)[0]
      for a, c in arms
  ]
  together = runner.run_group(
      exp, [(a, c, str(tmp_path / "vmap" / a), False) for a, c in arms], "disabled", quiet=True
  )
  for (arm, _), state, (vstate, _) in zip(arms, one_by_one, together):
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(vstate)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    seq, vm = _rows(tmp_path / "seq" / arm / "metrics.jsonl"), _rows(
        tmp_path / "vmap" / arm / "metrics.jsonl"
    )
    assert [r["step"] for r in seq] == [r["step"] for r in vm]
    for r1, r2 in zip(seq, vm):
      for k in r1:
        np.testing.assert_allclose(r2[k], r1[k], rtol=1e-5)


def test_vmap_runs_auto_is_on_for_conv_gans_on_accelerators_only():

  dcgan = tiny_image()
  assert dcgan.train.vmap_runs is None  # auto
  assert [loop.vmap_runs(dcgan, b) for b in ("cpu", "gpu", "tpu")] == [False, True, True]
  assert not loop.vmap_runs(tiny_ae(), "gpu")  # autoencoders: only where asked
  assert not loop.vmap_runs(tiny_image(**{"train.vmap_runs": False}), "gpu")  # explicit wins
  assert loop.vmap_runs(tiny_image(**{"train.vmap_runs": "true"}), "cpu")
  assert config_lib.apply_overrides(dcgan, {"train.vmap_runs": "auto"}).train.vmap_runs is None


@pytest.mark.slow
def test_vmapped_conv_gans_match_one_by_one(tmp_path):
  # dcgan runs of two arms (other label targets: traced values) and two seeds trained as one
  # vmapped program, against the same runs one by one: batched convs may sum in another order, so
  # they agree to float rounding, not bit for bit.

  exp = registry.get("dcgan_label_smoothing")
  on = {"train.vmap_runs": True, "train.steps": 4, "eval.every": 2, "ckpt.every": 2}
  arms = [
      ("none", tiny_image(**on)),
      ("two_sided", tiny_image(**on, **{"loss.real_target": 0.9, "loss.fake_target": 0.1})),
      ("none1", tiny_image(**on, **{"seed": 1})),
  ]
  one_by_one = [
      helpers.run_one(exp, a, c, str(tmp_path / "seq" / a), "disabled", resume=False, quiet=True)[0]
      for a, c in arms
  ]
  together = runner.run_group(
      exp, [(a, c, str(tmp_path / "vmap" / a), False) for a, c in arms], "disabled", quiet=True
  )
  model = lambda s: {k: (v.params, getattr(v, "batch_stats", None)) for k, v in s.items()}
  for (arm, _), state, (vstate, result) in zip(arms, one_by_one, together):
    assert result["status"] == "finished" and result["vectorised_with"] == 3
    # Adam turns rounding-level gradient differences into steps of up to lr on the components
    # whose gradient is near zero, so parameters agree to 2% of each leaf's scale (the two arms
    # one by one differ by 12-19% of it after these 4 steps); the conv biases before BatchNorm
    # (gradient zero in theory) get an absolute floor.
    helpers.leaves_close(model(state), model(vstate), rtol=0.02, floor=5e-5)
    seq, vm = _rows(tmp_path / "seq" / arm / "metrics.jsonl"), _rows(
        tmp_path / "vmap" / arm / "metrics.jsonl"
    )
    assert [r["step"] for r in seq] == [r["step"] for r in vm] and len(seq) > 2
    n = arms[0][1].eval.num_samples
    for r1, r2 in zip(seq, vm):  # losses, D outputs, FID / KID / precision / recall
      assert set(r1) == set(r2)
      for k in r1:
        if isinstance(r1[k], float):
          # Metrics that count samples (k-NN balls, argmax classes) move in steps of 1/n when
          # rounding carries a sample across a boundary (seen on an AMD EPYC: class_kl by 1.6/n):
          # two samples' worth (log(n) / n each for the class histogram's KL, one class covered).
          base = names.split_extractor(k.removeprefix(names.EVAL))[0]
          atol = {"class_kl": 2 * np.log(n) / n, "classes_covered": 1.0}.get(
              base, 2 / n if base in ("precision", "recall", "density", "coverage") else 1e-6
          )
          np.testing.assert_allclose(r2[k], r1[k], rtol=1e-3, atol=atol, err_msg=f"{arm} {k}")


@pytest.mark.slow
def test_a_vmapped_group_draws_each_runs_evaluation_images_in_one_program():
  """loop._group_images (the accelerator path, forced here on the CPU): every live run's images
  are the ones its own evaluation draws, from its own parameters and key; a run that stopped is
  left out. A planted "run 0's key for all" makes run 2's images differ (checked)."""

  cfg = tiny_image(**{"train.vmap_runs": True})
  data = data_lib.load(cfg)
  keys = [jax.random.key(s) for s in (0, 1, 2)]
  tasks = [families.make_task(cfg, data, k) for k in keys]
  states = [t.init(k) for t, k in zip(tasks, keys)]
  runs = [loop.Run(t, cfg, None, k, None) for t, k in zip(tasks, keys)]
  runs[1].status = "diverged"
  stacked = jax.tree.map(lambda *x: jax.numpy.stack(x), *states)
  group = loop.Group(runs, stacked, None, None, None, step=cfg.train.steps, length=1)
  # pylint: disable-next=protected-access
  drawn, _ = loop._group_images(group, group.live(), side_by_side=True)
  assert sorted(drawn) == [0, 2]
  for r in (0, 2):
    own = np.asarray(tasks[r].eval_images(states[r], keys[r], cfg.train.steps))
    got = np.asarray(drawn[r])
    assert got.shape == own.shape and got.dtype == np.uint8
    # batched convolutions may round differently: a pixel may move by one level, no more
    assert np.abs(got.astype(int) - own.astype(int)).max() <= 1
  other = np.asarray(tasks[2].eval_images(states[2], keys[0], cfg.train.steps))
  assert np.abs(other.astype(int) - np.asarray(drawn[2]).astype(int)).max() > 10
  # On a CPU the group's runs draw their own (the default there): nothing drawn together.
  assert loop._group_images(group, group.live())[0] == {}  # pylint: disable=protected-access
