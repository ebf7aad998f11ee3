"""The registered GAN losses and stabilisers against textbook formulas written here in numpy
(hinge, LSGAN, WGAN-GP, R1), and what each option changes in a step (n_critic D updates, G's EMA,
spectral normalisation)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import planning
from experiments import registry
from experiments.commands import run
from gen_models import data as data_lib
from gen_models import families
from gen_models import gan_losses
from gen_models import runs
from gen_models.config import ConfigError
from gen_models.families import gan
from tests import helpers
from tests.helpers import tiny_1d, tiny_image

RNG = np.random.default_rng(0)
LR, LF = RNG.normal(size=12).astype(np.float32), RNG.normal(size=12).astype(np.float32)
W = np.r_[np.ones(10), 0.0, 0.0].astype(np.float32)  # two padding rows weigh nothing
HP = {
    "real_target": np.float32(0.9),
    "fake_target": np.float32(0.1),
    "gen_target": np.float32(1.0),
    "minimax": np.float32(0),
    "gp_weight": np.float32(10.0),
}


def _np_mean(v):
  return float(np.sum(v * W) / np.sum(W))


@pytest.mark.parametrize(
    "name,d_want,g_want",
    [
        # Lim & Ye 2017: D max(0, 1 - D(x)) + max(0, 1 + D(G(z))), G -D(G(z))
        ("hinge", _np_mean(np.maximum(0, 1 - LR)) + _np_mean(np.maximum(0, 1 + LF)), -_np_mean(LF)),
        # Mao et al. 2017, a-b-c = fake 0.1, real 0.9, G 1.0
        (
            "lsgan",
            0.5 * _np_mean((LR - 0.9) ** 2) + 0.5 * _np_mean((LF - 0.1) ** 2),
            0.5 * _np_mean((LF - 1.0) ** 2),
        ),
        # Arjovsky et al. 2017: the critic minimises E D(G(z)) - E D(x); G minimises -E D(G(z))
        ("wgan_gp", _np_mean(LF) - _np_mean(LR), -_np_mean(LF)),
        # Goodfellow et al. 2014 with targets: D's BCE averaged over real and fake, G's -log D(G(z))
        # at target 1
        (
            "ns",
            0.5
            * (
                _np_mean(
                    -(0.9 * np.log(1 / (1 + np.exp(-LR))) + 0.1 * np.log(1 - 1 / (1 + np.exp(-LR))))
                )
                + _np_mean(
                    -(0.1 * np.log(1 / (1 + np.exp(-LF))) + 0.9 * np.log(1 - 1 / (1 + np.exp(-LF))))
                )
            ),
            _np_mean(-np.log(1 / (1 + np.exp(-LF)))),
        ),
    ],
)
def test_each_loss_matches_its_textbook_formula(name, d_want, g_want):
  loss = gan_losses.get(name)
  assert float(loss.d_loss(LR, LF, HP, W)) == pytest.approx(d_want, rel=1e-5)
  assert float(loss.g_loss(LF, HP, W)) == pytest.approx(g_want, rel=1e-5)


def test_the_gradient_penalty_matches_a_linear_and_a_quadratic_critic():
  loss = gan_losses.get("wgan_gp")
  real = jnp.asarray(RNG.normal(size=(12, 3, 3, 1)), jnp.float32)
  fake = jnp.asarray(RNG.normal(size=(12, 3, 3, 1)), jnp.float32)
  a = RNG.normal(size=(9,)).astype(np.float32)
  # D(x) = a.x: the gradient is a everywhere, the penalty lambda (|a| - 1)^2 whatever the
  # interpolation.
  value, m = loss.penalty(lambda x: x.reshape(12, -1) @ a, real, fake, jax.random.key(0), HP, W)
  assert float(m["gp"]) == pytest.approx((np.linalg.norm(a) - 1) ** 2, rel=1e-5)
  assert float(value) == pytest.approx(10 * (np.linalg.norm(a) - 1) ** 2, rel=1e-5)
  # D(x) = |x|^2 / 2: the gradient is x_hat itself. With real = 0 and fake at distance 2,
  # |x_hat| = 2u for u ~ U(0, 1), so the penalty is E(2u - 1)^2 = 1/3 (endpoints or the midpoint
  # would give 1 or 0); 20,000 examples put the Monte Carlo error near 0.002.
  n = 20_000
  real0 = jnp.zeros((n, 2), jnp.float32)
  fake2 = jnp.tile(jnp.asarray([[1.2, 1.6]], jnp.float32), (n, 1))  # |fake| = 2
  _, m = loss.penalty(
      lambda x: 0.5 * jnp.sum(jnp.square(x), axis=1),
      real0,
      fake2,
      jax.random.key(1),
      HP,
      jnp.ones(n, jnp.float32),
  )
  assert float(m["gp"]) == pytest.approx(1 / 3, abs=0.015)


def test_r1_penalty_is_the_squared_input_gradient_of_d_on_real_data():
  # The step's "r1" metric is E|grad_x D(x)|^2 over the real batch with D's parameters before its
  # update; the reference differentiates D by central finite differences in float64.
  cfg = tiny_1d(**{"loss.r1_gamma": 2.0, "data.sampling": "random", "train.batch_size": 64})
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  state = task.init(jax.random.key(1))
  batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)
  _, metrics = jax.jit(task.step)(
      state, batch, jax.random.key(3), jax.tree.map(jnp.asarray, task.hparams)
  )
  p = jax.tree.map(lambda v: np.asarray(v, np.float64), state["d"].params)
  (w1, b1), (w2, b2) = [(p[k]["kernel"], p[k]["bias"]) for k in sorted(p)]
  d = lambda x: np.maximum(x @ w1 + b1, 0) @ w2 + b2
  x, h = np.asarray(batch["x"], np.float64), 1e-6
  grads = (d(x + h) - d(x - h)) / (2 * h)
  assert float(metrics["r1"]) == pytest.approx(np.mean(grads**2), rel=1e-4)
  plain = families.make_task(tiny_1d(), data, jax.random.key(0))
  assert plain.step is not task.step and "r1_gamma" not in plain.hparams  # off: no penalty computed


def _image_task(**overrides):
  """(cfg, train data on device, task) of a tiny image GAN without evaluation samples."""
  cfg = tiny_image(**{"eval.num_samples": 0, **overrides})
  data = data_lib.load(cfg)
  return cfg, jax.device_put(data["train"]), families.make_task(cfg, data, jax.random.key(0))


def _image_steps(n, **overrides):
  """Yields (cfg, t, batch, state after step t) for t = 1..n of a tiny image GAN's jitted step."""
  cfg, train, task = _image_task(**overrides)
  state, step, hp = (
      task.init(jax.random.key(1)),
      jax.jit(task.step),
      jax.tree.map(jnp.asarray, task.hparams),
  )
  for t in range(1, n + 1):
    batch = data_lib.sample_batch(task.spec, train, jax.random.key(10 + t), t)
    state, _ = step(state, batch, jax.random.key(20 + t), hp)
    yield cfg, t, batch, state


@pytest.mark.slow
def test_wgan_gp_takes_n_critic_d_steps_per_g_step_on_their_own_minibatches(sweeps):
  out = sweeps[0]
  cfg, train, task = _image_task(**{"loss.generator": "wgan_gp"})
  assert gan.n_critic(cfg) == 5  # the loss's default
  batch = data_lib.sample_batch(task.spec, train, jax.random.key(2), 0)
  assert batch["x"].shape[0] == 5 * cfg.train.batch_size  # one minibatch per critic update
  # the trained runs: 5 D updates per G update, for WGAN-GP and for ns with loss.n_critic=5
  for run_dir in (
      out / "dcgan_losses" / "wgan_gp" / "seed0",
      out / "dcgan_critic_steps" / "ns_c5" / "seed0",
  ):
    *_, state, _, _, step = runs.load_run(str(run_dir))
    assert step == SWEEP_STEPS, run_dir
    assert (int(state["d"].step), int(state["g"].step)) == (5 * SWEEP_STEPS, SWEEP_STEPS), run_dir


@pytest.mark.slow
def test_g_ema_follows_the_textbook_recursion_and_is_what_evaluation_uses():
  # The textbook debiased EMA (Adam's bias correction, optax.ema(debias=True)): a plain average from
  # zeros, divided by 1 - d^t; G's initial weights (where g_ema starts) must get no share.
  # mean: the averaged G's first BatchNorm (Keras momentum 0.99)
  raw, mean = None, np.zeros(7 * 7 * 128)
  for cfg, t, batch, state in _image_steps(3, **{"train.g_ema": 0.9}):
    params = jax.tree.map(lambda p: np.asarray(p, np.float64), state["g"].params)
    raw = jax.tree.map(
        lambda e, p: 0.9 * e + 0.1 * p, raw or jax.tree.map(np.zeros_like, params), params
    )
    for got, want in zip(jax.tree.leaves(state["g_ema"]["params"]), jax.tree.leaves(raw)):
      np.testing.assert_allclose(got, want / (1 - 0.9**t), rtol=1e-5, atol=1e-6)
    # Its statistics are those of the *averaged* weights: Dense -> LeakyReLU(0.2) on this step's
    # latents, in numpy, not G's own running mean (which follows G's weights).
    dense = state["g_ema"]["params"]["Dense_0"]
    h = np.asarray(batch["z"], np.float64) @ np.asarray(dense["kernel"], np.float64) + np.asarray(
        dense["bias"]
    )
    mean = 0.99 * mean + 0.01 * np.where(h > 0, h, 0.2 * h).mean(axis=0)
    np.testing.assert_allclose(
        state["g_ema"]["batch_stats"]["BatchNorm_0"]["mean"], mean, rtol=1e-4, atol=1e-6
    )
  assert np.abs(state["g"].batch_stats["BatchNorm_0"]["mean"] - mean).max() > 1e-4  # G's own differ
  g = families.of(cfg).generator_of(state)
  assert g.params is state["g_ema"]["params"] and g.batch_stats is state["g_ema"]["batch_stats"]


@pytest.mark.slow
def test_g_ema_leaves_g_and_d_training_bit_identical():
  """The EMA arm trains exactly the baseline's G and D: only what is evaluated differs."""

  def run(ema):
    *_, state = list(_image_steps(3, **{"train.g_ema": ema}))[-1]
    return {k: state[k] for k in ("g", "d")}

  for a, b in zip(jax.tree.leaves(run(0.0)), jax.tree.leaves(run(0.999))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_spectral_norm_estimates_the_largest_singular_value_of_each_d_kernel(sweeps):
  # D after the spectral_norm arm's training steps, then more power iterations on its parameters
  cfg, state, data, *_ = runs.load_run(
      str(sweeps[0] / "dcgan_stabilisers" / "spectral_norm" / "seed0")
  )
  assert cfg.model.spectral_norm and state["d"].batch_stats  # the power-iteration vectors
  d = state["d"]
  task = families.make_task(cfg, data, jax.random.key(0))
  batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)

  @jax.jit
  def iterate(stats):  # more power iterations on fixed parameters
    def body(stats, _):
      _, upd = d.apply_fn(
          {"params": d.params, "batch_stats": stats},
          batch["x"][:4],
          train=True,
          rngs={"dropout": jax.random.key(0)},
          mutable=["batch_stats"],
      )
      return upd["batch_stats"], None

    return jax.lax.scan(body, stats, None, length=300)[0]

  d = d.replace(batch_stats=iterate(d.batch_stats))
  sigmas = {
      "/".join(str(getattr(k, "key", k)) for k in path): v
      for path, v in jax.tree_util.tree_leaves_with_path(d.batch_stats)
      if "sigma" in str(path[-1])
  }
  kernels = {
      "/".join(str(getattr(k, "key", k)) for k in path): v
      for path, v in jax.tree_util.tree_leaves_with_path(d.params)
      if "kernel" in str(path[-1])
  }
  assert len(sigmas) == len(kernels) == 3  # two convs and the dense layer
  for (ks, sigma), (kk, kernel) in zip(sorted(sigmas.items()), sorted(kernels.items())):
    k = np.asarray(kernel, np.float64)
    want = np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0]
    # Power iteration approaches the largest singular value from below.
    assert want * 0.995 <= float(np.asarray(sigma).ravel()[0]) <= want * (1 + 1e-5), (ks, kk)


def test_options_that_do_not_apply_are_refused():
  with pytest.raises(ConfigError, match="no label targets"):
    tiny_image(**{"loss.generator": "hinge", "loss.real_target": 0.9})
  with pytest.raises(ConfigError, match="spectral_norm is not implemented for model.arch=mlp1d"):
    tiny_1d(**{"model.spectral_norm": True})
  with pytest.raises(ConfigError, match="needs data.sampling=random"):
    tiny_1d(**{"loss.generator": "wgan_gp", "loss.real_target": 1.0, "loss.fake_target": 0.0})
  # LSGAN's targets are its a-b-c
  tiny_image(**{"loss.generator": "lsgan", "loss.real_target": 0.9})


SWEEP_STEPS = 4


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
  """The loss, stabiliser and critic-step sweeps trained for SWEEP_STEPS steps on synthetic data,
  one seed, through the command (compiled once for the tests of this file that read the runs).

  An arm that is exactly another sweep's arm (the same config, so the same programs) trains once:
  the stabilisers' "none" and the critic sweep's "ns" are dcgan_losses' "ns", the critic sweep's
  "wgan_gp" is dcgan_losses' "wgan_gp"."""
  arms = lambda exp: {
      a: cfg for a, _, cfg, _ in planning.build_configs(registry.get(exp), [], 1, None)
  }
  losses, stabilisers, critic = (
      arms(e) for e in ("dcgan_losses", "dcgan_stabilisers", "dcgan_critic_steps")
  )
  assert stabilisers["none"] == losses["ns"] == critic["ns"]
  assert critic["wgan_gp"] == losses["wgan_gp"]
  trained = {
      "dcgan_losses": list(losses),
      "dcgan_stabilisers": ["spectral_norm", "r1", "ema"],
      "dcgan_critic_steps": ["ns_c5"],
  }
  settings = {
      "data.name": "synthetic",
      "data.num_train": 256,
      "train.steps": SWEEP_STEPS,
      "train.batch_size": 8,
      "train.log_every": 2,
      "eval.every": 0,
      "eval.num_samples": 0,
      "ckpt.every": 0,
  }
  flags = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
  out = tmp_path_factory.mktemp("sweeps")
  codes = {}
  for exp, names in trained.items():
    argv = [f"--exp={exp}", f"--arms={','.join(names)}", "--seeds", "1", "--quiet", *flags]
    codes[exp] = run.main(argv + ["--wandb", "disabled", "--out", str(out)])
  return out, trained, codes


@pytest.mark.slow
def test_each_arm_of_the_loss_and_stabiliser_sweeps_trains_on_synthetic_data(sweeps):
  out, trained, codes = sweeps
  for exp, names in trained.items():
    assert codes[exp] == 0, exp
    summary = json.loads((out / exp / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == names, summary["arms"]
    assert all(a["status"] == {"0": "finished"} for a in summary["arms"]), summary["arms"]
    report = (out / exp / "report.md").read_text()
    if exp == "dcgan_losses":
      wgan = next(a for a in summary["arms"] if a["name"] == "wgan_gp")
      assert {"critic_real", "critic_fake", "w_estimate", "gp"} <= set(wgan["metrics"])
      # a critic's scores are not probabilities
      assert not {"d_real", "d_fake", "d_acc_real", "d_acc_fake"} & set(wgan["metrics"])
      assert "W1 estimate" in report
