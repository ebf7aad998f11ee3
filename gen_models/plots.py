"""Figures: the seed's real-vs-fake density, training curves, sweep comparisons with seed bands."""

import os

import functools

import numpy as np
from scipy import stats


@functools.lru_cache(maxsize=None)
def _plt():
  """matplotlib.pyplot on the Agg backend, imported when the first figure is drawn: training and
  evaluation never need it (experiments.accelerator_check runs where it is not installed)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def _colors():
  return _plt().rcParams["axes.prop_cycle"].by_key()["color"]


def rendering() -> bool:
  """False under GEN_MODELS_FIGURES=0: every matplotlib figure is still built (its data gathered,
  its axes laid out) but not rendered into its PNG, which took a sixth of the test suite's time;
  the suite's default (tests/conftest.py), turned back on by the tests about figures. Image grids
  and GIFs (PIL, cheap, read back by later steps) are always written."""
  return os.environ.get("GEN_MODELS_FIGURES", "1") != "0"


def _save(fig, path, dpi=110, tight=True):
  if rendering():
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
  _plt().close(fig)
  return path


def density_1d(real, fake, path, title="Distribution of real and fake data", ax=None):
  """The seed's figure: KDE (bandwidth 0.3, as its seaborn call) of real vs generated samples,
  over histograms, with N(0,1) for reference."""
  own = ax is None
  if own:
    fig, ax = _plt().subplots(figsize=(7, 4.2))
  real, fake = np.ravel(real), np.ravel(fake)
  lo, hi = min(real.min(), np.quantile(fake, 0.001), -4), max(
      real.max(), np.quantile(fake, 0.999), 4
  )
  xs = np.linspace(lo, hi, 400)
  bins = np.linspace(lo, hi, 60)
  # one filled outline per histogram, not 59 bars: the same PNG, byte for byte, 6x faster to build
  ax.hist(real, bins=bins, density=True, alpha=0.25, color="tab:blue", histtype="stepfilled")
  ax.hist(fake, bins=bins, density=True, alpha=0.25, color="tab:red", histtype="stepfilled")
  for values, color, label in (
      (real, "tab:blue", f"Real ({real.size:,})"),
      (fake, "tab:red", f"Fake ({fake.size:,})"),
  ):
    density = kde_1d(values, xs, 0.3)
    if density is not None:  # None: all values equal (a collapsed G), the histogram shows it
      ax.plot(xs, density, color=color, lw=2, label=label)
  ax.plot(xs, stats.norm.pdf(xs), "k--", lw=1, label="N(0,1)")
  ax.set_title(title, fontsize=9)
  ax.legend()
  if own:
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08)
    return _save(fig, path, tight=False)  # per-run figure: the tight bbox pass costs ~40%
  return None


def kde_1d(values, xs, factor: float):
  """Gaussian KDE of `values` at the evenly spaced `xs`, as scipy's gaussian_kde(values,
  bw_method=factor) (bandwidth = factor x the sample std), computed by linear binning on a grid of
  h/16 and one convolution: O(n + grid) instead of O(n x len(xs)), within 1e-3 of the peak
  (tested). None when the values are all equal."""
  values = np.ravel(np.asarray(values, np.float64))
  h = factor * np.std(values, ddof=1) if values.size > 1 else 0.0
  if not h > 0:
    return None
  step, reach = h / 16, 5 * 16  # grid spacing; the kernel is cut at 5 bandwidths
  lo = xs[0] - (reach + 1) * step
  size = int(np.ceil((xs[-1] - lo) / step)) + reach + 2
  if size > 2_000_000:  # a very narrow kernel over a wide range: evaluate directly
    return stats.gaussian_kde(values[:20000], bw_method=factor)(xs)
  pos = (values - lo) / step
  pos = pos[(pos >= 0) & (pos < size - 1)]  # values further out do not reach the xs
  i = np.floor(pos).astype(np.int64)
  w = pos - i
  counts = np.bincount(i, 1 - w, size) + np.bincount(i + 1, w, size)
  k = np.arange(-reach, reach + 1) * step
  kernel = np.exp(-0.5 * (k / h) ** 2) / (np.sqrt(2 * np.pi) * h * values.size)
  return np.interp(xs, lo + step * np.arange(size), np.convolve(counts, kernel, mode="same"))


def _series(rows, key, x="step"):
  pts = [
      (r[x], r[key])
      for r in rows
      if isinstance(r.get(key), (int, float)) and isinstance(r.get(x), (int, float))
  ]
  if not pts:
    return np.zeros(0), np.zeros(0)
  steps, values = zip(*pts)
  return np.asarray(steps), np.asarray(values, float)


SAMPLES_KEY = "eval/num_samples"


def mark_sample_counts(ax, rows, x="step") -> None:
  """Where evaluations scored different numbers of samples (eval.early_samples), a dotted line at
  each change and the count of each stretch, so a jump in FID there is read as what it is."""
  steps, counts = _series(rows, SAMPLES_KEY, x)
  if steps.size < 2 or np.all(counts == counts[0]):
    return
  order = np.argsort(steps)
  steps, counts = steps[order], counts[order]
  starts = [0] + [i for i in range(1, len(counts)) if counts[i] != counts[i - 1]]
  for i in starts:
    if i:
      ax.axvline(steps[i], color="gray", ls=":", lw=1)
    ax.text(
        steps[i],
        0.98,
        f" n={int(counts[i]):,}",
        transform=ax.get_xaxis_transform(),
        va="top",
        fontsize=7,
        color="gray",
    )


def training_curves(rows, path, panels, title=""):
  """One run's curves. panels: list of (title, [metric keys], log_y)."""
  fig, axes = _plt().subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
  for ax, (panel_title, metric_keys, log_y) in zip(axes[0], panels):
    plotted = False
    for key in metric_keys:
      steps, values = _series(rows, key)
      if steps.size:
        ax.plot(steps, values, label=key.split("/")[-1], lw=1.3)
        plotted = True
    ax.set_title(panel_title)
    ax.set_xlabel("step")
    # e.g. image metrics switched off (eval.num_samples=0), or a run too short to log
    if not plotted:
      ax.text(
          0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="gray"
      )
      continue
    if log_y:
      ax.set_yscale("log")
    if any(k.startswith("eval/") for k in metric_keys):
      mark_sample_counts(ax, rows)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.subplots_adjust(left=0.06, right=0.98, top=0.82, bottom=0.14, wspace=0.25)
  return _save(fig, path, tight=False)  # per-run figure: the tight bbox pass costs ~40%


def sweep_curves(arm_runs: dict, panels, path, title="", floors=None, x="step", xlabel="step"):
  """Sweep comparison: per arm the mean over seeds with a min-max band (light) and a +-1 std
  band (dark). arm_runs: {arm: [rows of seed 0, rows of seed 1, ...]}; floors: {key: value}
  drawn as dashed lines (a metric's sampling floor); x: the column on the x axis (e.g.
  cost/flops for the metric against compute)."""
  fig, axes = _plt().subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
  for ax, (panel_title, key, log_y) in zip(axes[0], panels):
    for i, (arm, runs) in enumerate(arm_runs.items()):
      series = [_series(rows, key, x) for rows in runs]
      series = [s for s in series if s[0].size]
      if not series:
        continue
      common = sorted(set.intersection(*[set(s[0].tolist()) for s in series]))
      if not common:
        continue
      mat = np.stack([np.interp(common, s[0], s[1]) for s in series])
      mean, std = mat.mean(0), mat.std(0)
      color = _colors()[i % len(_colors())]
      ax.plot(common, mean, color=color, lw=1.6, label=f"{arm} (n={len(series)})")
      if len(series) > 1:
        ax.fill_between(common, mat.min(0), mat.max(0), color=color, alpha=0.12, lw=0)
        ax.fill_between(common, mean - std, mean + std, color=color, alpha=0.25, lw=0)
    if floors and floors.get(key) is not None:
      ax.axhline(floors[key], color="k", ls="--", lw=1, label="sampling floor")
    if key.startswith("eval/"):
      first = next((r for runs in arm_runs.values() for r in runs if r), [])
      mark_sample_counts(ax, first, x)
    ax.set_title(panel_title)
    ax.set_xlabel(xlabel)
    if log_y:
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title, y=1.03)
  return _save(fig, path)


def final_bars(arms: list, metric_keys: list, path, title="", floors=None):
  """Final metrics per arm: bar = mean over seeds, dots = seeds, whisker = std."""
  fig, axes = _plt().subplots(
      1, len(metric_keys), figsize=(3.6 * len(metric_keys), 3.6), squeeze=False
  )
  for ax, key in zip(axes[0], metric_keys):
    names, means, stds = [], [], []
    for i, arm in enumerate(arms):
      m = arm["metrics"].get(key)
      if not m:
        continue
      names.append(arm["name"])
      means.append(m["mean"])
      stds.append(m["std"])
      ax.scatter([len(names) - 1] * len(m["per_seed"]), m["per_seed"], color="k", s=10, zorder=3)
    ax.bar(
        range(len(names)),
        means,
        yerr=stds,
        capsize=4,
        color=[_colors()[i % len(_colors())] for i in range(len(names))],
        alpha=0.8,
    )
    if floors and key in floors:
      ax.axhline(floors[key], color="k", ls="--", lw=1, label="sampling floor")
      ax.legend(fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_title(key)
    ax.grid(alpha=0.3, axis="y")
  if title:
    fig.suptitle(title, y=1.03)
  return _save(fig, path)


def density_grid(panels, path, title=""):
  """Several real-vs-fake densities side by side. panels: [(title, real, fake)]."""
  fig, axes = _plt().subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
  for ax, (panel_title, real, fake) in zip(axes[0], panels):
    density_1d(real, fake, None, panel_title, ax=ax)
  if title:
    fig.suptitle(title, y=1.03)
  return _save(fig, path)


# --- image grids (PIL: fast, no figure overhead) ------------------------------------------------


def to_uint8(images, value_range: str):
  """(N, H, W, 1) floats in [-1, 1] (tanh) or [0, 1] (sigmoid) -> (N, H, W) uint8."""
  x = np.asarray(images, np.float32)[..., 0]
  if value_range == "tanh":
    x = (x + 1.0) / 2.0
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def grid_array(images_u8, cols=8, pad=2, scale=2):
  """(N, H, W) uint8 -> one (rows*(H+pad), cols*(W+pad)) uint8 mosaic, upscaled by `scale`."""
  n, h, w = images_u8.shape
  rows = int(np.ceil(n / cols))
  out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 64, np.uint8)
  for i in range(n):
    r, c = divmod(i, cols)
    out[
        pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w
    ] = images_u8[i]
  return np.kron(out, np.ones((scale, scale), np.uint8)) if scale > 1 else out


def save_grid(images_u8, path, cols=8, scale=2):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(grid_array(images_u8, cols, scale=scale)).save(path)
  return path


def save_gif(frames_u8, path, ms_per_frame=400):
  """frames: list of 2-D uint8 mosaics (e.g. grid_array outputs) -> animated GIF."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  frames = [Image.fromarray(f) for f in frames_u8]
  frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
  return path


def labelled_grids(panels, path, title=""):
  """Several image mosaics side by side with titles. panels: [(title, 2-D uint8 mosaic)]."""
  fig, axes = _plt().subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), squeeze=False)
  for ax, (panel_title, mosaic) in zip(axes[0], panels):
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(panel_title, fontsize=9)
    ax.axis("off")
  if title:
    fig.suptitle(title, y=1.03)
  return _save(fig, path)


def progress_strip(step_mosaics, path, title=""):
  """Rows = training steps, columns = the first 8 fixed-noise samples of each step's grid."""
  rows = []
  for _, mosaic in step_mosaics:
    tile = mosaic.shape[1] // 8  # grids are 8 columns wide
    rows.append(mosaic[:tile, : tile * 8])  # first row of the grid: 8 samples
  fig, axes = _plt().subplots(len(rows), 1, figsize=(6, 0.85 * len(rows) + 0.4), squeeze=False)
  for ax, (step, _), row in zip(axes[:, 0], step_mosaics, rows):
    ax.imshow(row, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(f"{step}", rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path)


def class_histogram(hist, real_hist, path, title=""):
  """Share of generated images per predicted class, next to the real test set's."""
  fig, ax = _plt().subplots(figsize=(6.5, 3.4))
  idx = np.arange(len(hist))
  ax.bar(idx - 0.2, hist, 0.4, label="generated")
  ax.bar(idx + 0.2, real_hist, 0.4, label="real (test)", alpha=0.7)
  ax.axhline(1 / len(hist), color="k", ls="--", lw=1, label="uniform")
  ax.set_xticks(idx)
  ax.set_xlabel("class predicted by the classifier")
  ax.set_ylabel("share of images")
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  return _save(fig, path)


def image_rows(rows_u8, labels, path, title=""):
  """Rows of images (each (n, 28, 28) uint8) with a label per row: the seeds' 2- and 3-row
  figures."""
  n = rows_u8[0].shape[0]
  fig, axes = _plt().subplots(
      len(rows_u8), n, figsize=(1.1 * n, 1.2 * len(rows_u8) + 0.3), squeeze=False
  )
  for r, (row, label) in enumerate(zip(rows_u8, labels)):
    for c in range(n):
      ax = axes[r, c]
      ax.imshow(row[c], cmap="gray", vmin=0, vmax=255)
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        ax.set_ylabel(label, fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  return _save(fig, path)


def latent_scatter(codes, labels, path, title=""):
  """2-D latent codes coloured by class label."""
  fig, ax = _plt().subplots(figsize=(5.5, 4.8))
  sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6)
  fig.colorbar(sc, ax=ax, ticks=range(10), label="label")
  ax.set_xlabel("z[0]")
  ax.set_ylabel("z[1]")
  if title:
    ax.set_title(title, fontsize=9)
  return _save(fig, path)


def forest(comparisons: list, path, title=""):
  """One row per comparison (arm vs baseline): the per-seed paired differences (dots), their mean
  (diamond) and the 95% interval (bar; an arrow where it is unbounded), and zero (no difference)."""
  fig, ax = _plt().subplots(figsize=(7.5, 0.75 * len(comparisons) + 1.4))
  finite = [v for c in comparisons for v in c["diffs"]] + [0.0]
  span = (max(finite) - min(finite)) or 1.0
  lo_lim, hi_lim = min(finite) - 0.6 * span, max(finite) + 0.6 * span
  for row, c in enumerate(comparisons):
    y = len(comparisons) - 1 - row
    lo = lo_lim if c["ci_low"] is None else c["ci_low"]
    hi = hi_lim if c["ci_high"] is None else c["ci_high"]
    decided = c["verdict"].startswith(("better", "worse"))
    color = _colors()[0] if decided else "0.45"
    ax.plot([lo, hi], [y, y], color=color, lw=3, alpha=0.7, solid_capstyle="butt")
    for end, unbounded in ((lo, c["ci_low"] is None), (hi, c["ci_high"] is None)):
      if unbounded:
        ax.annotate(
            "",
            xy=(end, y),
            xytext=(end - 0.08 * span * np.sign(end - c["mean_diff"] or 1), y),
            arrowprops=dict(arrowstyle="->", color=color),
        )
    ax.scatter(
        c["diffs"],
        np.full(len(c["diffs"]), y) + np.linspace(-0.12, 0.12, len(c["diffs"])),
        s=14,
        color="k",
        zorder=3,
    )
    ax.scatter([c["mean_diff"]], [y], marker="D", s=50, color=color, zorder=4)
  ax.axvline(0, color="k", lw=1, ls="--")
  ax.set_xlim(lo_lim, hi_lim)
  ax.set_ylim(-0.6, len(comparisons) - 0.4)
  ax.set_yticks(range(len(comparisons)))
  ax.set_yticklabels(
      [
          f"{c['arm']} − {c['baseline']}\n{c['verdict'].split(' (')[0]} (n={c['n']})"
          for c in reversed(comparisons)
      ],
      fontsize=8,
  )
  metric = comparisons[0]["metric"]
  better = "left" if comparisons[0]["lower_is_better"] else "right"
  ax.set_xlabel(f"paired difference in {metric} ({better} of 0 = the arm is better)")
  ax.grid(alpha=0.3, axis="x")
  if title:
    ax.set_title(title, fontsize=9)
  return _save(fig, path)
