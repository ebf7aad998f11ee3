"""Autoencoders of the seed notes (dense, denoising, convolutional) and a VAE, on MNIST-like data.

Autoencoders train on optim.g_lr; data.noise_std adds N(0, noise_std^2) noise to the inputs
(denoising); loss.recon picks the reconstruction loss (mse | bce)."""

from experiments import images
from experiments.experiment import Experiment
from gen_models.config import Ckpt, Config, Data, Eval, Loss, Model, Optim, Train


def _ae(arch, latent=32, recon="mse", noise=0.0, batch=256, epochs=50, lr=1e-3, num_samples=0):
  # Keras' Adam (lr 1e-3, eps 1e-7, Keras' eps form). scan_chunk auto: on CPU 50 steps per dispatch
  # for
  # the dense nets (lax.scan pays off for tiny matmul steps), 1 for conv nets; chunks on GPU/TPU.
  return Config(
      seed=0,
      seeds=3,
      data=Data(name="mnist", range="sigmoid", noise_std=noise),
      model=Model(arch=arch, latent_dim=latent),
      loss=Loss(recon=recon),
      optim=Optim(name="adam", g_lr=lr),
      train=Train(steps=images.epochs(epochs, batch), batch_size=batch, scan_chunk=0, log_every=50),
      eval=Eval(every=1000, num_samples=num_samples),
      ckpt=Ckpt(every=1000, keep=2),
  )


AE_DENSE = _ae("ae_dense")  # seed 001: 784-32-784, MSE, Adam, batch 256, 50 epochs
# seed 001: input + 0.55 N(0,1) drawn once (data.noise=fixed), clean target
AE_DENOISING = _ae("ae_dense", noise=0.55)
AE_CONV = _ae("ae_conv", recon="bce", batch=128)  # seed 000: BCE, batch 128, 50 epochs
# VAE: Bernoulli decoder, 16-d Gaussian latent, 20 epochs; prior samples scored like the GANs.
VAE = _ae("vae", latent=16, recon="bce", batch=128, epochs=20, num_samples=10_000)

EXPERIMENTS = [
    Experiment("ae_dense", "dense autoencoder 784-32-784, MSE (seed 001)", AE_DENSE),
    Experiment(
        "ae_denoising",
        "the dense autoencoder trained on input + 0.55 N(0,1), clean target (seed 001)",
        AE_DENOISING,
    ),
    Experiment(
        "ae_denoising_noise",
        "denoising autoencoder, noise std 0.25 / 0.55 / 0.75",
        AE_DENOISING,
        tuple((f"noise{int(s * 100):02d}", {"data.noise_std": s}) for s in (0.25, 0.55, 0.75)),
    ),
    Experiment(
        "ae_denoising_protocol",
        "denoising autoencoder: the seed's fixed noisy copy vs fresh noise every step",
        AE_DENOISING,
        (("fixed", {"data.noise": "fixed"}), ("fresh", {"data.noise": "fresh"})),
    ),
    Experiment("ae_conv", "convolutional autoencoder, BCE (seed 000)", AE_CONV),
    Experiment(
        "vae",
        "convolutional VAE, 16-d Gaussian latent, Bernoulli decoder; prior samples get the GAN"
        " metrics",
        VAE,
    ),
    Experiment(
        "ae_latent",
        "dense autoencoder with encoding_dim 2 / 8 / 32 / 64",
        AE_DENSE,
        tuple((f"z{d}", {"model.latent_dim": d}) for d in (2, 8, 32, 64)),
    ),
]
