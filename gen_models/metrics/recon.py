"""Reconstruction metrics of autoencoders on the test set (jitted, fixed-size batches).

Per image: MSE and BCE (pixel means, as Keras reports them) and PSNR = 10 log10(1 / MSE) in dB
(images in [0, 1]), each averaged over images. For denoising, the noisy input's PSNR is computed
on the input clipped to [0, 1] (the trivial denoiser) and the gain is denoised minus noisy PSNR.
For the VAE: the ELBO and its two terms (reconstruction NLL summed over pixels, KL), with z = the
posterior mean for the reconstruction metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import losses


def psnr(mse):
  return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-12))


@functools.partial(jax.jit, static_argnames=("vae", "bce"))
def _batch_metrics(ae, x, noise, key, *, vae, bce):
  x_in = x + noise
  out = ae.apply_fn({"params": ae.params}, x_in, train=False)
  recon = jax.nn.sigmoid(out["logits"])
  mse = losses.mse(recon, x)
  m = {
      "mse": mse,
      "bce": losses.bce_logits_per_example(out["logits"], x),
      "psnr": psnr(mse),
      "noisy_psnr": psnr(losses.mse(jnp.clip(x_in, 0.0, 1.0), x)),
  }
  if vae:
    sampled = ae.apply_fn({"params": ae.params}, x, train=True, rngs={"noise": key})
    n_pix = x[0].size
    if bce:
      nll = losses.bce_logits_per_example(sampled["logits"], x) * n_pix
    else:
      nll = 0.5 * losses.mse(jax.nn.sigmoid(sampled["logits"]), x) * n_pix
    kl = losses.gaussian_kl(sampled["mean"], sampled["logvar"])
    m.update(recon_nll=nll, kl=kl, elbo=-(nll + kl))
  return m


def evaluate(ae, x_u8, *, noise_std: float, key, vae: bool, bce: bool, batch: int = 500) -> dict:
  """Means over all images of x_u8 (uint8 (N, 28, 28, 1)); noise and VAE draws come from `key`,
  so every evaluation of a run sees the same noise."""
  sums, n = {}, len(x_u8)
  for i in range(0, n, batch):
    chunk = np.asarray(x_u8[i : i + batch])
    valid = len(chunk)
    if valid < batch:
      chunk = np.concatenate([chunk, np.zeros((batch - valid,) + chunk.shape[1:], chunk.dtype)])
    x = jnp.asarray(chunk, jnp.float32) / 255.0
    k = jax.random.fold_in(key, i)
    noise = noise_std * jax.random.normal(jax.random.fold_in(k, 0), x.shape)
    m = _batch_metrics(ae, x, noise, jax.random.fold_in(k, 1), vae=vae, bce=bce)
    for name, v in m.items():
      sums[name] = sums.get(name, 0.0) + float(jnp.sum(v[:valid]))
  out = {name: v / n for name, v in sums.items()}
  if noise_std > 0:
    out["psnr_gain"] = out["psnr"] - out["noisy_psnr"]
  else:
    out.pop("noisy_psnr")
  return out
