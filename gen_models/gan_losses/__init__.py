"""The GAN loss registry: loss.generator -> a GanLoss (both players' objectives, D's penalty, D's
metrics).

A new loss is one file in this package that calls `register(GanLoss(...))`, one import line in
this file, and its test. Every loss takes D's *logits* (raw outputs), so nothing
saturates in float32; `w` (B,) weights the examples (padding rows weigh 0).
"""

from gen_models.gan_losses import bce  # pylint: disable=unused-import (each file registers itself)
from gen_models.gan_losses import hinge  # pylint: disable=unused-import
from gen_models.gan_losses import lsgan  # pylint: disable=unused-import
from gen_models.gan_losses import wgan_gp  # pylint: disable=unused-import

# pylint: disable-next=unused-import
from gen_models.gan_losses.base import LOSSES, GanLoss, get, hparams, register, traced_keys, wmean
