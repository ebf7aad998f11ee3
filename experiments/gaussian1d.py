"""The 1-D Gaussian GAN of seeds 002/003, and its sweeps over label smoothing and the G loss.

Seed protocol: real = 1000 draws of N(0,1); z ~ U(-1,1)^16; G 16-32(relu)-1, D 1-32(relu)-1;
RMSprop lr 1e-3 (D) / 5e-4 (G); the 1000 samples cut into 3 fixed minibatches (333/333/334) per
epoch, 1000 epochs = 3000 steps; D targets 0.9 / 0.1, G target 0.9.
"""

from experiments.experiment import Experiment
from gen_models.config import Ckpt, Config, Data, Eval, Loss, Model, Optim, Train

BASE = Config(
    seed=0,
    seeds=5,
    data=Data(name="gaussian1d", num_real=1000, sampling="sequential"),
    model=Model(arch="mlp1d", latent_dim=16, hidden=32, noise="uniform"),
    loss=Loss(generator="ns", real_target=0.9, fake_target=0.1, gen_target=None),
    optim=Optim(name="rmsprop", g_lr=5e-4, d_lr=1e-3, rho=0.9, eps=1e-7),
    # auto: 30 steps (10 epochs) per dispatch on CPU: the tiny step is ~300x faster fused in
    # lax.scan.
    # auto: 30 on CPU
    train=Train(steps=3000, batch_size=333, scan_chunk=0, log_every=30, vmap_runs=True),
    eval=Eval(every=150, num_samples=100_000, kl_samples=1000),
    ckpt=Ckpt(every=1500, keep=2),
)

SMOOTHING_ARMS = (
    ("none", {"loss.real_target": 1.0, "loss.fake_target": 0.0}),
    ("one_sided", {"loss.real_target": 0.9, "loss.fake_target": 0.0}),
    ("two_sided", {"loss.real_target": 0.9, "loss.fake_target": 0.1}),
)

EXPERIMENTS = [
    Experiment(
        "gaussian1d",
        "1-D GAN learning N(0,1), the seed protocol (two-sided 0.9/0.1 targets, 5 seeds)",
        BASE,
    ),
    Experiment(
        "gaussian1d_label_smoothing",
        "1-D GAN, label smoothing arms: none 1/0, one-sided 0.9/0, two-sided 0.9/0.1 (G target ="
        " real target)",
        BASE,
        SMOOTHING_ARMS,
    ),
    Experiment(
        "gaussian1d_loss",
        "1-D GAN, generator loss arms: non-saturating vs minimax",
        BASE,
        (("ns", {"loss.generator": "ns"}), ("minimax", {"loss.generator": "minimax"})),
    ),
]
