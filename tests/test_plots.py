"""gen_models/plots.py: a figure is rendered into its PNG unless GEN_MODELS_FIGURES=0 (the test
suite's default), where it is still built and closed."""

import os

import numpy as np

from gen_models import plots


def _curves(path):
  rows = [{"step": s, "train/d_loss": 1.0 / (s + 1)} for s in range(5)]
  return plots.training_curves(rows, str(path), [("losses", ["train/d_loss"], False)], "t")


def test_figures_are_built_but_not_rendered_under_figures_0(tmp_path, monkeypatch):
  monkeypatch.setenv("GEN_MODELS_FIGURES", "0")
  assert not plots.rendering()
  assert _curves(tmp_path / "a.png") == str(tmp_path / "a.png")
  assert not os.path.exists(tmp_path / "a.png")
  assert not plots._plt().get_fignums()  # pylint: disable=protected-access (closed, not leaked)
  plots.save_grid(np.zeros((4, 28, 28), np.uint8), str(tmp_path / "grid.png"))  # PIL: written
  assert os.path.getsize(tmp_path / "grid.png") > 0


def test_figures_are_rendered_by_default(tmp_path, figures):
  del figures
  assert plots.rendering()
  _curves(tmp_path / "a.png")
  assert os.path.getsize(tmp_path / "a.png") > 1000
