"""Model-family glue: what a run of each family initialises, trains, evaluates and draws.

`make_task(cfg, data, key)` returns the loop's Task; `artifacts(...)` writes a finished run's
figures. Families: "gan1d" (the 1-D Gaussian GAN), "gan" (image GANs), "ae" (autoencoders).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import data as data_lib
from gen_models import loop
from gen_models import models
from gen_models import plots
from gen_models import state as state_lib
from gen_models import steps
from gen_models.metrics import distribution


def family(cfg) -> str:
  if cfg.model.arch == "mlp1d":
    return "gan1d"
  if cfg.model.arch in models.GAN_ARCHS:
    return "gan"
  return "ae"


def gan_hparams(cfg) -> dict:
  l = cfg.loss
  gen_target = l.real_target if l.gen_target is None else l.gen_target
  return {"real_target": np.float32(l.real_target), "fake_target": np.float32(l.fake_target),
          "gen_target": np.float32(gen_target),
          "minimax": np.float32(1.0 if l.generator == "minimax" else 0.0)}


@functools.partial(jax.jit, static_argnames=("n", "latent_dim", "noise"))
def generate(g, key, *, n, latent_dim, noise):
  """n samples from G in inference mode (BatchNorm uses its running statistics)."""
  z = data_lib.sample_latent(key, (n, latent_dim), noise)
  return g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, z, train=False)


def eval_key(key):
  """The same evaluation noise at every evaluation of a run, so curves and grids are comparable."""
  return jax.random.fold_in(key, 3)


def _eval_1d(cfg, real, key, state, step):
  del step
  g, m = state["g"], cfg.model
  small = generate(g, jax.random.fold_in(key, 0), n=cfg.eval.kl_samples, latent_dim=m.latent_dim, noise=m.noise)
  large = generate(g, jax.random.fold_in(key, 1), n=cfg.eval.num_samples, latent_dim=m.latent_dim, noise=m.noise)
  out = distribution.evaluate(real, np.asarray(small), np.asarray(large))
  out.update(floors_1d(cfg))
  # The training sample itself is only 1000 draws: a G that reproduced it exactly would still
  # be this far from N(0,1).
  out["w1_real"] = distribution.w1_to_normal(real)
  out["ks_real"] = distribution.ks_to_normal(real)
  return out


def floors_1d(cfg) -> dict:
  """Sampling floors: what a perfect generator scores at these sample counts."""
  kl = distribution.kl_floor(cfg.eval.kl_samples)
  precise = distribution.precise_floor(cfg.eval.num_samples)
  return {"kl_floor": kl["median"], "w1_floor": precise["w1"], "ks_floor": precise["ks"]}


def make_task(cfg, data: dict, key) -> loop.Task:
  """data: host arrays from data_lib.load(cfg)."""
  fam = family(cfg)
  train_x = data["train"]["x"]
  if fam in ("gan1d", "gan"):
    spec = data_lib.batch_spec(cfg, train_x.shape[0])
    init = functools.partial(state_lib.create_gan_state, cfg, data_shape=tuple(train_x.shape[1:]))
    evaluate = None
    if fam == "gan1d":
      evaluate = functools.partial(_eval_1d, cfg, train_x, eval_key(key))
    return loop.Task(init=init, step=steps.gan_step, spec=spec,
                     hparams=gan_hparams(cfg), evaluate=evaluate,
                     examples_per_step=cfg.train.batch_size)
  raise NotImplementedError(f"family {fam} is not implemented yet")


def artifacts(cfg, state, data: dict, rows: list, run_dir: str, key, title: str) -> list[str]:
  """Writes a finished run's figures under run_dir/samples/; returns their paths."""
  out = []
  sample_dir = os.path.join(run_dir, "samples")
  fam = family(cfg)
  if fam == "gan1d":
    m = cfg.model
    fake = generate(state["g"], jax.random.fold_in(eval_key(key), 1), n=cfg.eval.num_samples,
                    latent_dim=m.latent_dim, noise=m.noise)
    fake = np.asarray(fake)
    os.makedirs(sample_dir, exist_ok=True)
    np.save(os.path.join(sample_dir, "generated.npy"), fake[:20000, 0])  # for the sweep report
    out.append(plots.density_1d(data["train"]["x"], fake,
                                os.path.join(sample_dir, "density.png"), title))
    out.append(plots.training_curves(rows, os.path.join(sample_dir, "curves.png"), [
        ("losses", ["train/d_loss", "train/g_loss"], False),
        ("D outputs", ["train/d_real", "train/d_fake"], False),
        ("histogram KL (1000 vs 1000)", ["eval/kl", "eval/kl_floor"], False),
        ("W1 / KS to N(0,1)", ["eval/w1", "eval/ks", "eval/w1_floor"], True)], title))
  return out
