"""Model families: everything specific to a kind of model, behind one record per family.

The loop, the runner, the report and the command-line tools ask `families.of(cfg)` and never
branch on a family or architecture name. Families: gan1d (the 1-D Gaussian GAN), image_gan
(MLP GAN and DCGANs), autoencoder (dense, denoising, convolutional), vae. An architecture names
its family when it registers (gen_models.models.registry). `validate(cfg)` is a config's whole
check: gen_models.config's own (choices, ranges) plus the registries' names and the family's.
"""

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import gan_losses
from gen_models import models
from gen_models.config import ConfigError
from gen_models.families import autoencoder
from gen_models.families import gan1d
from gen_models.families import image_gan
from gen_models.families import vae

# pylint: disable-next=unused-import
from gen_models.families.base import Family, describe, eval_key, first_seed_files

FAMILIES = {f.name: f for f in (gan1d.FAMILY, image_gan.FAMILY, autoencoder.FAMILY, vae.FAMILY)}


def get(name: str) -> Family:
  return FAMILIES[name]


def of(cfg) -> Family:
  """The family that trains cfg.model.arch."""
  return get(models.arch(cfg.model.arch).family)


def make_task(cfg, data, key, run_dir=None):
  return of(cfg).make_task(cfg, data, key, run_dir)


def registry_choices() -> dict:
  """The values the registries allow for the keys they own."""
  return {
      "data.name": tuple(data_lib.DATASETS),
      "model.arch": tuple(models.ARCHS),
      "loss.generator": tuple(gan_losses.LOSSES),
  }


def validate(cfg):
  """Every check of a config: its own (gen_models.config.validate), the registered names, and what
  only the model's family knows (sample counts, data, losses). Returns cfg unchanged."""
  for key, allowed in registry_choices().items():
    value = config_lib.get(cfg, key)
    if value not in allowed:
      raise ConfigError(
          f"Bad value for '{key}': {config_lib.short(value)}. Allowed: {', '.join(allowed)}."
      )
  config_lib.validate(cfg)
  of(cfg).validate(cfg)
  # (with eval.num_samples=0 nothing is scored, so an inherited early_samples is moot)
  if cfg.eval.early_samples and cfg.eval.num_samples and not of(cfg).scores_images(cfg):
    raise ConfigError(
        f"'eval.early_samples'={cfg.eval.early_samples} sets the image metrics' samples outside"
        f" the headline window, but this {of(cfg).name} config scores no generated images. Leave"
        " it 0."
    )
  return cfg
