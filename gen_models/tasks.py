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


@jax.jit
def apply_g(g, z):
  """G(z) in inference mode (BatchNorm uses its running statistics)."""
  return g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, z, train=False)


_latent = jax.jit(data_lib.sample_latent, static_argnums=(1, 2))


def generate(g, key, *, n, latent_dim, noise):
  """n samples from G in inference mode, for the latents drawn from `key`."""
  return apply_g(g, _latent(key, (n, latent_dim), noise))


def eval_key(key):
  """The same evaluation noise at every evaluation of a run, so curves and grids are comparable."""
  return jax.random.fold_in(key, 3)


def _eval_1d_fn(cfg, real, key):
  """The 1-D GAN's evaluation. Its noise is the same at every evaluation, so the latents (100,000
  x 16 threefry draws cost ~3x the G forward on CPU) are drawn once per run, at the first call."""
  m = cfg.model
  cache = {}

  def evaluate(state, step):
    del step
    if not cache:
      cache["small"] = _latent(jax.random.fold_in(key, 0), (cfg.eval.kl_samples, m.latent_dim), m.noise)
      cache["large"] = _latent(jax.random.fold_in(key, 1), (cfg.eval.num_samples, m.latent_dim), m.noise)
      # The training sample itself is only 1000 draws: a G that reproduced it exactly would
      # still be this far from N(0,1).
      cache["real"] = {"w1_real": distribution.w1_to_normal(real),
                       "ks_real": distribution.ks_to_normal(real), **floors_1d(cfg)}
    small, large = apply_g(state["g"], cache["small"]), apply_g(state["g"], cache["large"])
    out = distribution.evaluate(real, np.asarray(small), np.asarray(large))
    out.update(cache["real"])
    return out

  return evaluate


def floors_1d(cfg) -> dict:
  """Sampling floors: what a perfect generator scores at these sample counts."""
  kl = distribution.kl_floor(cfg.eval.kl_samples)
  precise = distribution.precise_floor(cfg.eval.num_samples)
  return {"kl_floor": kl["median"], "w1_floor": precise["w1"], "ks_floor": precise["ks"]}


GRID_SAMPLES = 64  # fixed-noise samples drawn at every evaluation of an image GAN


def fixed_samples(cfg, g, key, n=GRID_SAMPLES):
  """G's images for the run's fixed evaluation noise, as uint8 (n, 28, 28)."""
  m = cfg.model
  images = generate(g, jax.random.fold_in(eval_key(key), 2), n=n, latent_dim=m.latent_dim, noise=m.noise)
  return plots.to_uint8(images, cfg.data.range)


def generate_u8(cfg, g, key, n: int, batch: int = 500) -> np.ndarray:
  """n generated images as uint8 (n, 28, 28), in fixed-size jitted batches."""
  m = cfg.model
  out = []
  for i in range(0, n, batch):
    images = generate(g, jax.random.fold_in(key, i), n=batch, latent_dim=m.latent_dim, noise=m.noise)
    out.append(plots.to_uint8(images, cfg.data.range))
  return np.concatenate(out)[:n]


def image_metrics(cfg, data, images_u8, log=print) -> dict:
  """Classifier-feature metrics of generated images against the test split under each extractor
  of the dataset's ensemble (<name>_e<k>) and their mean (<name>), with the real-data floors
  (the same metrics between as many training and test images) as <name>_floor."""
  from gen_models.metrics import features  # pylint: disable=g-import-not-at-top
  return features.get(cfg.data.name, data, log).metrics(images_u8)


def extractor_info(cfg, data):
  """The identity of the ensemble that scores this run's images (None if nothing is scored)."""
  if family(cfg) == "gan1d" or cfg.eval.num_samples == 0 or (family(cfg) == "ae" and cfg.model.arch != "vae"):
    return None
  from gen_models.metrics import features  # pylint: disable=g-import-not-at-top
  return features.get(cfg.data.name, data, lambda s: None).info()


def _eval_image_gan(cfg, run_dir, key, data, state, step):
  out = {}
  if run_dir:
    path = os.path.join(run_dir, "samples", f"step_{step:07d}.png")
    out["_images"] = {"samples": plots.save_grid(fixed_samples(cfg, state["g"], key), path)}
  if cfg.eval.num_samples > 0 and "test" in data:
    images = generate_u8(cfg, state["g"], jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples)
    metrics = image_metrics(cfg, data, images)
    metrics.pop("class_hist")
    out.update(metrics)
    out["_label"] = f"(mean of {metrics['extractors']} extractors {extractor_info(cfg, data)['ident']})"
  return out


def make_task(cfg, data: dict, key, run_dir=None) -> loop.Task:
  """data: host arrays from data_lib.load(cfg); run_dir: where evaluations save images."""
  fam = family(cfg)
  train_x = data["train"]["x"]
  if fam in ("gan1d", "gan"):
    spec = data_lib.batch_spec(cfg, train_x.shape[0])
    init = functools.partial(state_lib.create_gan_state, cfg, data_shape=tuple(train_x.shape[1:]))
    if fam == "gan1d":
      evaluate = _eval_1d_fn(cfg, train_x, eval_key(key))
    else:
      evaluate = functools.partial(_eval_image_gan, cfg, run_dir, key, data)
    return loop.Task(init=init, step=steps.gan_step, spec=spec,
                     hparams=gan_hparams(cfg), evaluate=evaluate,
                     examples_per_step=cfg.train.batch_size,
                     unit="ex" if fam == "gan1d" else "img")
  spec = data_lib.batch_spec(cfg, train_x.shape[0], with_latent=False)
  init = functools.partial(state_lib.create_ae_state, cfg, data_shape=tuple(train_x.shape[1:]))
  if cfg.model.arch == "vae":
    step = steps.vae_step
  else:
    step = steps.ae_step_fixed_noise if cfg.data.noise == "fixed" and cfg.data.noise_std > 0 else steps.ae_step
  return loop.Task(init=init, step=step,
                   spec=spec, hparams=ae_hparams(cfg), evaluate=functools.partial(_eval_ae, cfg, key, data),
                   examples_per_step=cfg.train.batch_size, unit="img")


def ae_hparams(cfg) -> dict:
  return {"noise_std": np.float32(cfg.data.noise_std), "noise_seed": np.uint32(cfg.seed),
          "bce": np.float32(cfg.loss.recon == "bce"),
          "beta": np.float32(cfg.loss.beta)}


def _eval_ae(cfg, key, data, state, step):
  del step
  from gen_models.metrics import recon  # pylint: disable=g-import-not-at-top
  out = recon.evaluate(state["ae"], data["test"]["x"], noise_std=cfg.data.noise_std,
                       key=jax.random.fold_in(eval_key(key), 4), vae=cfg.model.arch == "vae",
                       bce=cfg.loss.recon == "bce")
  out["test_images"] = len(data["test"]["x"])
  if cfg.model.arch == "vae" and cfg.eval.num_samples > 0:
    images = vae_prior_samples(cfg, state, jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples)
    metrics = image_metrics(cfg, data, images)
    metrics.pop("class_hist")
    out.update(metrics)
  return out


@functools.partial(jax.jit, static_argnames=("n", "latent_dim"))
def _vae_decode_prior(ae, key, *, n, latent_dim):
  from gen_models.models import autoencoder  # pylint: disable=g-import-not-at-top
  z = jax.random.normal(key, (n, latent_dim))
  return ae.apply_fn({"params": ae.params}, z, method=autoencoder.VAE.generate)


def vae_prior_samples(cfg, state, key, n: int, batch: int = 500) -> np.ndarray:
  """n images decoded from z ~ N(0, I) (decoder means), uint8 (n, 28, 28)."""
  out = []
  for i in range(0, n, batch):
    images = _vae_decode_prior(state["ae"], jax.random.fold_in(key, i), n=batch, latent_dim=cfg.model.latent_dim)
    out.append(plots.to_uint8(images, "sigmoid"))
  return np.concatenate(out)[:n]


@jax.jit
def _reconstruct(ae, x):
  return jax.nn.sigmoid(ae.apply_fn({"params": ae.params}, x, train=False)["logits"])


@jax.jit
def _encode(ae, x):
  return ae.apply_fn({"params": ae.params}, x, train=False)["z"]


def _ae_artifacts(cfg, state, data, rows, run_dir, key, title):
  sample_dir = os.path.join(run_dir, "samples")
  ae = state["ae"]
  test_x, test_y = data["test"]["x"], data["test"]["y"]
  x = jnp.asarray(test_x[:10], jnp.float32) / 255.0
  out = []
  if cfg.data.noise_std > 0:  # the seed's 3-row figure: noisy / denoised / clean
    noisy = x + cfg.data.noise_std * jax.random.normal(jax.random.fold_in(eval_key(key), 5), x.shape)
    rows_u8 = [plots.to_uint8(jnp.clip(noisy, 0, 1), "sigmoid"), plots.to_uint8(_reconstruct(ae, noisy), "sigmoid"),
               plots.to_uint8(x, "sigmoid")]
    out.append(plots.image_rows(rows_u8, ["noisy", "denoised", "clean"], os.path.join(sample_dir, "denoise.png"),
                                f"{title}: noise std {cfg.data.noise_std}"))
  else:  # the seed's 2-row figure: originals over reconstructions
    rows_u8 = [plots.to_uint8(x, "sigmoid"), plots.to_uint8(_reconstruct(ae, x), "sigmoid")]
    out.append(plots.image_rows(rows_u8, ["original", "reconstruction"], os.path.join(sample_dir, "recon.png"), title))
  codes = np.concatenate([np.asarray(_encode(ae, jnp.asarray(test_x[i:i + 1000], jnp.float32) / 255.0))
                          for i in range(0, min(5000, len(test_x)), 1000)])
  if codes.shape[1] == 2:
    out.append(plots.latent_scatter(codes, test_y[:len(codes)], os.path.join(sample_dir, "latent.png"),
                                    f"{title}: test codes coloured by label"))
  if cfg.model.arch == "vae":
    prior = vae_prior_samples(cfg, state, jax.random.fold_in(eval_key(key), 6), 64)
    out.append(plots.save_grid(prior, os.path.join(sample_dir, "prior_samples.png")))
    out.append(plots.save_grid(vae_interpolation(state, test_x), os.path.join(sample_dir, "interpolation.png"),
                               cols=10))
  out.append(plots.training_curves(rows, os.path.join(sample_dir, "curves.png"), [
      ("training loss", ["train/loss"], True),
      ("test reconstruction MSE", ["eval/mse"], True),
      ("test PSNR (dB)", ["eval/psnr", "eval/noisy_psnr"], False)], title))
  return out


def vae_interpolation(state, test_x, pairs: int = 6, steps_: int = 10) -> np.ndarray:
  """Rows of decoder outputs along straight lines between the posterior means of test pairs."""
  from gen_models.models import autoencoder  # pylint: disable=g-import-not-at-top
  ae = state["ae"]
  x = jnp.asarray(test_x[:2 * pairs], jnp.float32) / 255.0
  z = ae.apply_fn({"params": ae.params}, x, train=False)["mean"]
  t = jnp.linspace(0.0, 1.0, steps_)[None, :, None]
  path = (z[0::2, None] * (1 - t) + z[1::2, None] * t).reshape(-1, z.shape[1])
  images = ae.apply_fn({"params": ae.params}, path, method=autoencoder.VAE.generate)
  return plots.to_uint8(images, "sigmoid")


def sample_images(cfg, state, key, n: int) -> np.ndarray:
  """n images (uint8, (n, 28, 28)) from a GAN's generator or a VAE's prior."""
  if cfg.model.arch == "vae":
    return vae_prior_samples(cfg, state, key, n)
  if family(cfg) != "gan":
    raise ValueError(f"model.arch={cfg.model.arch} has no generator to sample from (only GANs and the VAE)")
  return generate_u8(cfg, state["g"], key, n)


def evaluate_saved(cfg, state, data, key) -> dict:
  """The family's evaluation of a restored state (experiments.evaluate)."""
  fam = family(cfg)
  if fam == "gan1d":
    return _eval_1d_fn(cfg, data["train"]["x"], eval_key(key))(state, -1)
  if fam == "gan":
    images = generate_u8(cfg, state["g"], jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples)
    return image_metrics(cfg, data, images, log=lambda s: None)
  return _eval_ae(cfg, key, data, state, -1)


def describe(state) -> str:
  """'g: 852,609 parameters (+12,672 BatchNorm statistics), d: 212,865 parameters'."""
  parts = []
  for name in sorted(state, key=lambda n: n != "g"):
    sub = state[name]
    text = f"{name}: {state_lib.param_count(sub.params):,} parameters"
    stats = state_lib.param_count(sub.batch_stats) if sub.batch_stats else 0
    parts.append(text + (f" (+{stats:,} BatchNorm statistics)" if stats else ""))
  return ", ".join(parts)


def latent_walk(cfg, g, n=12):
  """For a 2-D latent: G over an n x n grid of z (the prior's range: [-1, 1]^2 for uniform,
  normal quantiles 2.5%..97.5% for normal) as an (n*n, 28, 28) uint8 batch, rows = z[0]."""
  if cfg.model.noise == "uniform":
    axis = np.linspace(-1.0, 1.0, n)
  else:
    from scipy import special  # pylint: disable=g-import-not-at-top
    axis = special.ndtri(np.linspace(0.025, 0.975, n))
  z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
  images = g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, jnp.asarray(z), train=False)
  return plots.to_uint8(images, cfg.data.range)


def _image_gan_artifacts(cfg, state, data, rows, run_dir, key, title):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  sample_dir = os.path.join(run_dir, "samples")
  out = [plots.save_grid(fixed_samples(cfg, state["g"], key), os.path.join(sample_dir, "final.png"))]
  steps_png = sorted(f for f in os.listdir(sample_dir) if f.startswith("step_") and f.endswith(".png"))
  if steps_png:
    frames = [np.asarray(Image.open(os.path.join(sample_dir, f))) for f in steps_png]
    plots.save_gif(frames, os.path.join(sample_dir, "progress.gif"))
    pick = np.unique(np.linspace(0, len(steps_png) - 1, min(len(steps_png), 10)).round().astype(int))
    out.append(plots.progress_strip(
        [(int(steps_png[i][5:12]), frames[i]) for i in pick], os.path.join(sample_dir, "progress.png"),
        title + ": the same 8 latent vectors over training"))
  if cfg.model.latent_dim == 2:
    out.append(plots.save_grid(latent_walk(cfg, state["g"]), os.path.join(sample_dir, "latent_walk.png"),
                               cols=12))
  if cfg.eval.num_samples > 0 and "test" in data:
    from gen_models.metrics import fid  # pylint: disable=g-import-not-at-top
    from gen_models.metrics import features  # pylint: disable=g-import-not-at-top
    images = generate_u8(cfg, state["g"], jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples)
    ensemble = features.get(cfg.data.name, data)
    probs, _ = ensemble.members[0](images)
    real_probs, _ = ensemble.real(0, min(len(images), len(data["test"]["x"])))
    out.append(plots.class_histogram(fid.class_stats(probs)["class_hist"], fid.class_stats(real_probs)["class_hist"],
                                     os.path.join(sample_dir, "classes.png"),
                                     f"{title}: classes of {len(images):,} generated images"))
  out.append(plots.training_curves(rows, os.path.join(sample_dir, "curves.png"), [
      ("losses", ["train/d_loss", "train/g_loss"], False),
      ("D outputs", ["train/d_real", "train/d_fake"], False),
      ("D accuracy", ["train/d_acc_real", "train/d_acc_fake"], False),
      ("classifier FID", ["eval/fid", "eval/fid_floor"], True)], title))
  return out


def artifacts(cfg, state, data: dict, rows: list, run_dir: str, key, title: str) -> list[str]:
  """Writes a finished run's figures under run_dir/samples/; returns their paths."""
  out = []
  sample_dir = os.path.join(run_dir, "samples")
  fam = family(cfg)
  if fam == "gan":
    return _image_gan_artifacts(cfg, state, data, rows, run_dir, key, title)
  if fam == "ae":
    return _ae_artifacts(cfg, state, data, rows, run_dir, key, title)
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
