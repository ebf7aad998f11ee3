"""README claims that had no test: each of these fails when the claimed behaviour breaks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import planning
from experiments import registry
from experiments.commands import run
from gen_models import checkpoint as ckpt_lib
from gen_models import data as data_lib
from gen_models import loop
from gen_models import state as state_lib
from gen_models import tracking
from gen_models.families import gan as gan_family
from gen_models.families import image_gan
from tests import helpers
from tests.helpers import tiny_1d, tiny_image

TINY = [
    "--exp=gaussian1d",
    "--seeds",
    "1",
    "--set",
    "train.steps=30",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=0",
    "--set",
    "ckpt.every=30",
    "--set",
    "eval.num_samples=2000",
    "--wandb",
    "disabled",
    "--quiet",
]


@pytest.mark.slow
def test_resume_refuses_a_changed_config_and_lists_the_differences(tmp_path, capsys):
  assert run.main(TINY + ["--out", str(tmp_path)]) == 0
  capsys.readouterr()
  changed = ["--set", "optim.d_lr=0.002", "--set", "model.hidden=16"]
  assert run.main(TINY + changed + ["--out", str(tmp_path), "--resume"]) == 2
  err = capsys.readouterr().err
  assert (
      "optim.d_lr: 0.001 (saved) vs 0.002 (now)" in err
      and "model.hidden: 32 (saved) vs 16 (now)" in err
  )
  # train.steps may change (train longer): that resumes.
  longer = [("train.steps=60" if a == "train.steps=30" else a) for a in TINY]
  assert run.main(longer + ["--out", str(tmp_path), "--resume"]) == 0


def test_an_arm_wins_over_a_clashing_set_and_the_clash_is_reported(capsys):
  arms = planning.build_configs(
      registry.get("gaussian1d_loss"), ["loss.generator=ns", "optim.d_lr=0.002"], None, None
  )
  assert {arm: cfg.loss.generator for arm, _, cfg, _ in arms} == {"ns": "ns", "minimax": "minimax"}
  assert all(cfg.optim.d_lr == 0.002 for _, _, cfg, _ in arms)  # a key no arm sets applies to all
  out = capsys.readouterr().out
  assert "loss.generator is set by arm 'minimax'" in out and "the arm's value is used" in out


@pytest.mark.parametrize("real,gen,want", [(0.8, None, 0.8), (0.9, 1.0, 1.0), (1.0, None, 1.0)])
def test_g_target_follows_the_real_target_unless_set(real, gen, want):
  cfg = tiny_1d(**{"loss.real_target": real, "loss.gen_target": "none" if gen is None else gen})
  hp = gan_family.hparams(cfg)
  assert float(hp["gen_target"]) == pytest.approx(want)
  assert float(hp["real_target"]) == pytest.approx(real)


def test_keras_time_decay_scales_the_learning_rate():
  # Keras 2: lr_t = lr / (1 + decay * t), t = updates made so far (0 for the first). With RMSprop
  # the first step from v = 0 moves each weight by lr_t * g / (sqrt((1 - rho) g^2) + eps).

  lr, decay, rho, eps = 0.1, 0.5, 0.9, 1e-7
  tx = state_lib.make_tx("rmsprop", 0.9, 0.999, rho, eps)
  params = {"w": jnp.zeros(3)}
  opt = tx.init(params)
  opt.hyperparams["learning_rate"], opt.hyperparams["decay"] = jnp.float32(lr), jnp.float32(decay)
  g = {"w": jnp.array([0.5, -2.0, 1e-3])}
  v = np.zeros(3)
  for t in range(4):
    updates, opt = tx.update(g, opt, params)
    v = rho * v + (1 - rho) * np.asarray(g["w"], np.float64) ** 2
    want = -lr / (1 + decay * t) * np.asarray(g["w"]) / (np.sqrt(v) + eps)
    np.testing.assert_allclose(np.asarray(updates["w"]), want, rtol=1e-5)


@pytest.mark.slow
def test_fixed_noise_grids_use_the_same_latents_at_every_evaluation(tmp_path, monkeypatch):
  seen = []
  real_apply = gan_family.apply_g

  def spy(g, z):
    if z.shape[0] == image_gan.GRID_SAMPLES:
      seen.append(np.asarray(z))
    return real_apply(g, z)

  monkeypatch.setattr(gan_family, "apply_g", spy)
  cfg = tiny_image(**{"train.steps": 6, "eval.every": 2, "ckpt.every": 2, "eval.num_samples": 0})

  helpers.train(cfg, tmp_path / "run", exp_name="dcgan")
  assert len(seen) >= 4  # steps 0, 2, 4, 6 (+ the final grid)
  for z in seen[1:]:
    np.testing.assert_array_equal(z, seen[0])
  grids = sorted(p.name for p in (tmp_path / "run" / "samples").glob("step_*.png"))
  assert grids == ["step_0000000.png", "step_0000002.png", "step_0000004.png", "step_0000006.png"]


def test_a_state_with_non_finite_parameters_is_never_checkpointed(tmp_path):
  # A step whose loss stays finite while a parameter becomes NaN at step 5: divergence is only
  # caught by the save-time guard, which must keep the last good checkpoint (step 4).
  def step(state, batch, rng, hp):
    del batch, rng, hp
    count = state["count"] + 1
    return {"w": jnp.where(count >= 5, jnp.nan, state["w"] + 1.0), "count": count}, {
        "loss": jnp.float32(1.0)
    }

  spec = data_lib.BatchSpec(batch_size=2, num_examples=4)
  task = loop.Task(
      init=lambda key: {"w": jnp.zeros(2), "count": jnp.int32(0)}, step=step, spec=spec, hparams={}
  )
  cfg = tiny_1d(**{
      "train.steps": 8,
      "train.scan_chunk": 1,
      "train.log_every": 1,
      "eval.every": 0,
      "ckpt.every": 1,
      "ckpt.keep": 20,
  })
  checkpointer = ckpt_lib.Checkpointer(str(tmp_path / "ckpt"), keep=20)
  r = loop.Run(
      task,
      cfg,
      {"x": jnp.zeros((4, 1))},
      jax.random.key(0),
      tracking.NullTracker(),
      checkpointer,
      "nan",
  )
  try:
    (state,) = loop.train_many([r], print_fn=lambda s: None)
    assert state is None and r.status == "diverged" and "parameters" in r.error
    assert checkpointer.steps() == [1, 2, 3, 4]
    restored, meta = checkpointer.restore_latest(task.init(None))
    assert meta["step"] == 4 and np.all(np.isfinite(np.asarray(restored["w"])))
  finally:
    checkpointer.close()


def test_rmsprop_optax_form_is_keras_3s_eps_inside_the_root():

  tx = state_lib.make_tx("rmsprop", 0.9, 0.999, 0.9, 1e-7, eps_form="optax")
  params = {"w": jnp.zeros(2)}
  opt = tx.init(params)
  opt.hyperparams["learning_rate"] = jnp.float32(0.01)
  g = {"w": jnp.array([1e-3, 1e-4])}
  updates, _ = tx.update(g, opt, params)
  want = -0.01 * np.asarray(g["w"]) / np.sqrt(0.1 * np.asarray(g["w"], np.float64) ** 2 + 1e-7)
  np.testing.assert_allclose(np.asarray(updates["w"]), want, rtol=1e-5)


def test_adam_matches_the_keras_formula():
  # Keras 2 and 3: m, v without bias correction; p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m /
  # (sqrt(v) + eps).
  # A 1e-3 gradient is where optax's form (eps on the bias-corrected root) is 0.3% off at step 1.

  lr, b1, b2, eps = 1e-3, 0.5, 0.999, 1e-7
  tx = state_lib.make_tx("adam", b1, b2, 0.9, eps)
  params = {"w": jnp.zeros(3)}
  opt = tx.init(params)
  opt.hyperparams["learning_rate"] = jnp.float32(lr)
  m, v = np.zeros(3), np.zeros(3)
  for t in range(1, 5):
    g = np.array([0.3, -2.0, 1e-3]) * (1 + 0.1 * t)
    updates, opt = tx.update({"w": jnp.asarray(g, jnp.float32)}, opt, params)
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    want = -lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(np.asarray(updates["w"]), want, rtol=1e-4)


def test_adam_optax_form_is_pytorchs():
  # PyTorch (the MLP GAN seed): p -= lr * m_hat / (sqrt(v_hat) + eps), bias-corrected moments.

  lr, b1, b2, eps = 2e-4, 0.5, 0.999, 1e-8
  tx = state_lib.make_tx("adam", b1, b2, 0.9, eps, eps_form="optax")
  params = {"w": jnp.zeros(2)}
  opt = tx.init(params)
  opt.hyperparams["learning_rate"] = jnp.float32(lr)
  m, v = np.zeros(2), np.zeros(2)
  for t in range(1, 4):
    g = np.array([1e-6, 0.5]) * t
    updates, opt = tx.update({"w": jnp.asarray(g, jnp.float32)}, opt, params)
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    want = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(np.asarray(updates["w"]), want, rtol=1e-4)
