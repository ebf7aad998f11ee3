"""gen_models/metric_specs.py: each metric declared once, and what the families derive from it."""

from experiments import registry
from gen_models import families
from gen_models import metric_specs as specs
from gen_models import notes as notes_lib

SPECS = {
    "gan1d": specs.GAN1D,
    "image_gan": specs.IMAGE,
    "autoencoder": specs.AUTOENCODER,
    "vae": specs.VAE,
}
EXAMPLE = {"gan1d": "gaussian1d", "image_gan": "dcgan", "autoencoder": "ae_dense", "vae": "vae"}


def test_every_compared_metric_says_what_it_is():
  for family, declared in SPECS.items():
    for s in declared:
      if s.compared:
        assert s.note, (family, s.name)  # a verdict metric the report does not explain


def test_each_familys_report_table_and_notes_come_from_its_declarations():
  """Every declared metric is a column, every compared one a verdict metric, and every note is in
  the family's report notes once, rendered (density and coverage were once left out of them)."""
  for name, declared in SPECS.items():
    family = families.get(name)
    cfg = registry.get(EXAMPLE[name]).config
    columns = family.report.table([cfg])
    assert columns[: len(declared)] == specs.columns(declared)
    assert family.report.verdict_metrics == specs.compared(declared)
    floors = {f: 0.5 for f in family.report.floors}
    summary = {"arms": [], "floors": floors, "extractors": None}
    text = notes_lib.render(
        family.report.notes([cfg], summary), notes_lib.context(family, cfg, summary)
    )
    for s in declared:
      if s.note:
        assert text.count(f"- **{s.label}**: ") == 1, (name, s.name)


def test_the_console_shows_the_declared_console_metrics():
  assert specs.CONSOLE == {s.name for f in SPECS.values() for s in f if s.console}
  assert {"w1", "fid", "mse"} <= specs.CONSOLE and "density" not in specs.CONSOLE
