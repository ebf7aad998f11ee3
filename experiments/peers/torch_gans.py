"""The image GANs in PyTorch eager (CPU), NCHW as PyTorch code idiomatically is."""

import time

import torch
from torch import nn

LATENT = {"dcgan": 100, "dcgan_transpose": 32, "dcgan_atienza": 100, "mlp_gan": 10}


class View(nn.Module):

  def __init__(self, *shape):
    super().__init__()
    self.shape = shape

  def forward(self, x):
    return x.view(x.shape[0], *self.shape)


def _bn2(c, momentum=0.01):  # Keras momentum 0.99 == PyTorch momentum 0.01
  return nn.BatchNorm2d(c, momentum=momentum, eps=1e-3)


def build(arch):
  """(G, D) for one of the seed architectures (D returns logits)."""
  if arch == "dcgan":
    g = nn.Sequential(
        nn.Linear(100, 6272),
        nn.LeakyReLU(0.2),
        nn.BatchNorm1d(6272, momentum=0.01, eps=1e-3),
        View(128, 7, 7),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(128, 64, 5, padding=2),
        _bn2(64),
        nn.LeakyReLU(0.2),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(64, 1, 5, padding=2),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, padding=2),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.2),
        nn.Conv2d(64, 128, 5, 2, padding=2),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(6272, 1),
    )
  elif arch == "dcgan_transpose":
    g = nn.Sequential(
        nn.Linear(32, 3136),
        nn.BatchNorm1d(3136, momentum=0.1, eps=1e-3),
        nn.LeakyReLU(0.3),
        View(64, 7, 7),
        nn.Dropout(0.4),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(64, 32, 5, padding=2),
        _bn2(32, 0.1),
        nn.LeakyReLU(0.3),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(32, 16, 5, padding=2),
        _bn2(16, 0.1),
        nn.LeakyReLU(0.3),
        nn.Conv2d(16, 1, 5, padding=2),
        nn.Sigmoid(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, padding=2),
        nn.ReLU(),
        nn.Dropout(0.4),
        nn.Conv2d(64, 128, 5, 2, padding=2),
        nn.ReLU(),
        nn.Dropout(0.4),
        nn.Conv2d(128, 256, 5, 2, padding=2),
        nn.ReLU(),
        nn.Dropout(0.4),
        nn.Flatten(),
        nn.Linear(4096, 1),
    )
  elif arch == "dcgan_atienza":
    layers = [nn.Linear(100, 6272), View(128, 7, 7)]
    cin = 128
    for cout, stride in ((128, 2), (64, 2), (32, 1), (1, 1)):
      layers += [
          _bn2(cin),
          nn.ReLU(),
          nn.ConvTranspose2d(cin, cout, 5, stride, padding=2, output_padding=stride - 1),
      ]
      cin = cout
    g = nn.Sequential(*layers, nn.Sigmoid())
    layers, cin = [], 1
    for cout, stride in ((32, 2), (64, 2), (128, 2), (256, 1)):
      layers += [nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, 5, stride, padding=2)]
      cin = cout
    d = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4096, 1))
  elif arch == "mlp_gan":
    layers, cin = [], 10
    for width in (128, 256, 512, 1024):
      layers += [nn.Linear(cin, width), nn.BatchNorm1d(width), nn.ReLU()]
      cin = width
    g = nn.Sequential(*layers, nn.Linear(1024, 784), nn.Sigmoid(), View(1, 28, 28))
    d = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.LeakyReLU(0.2),
        nn.Linear(512, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 128),
        nn.LeakyReLU(0.2),
        nn.Linear(128, 1),
    )
  else:
    raise ValueError(arch)
  return g, d


def param_counts(arch):
  g, d = build(arch)
  count = lambda m: sum(p.numel() for p in m.parameters())
  stats = sum(b.numel() for n, b in g.named_buffers() if "running" in n)
  return count(g), stats, count(d)


def output_shape(arch, batch=2):
  g, d = build(arch)
  g.eval()
  with torch.no_grad():
    x = g(torch.zeros(batch, LATENT[arch]))
    return tuple(x.shape), tuple(d(x).shape)


def make_step(arch, batch, lr=2e-4):
  g, d = build(arch)
  opt_g = torch.optim.Adam(g.parameters(), lr=lr)
  opt_d = torch.optim.Adam(d.parameters(), lr=lr)
  bce = nn.BCEWithLogitsLoss()
  real = torch.rand(batch, 1, 28, 28)
  ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
  labels = torch.cat([ones, zeros])

  def step():
    z = torch.randn(batch, LATENT[arch])
    fake = g(z)  # one G forward, shared by both updates
    opt_d.zero_grad(set_to_none=True)
    d_loss = bce(d(torch.cat([real, fake.detach()])), labels)
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    g_loss = bce(d(fake), ones)  # through the updated D
    g_loss.backward()
    opt_g.step()
    return d_loss, g_loss

  return step


def throughput(arch, batch, seconds=4.0, warmup=3):
  """Images per second of the training step (after `warmup` steps)."""
  step = make_step(arch, batch)
  t = time.perf_counter()
  for _ in range(warmup):
    step()
  first = time.perf_counter() - t
  n, t = 0, time.perf_counter()
  while time.perf_counter() - t < seconds or n < 3:
    step()
    n += 1
  return n * batch / (time.perf_counter() - t), first
