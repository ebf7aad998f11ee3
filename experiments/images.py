"""Image GANs of the seed notes on MNIST-like data, and the card's DCGAN sweeps.

Defaults follow the seeds; training length is 5 epochs of the 60,000 training images. Switch
the dataset of any of them with --set data.name=fashion_mnist (or synthetic for a smoke test).
"""

from experiments.experiment import Experiment
from gen_models import config as config_lib
from gen_models.config import Ckpt, Config, Data, Eval, Model, Optim, Train

TRAIN_IMAGES = 60_000


def epochs(n, batch_size):
  return -(-n * TRAIN_IMAGES // batch_size)  # ceil


def _train(batch_size, log_every=50):
  # scan_chunk 0 = auto: 1 on CPU (a conv step inside lax.scan runs several times slower there than
  # dispatched from Python, see `python -m experiments.bench`), chunks on GPU/TPU (gen_models.loop).
  return Train(
      steps=epochs(5, batch_size), batch_size=batch_size, scan_chunk=0, log_every=log_every
  )


# Evaluation (10,000 samples: classifier FID, KID, precision/recall, classes) costs ~8 s on 2 cores.
COMMON = dict(
    seed=0, seeds=3, eval=Eval(every=1000, num_samples=10_000), ckpt=Ckpt(every=1000, keep=2)
)

# Seed 004 (PyTorch course): z 10 ~ N(0,1), MLP G/D, BCE with the non-saturating G loss. The notes
# give no optimizer; Adam 2e-4 / beta1 0.5 (the DCGAN paper's) with batch 128.
MLP_GAN = Config(
    data=Data(name="mnist", range="sigmoid"),
    model=Model(arch="mlp_gan", latent_dim=10, hidden=128, noise="normal"),
    # PyTorch's Adam: eps 1e-8 on the bias-corrected root (optax's form)
    optim=Optim(name="adam", g_lr=2e-4, d_lr=2e-4, b1=0.5, b2=0.999, eps=1e-8, eps_form="optax"),
    train=_train(128),
    **COMMON,
)

# Seed 000 ("모두의 딥러닝" ch. 19): z 100 ~ N(0,1), tanh output on [-1, 1] data, Keras' default
# Adam (lr 1e-3) for both, batch 32 as in its gan_train(4001, 32, 200) call.
DCGAN = Config(
    data=Data(name="mnist", range="tanh"),
    model=Model(arch="dcgan", latent_dim=100, noise="normal"),
    optim=Optim(name="adam", g_lr=1e-3, d_lr=1e-3),
    train=_train(32),
    **COMMON,
)

# Seed 001: z 32 ~ U(-1,1), sigmoid output on [0, 1] data, Adam 4e-4, batch 128.
DCGAN_TRANSPOSE = Config(
    data=Data(name="mnist", range="sigmoid"),
    model=Model(arch="dcgan_transpose", latent_dim=32, noise="uniform"),
    optim=Optim(name="adam", g_lr=4e-4, d_lr=4e-4),
    train=_train(128),
    **COMMON,
)

# Seed 002 (Atienza): z 100 ~ U(-1,1), sigmoid output, RMSprop lr 2e-4 decay 6e-8 for D and half of
# both for the adversarial (G) model, batch 64.
DCGAN_ATIENZA = Config(
    data=Data(name="mnist", range="sigmoid"),
    model=Model(arch="dcgan_atienza", latent_dim=100, noise="uniform"),
    optim=Optim(name="rmsprop", d_lr=2e-4, g_lr=1e-4, d_decay=6e-8, g_decay=3e-8),
    train=_train(64),
    **COMMON,
)

# The card's DCGAN questions: the protocol of seed 000's book (gan_train(4001, 32, 200): 4,000
# steps x 32, rather than 5 epochs), evaluated every 500 steps, the headline from the evaluations at
# 3,000-4,000; seeds on demand under the group-sequential design, looks at 11, 16 and 21 seeds per
# arm: 11 is the fewest at which an exact verdict is possible at the first look's level with up to
# 4 comparisons (2 / 2^11 against 0.0016 for dcgan_losses; `--summary` prints it per look).
# The 6 evaluations before the headline window only draw curves: 2,000 samples there (the count is
# marked on the curves), 10,000 in the window (`python -m experiments.bench --eval-samples`).
DCGAN_SWEEP = config_lib.apply_overrides(
    DCGAN,
    {
        "train.steps": 4000,
        "eval.every": 500,
        "eval.early_samples": 2000,
        "ckpt.every": 500,
        "seeds": 11,
    },
)
SWEEP_DESIGN = dict(seeds_on_demand=(11, 5, 21))
# The seed's own length (5 epochs of 32) stays one flag away.
SWEEP_PROTOCOLS = dict(
    protocols=(
        (
            "epochs",
            (
                "5 epochs of the 60,000 images (9,375 steps x 32), evaluated every 1,000 steps with"
                " 10,000 samples"
            ),
            {
                "train.steps": epochs(5, 32),
                "eval.every": 1000,
                "eval.early_samples": 0,
                "ckpt.every": 1000,
            },
        ),
    )
)

SMOOTHING_ARMS = (
    ("none", {"loss.real_target": 1.0, "loss.fake_target": 0.0}),
    ("one_sided", {"loss.real_target": 0.9, "loss.fake_target": 0.0, "loss.gen_target": 1.0}),
    ("two_sided", {"loss.real_target": 0.9, "loss.fake_target": 0.1, "loss.gen_target": 1.0}),
)

LOSS_ARMS = tuple(
    (name, {"loss.generator": name}) for name in ("ns", "minimax", "hinge", "lsgan", "wgan_gp")
)

STABILISER_ARMS = (
    ("none", {}),
    ("spectral_norm", {"model.spectral_norm": True}),
    ("r1", {"loss.r1_gamma": 10.0}),
    ("ema", {"train.g_ema": 0.999}),
)

EXPERIMENTS = [
    Experiment(
        "mlp_gan",
        "vanilla MLP GAN on MNIST (seed 004 shape: 4 BN blocks G, 3 LeakyReLU blocks D)",
        MLP_GAN,
    ),
    Experiment("dcgan", "DCGAN, upsample + conv generator, tanh (seed 000 shape)", DCGAN),
    Experiment(
        "dcgan_transpose",
        "DCGAN with transposed convs, D on real+fake (seed 001 shape)",
        DCGAN_TRANSPOSE,
    ),
    Experiment("dcgan_atienza", "DCGAN of Atienza's book, RMSprop (seed 002 shape)", DCGAN_ATIENZA),
    Experiment(
        "dcgan_label_smoothing",
        "dcgan, D targets: none 1/0, one-sided 0.9/0, two-sided 0.9/0.1 (G target 1)",
        DCGAN_SWEEP,
        SMOOTHING_ARMS,
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
    Experiment(
        "dcgan_loss",
        "dcgan, generator loss: non-saturating vs minimax",
        DCGAN_SWEEP,
        (("ns", {"loss.generator": "ns"}), ("minimax", {"loss.generator": "minimax"})),
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
    Experiment(
        "dcgan_latent",
        "dcgan, latent_dim 2 / 10 / 32 / 100 (2 also draws a latent-space walk)",
        DCGAN_SWEEP,
        tuple((f"z{d}", {"model.latent_dim": d}) for d in (2, 10, 32, 100)),
        baseline="z100",
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),  # the seed's latent size: every other size is compared with it
    # The losses compare_gan and StudioGAN sweep, each a gen_models/gan_losses entry; everything
    # else (architecture, Adam 1e-3, batch, steps) stays the seed's, so only the loss changes.
    Experiment(
        "dcgan_losses",
        "dcgan, GAN loss: non-saturating / minimax / hinge / least squares / WGAN-GP "
        "(lambda 10, 5 critic steps per G step)",
        DCGAN_SWEEP,
        LOSS_ARMS,
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
    # WGAN-GP's 5 critic steps per G step confound its loss with 5x the D updates and real images:
    # the non-saturating loss at 5 D steps per G step is the baseline both are compared with.
    Experiment(
        "dcgan_critic_steps",
        "dcgan: non-saturating loss with 1 or 5 D steps per G step, and WGAN-GP (5)",
        DCGAN_SWEEP,
        (
            ("ns", {"loss.generator": "ns"}),
            ("ns_c5", {"loss.generator": "ns", "loss.n_critic": 5}),
            ("wgan_gp", {"loss.generator": "wgan_gp"}),
        ),
        baseline="ns_c5",
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
    # Lucic et al. 2018's point: compare GAN losses at equal compute. Every arm gets the training
    # FLOPs of 4,000 steps of the non-saturating loss; WGAN-GP's 5 critic updates with a
    # double-backward penalty per G step buy it proportionally fewer G steps.
    Experiment(
        "dcgan_equal_flops",
        "dcgan: non-saturating / minimax / WGAN-GP at equal training FLOPs (ns's 4,000 steps)",
        config_lib.apply_overrides(DCGAN_SWEEP, {"train.budget_unit": "flops"}),
        (
            ("ns", {"loss.generator": "ns"}),
            ("minimax", {"loss.generator": "minimax"}),
            ("wgan_gp", {"loss.generator": "wgan_gp"}),
        ),
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
    Experiment(
        "dcgan_stabilisers",
        "dcgan (ns loss) with one stabiliser each: none / spectral norm on D / "
        "R1 penalty (gamma 10) / EMA of G's weights (decay 0.999)",
        DCGAN_SWEEP,
        STABILISER_ARMS,
        **SWEEP_DESIGN,
        **SWEEP_PROTOCOLS,
    ),
]
