"""An experiment: a base config and its sweep arms, with the arm every other arm is compared
with."""

import dataclasses

from gen_models.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str
  description: str
  config: Config
  arms: tuple = ()  # ((arm name, {key: value}), ...); empty = one arm called "base"
  baseline: str = ""  # the arm every other arm is compared with (default: the first)
  # The metric the verdict and the stopping rule are about (default: the family's ranking metric:
  # FID for the image GANs, W1 for the 1-D GAN, test MSE for the autoencoders); the others are
  # secondary, corrected together.
  primary: str = ""
  # (start, batch, budget) seeds per arm: the experiment runs seeds on demand (--until-decided)
  # by default with these looks; () = a fixed number of seeds (config.seeds).
  seeds_on_demand: tuple = ()
  # ((name, what, {key: value}), ...): other protocols, chosen with --protocol NAME (applied
  # before --set); the default protocol is the config itself.
  protocols: tuple = ()

  def __post_init__(self):  # checked when defined, not after hours of training
    if self.baseline and self.baseline not in dict(self.arm_items()):
      raise ConfigError(
          f"experiment {self.name!r}: baseline {self.baseline!r} is not one of its arms "
          f"{[a for a, _ in self.arm_items()]}."
      )
    if self.seeds_on_demand:
      start, batch, budget = self.seeds_on_demand
      if not (2 <= start < budget and batch >= 1) or len(self.arm_items()) < 2:
        raise ConfigError(
            f"experiment {self.name!r}: seeds_on_demand {self.seeds_on_demand} needs arms and"
            " 2 <= start < budget, batch >= 1."
        )
    # pylint: disable-next=g-import-not-at-top
    from gen_models import families
    from gen_models import notes  # pylint: disable=g-import-not-at-top

    family = families.of(self.config)
    if self.primary and self.primary not in family.report.verdict_metrics:
      raise ConfigError(
          f"experiment {self.name!r}: primary metric {self.primary!r} is not one the "
          f"{family.name} family compares ({', '.join(family.report.verdict_metrics)})."
      )
    try:
      notes.check(family, self.config)
    except ValueError as e:
      raise ConfigError(f"experiment {self.name!r}: {e}") from None

  def protocol(self, name: str) -> dict:
    """The overrides of the named protocol (ConfigError naming the known ones otherwise)."""
    known = {n: o for n, _, o in self.protocols}
    if name not in known:
      raise ConfigError(
          f"--protocol {name!r}: {self.name} has "
          + (f"the protocols {', '.join(known)}." if known else "no named protocols.")
          + " Leave --protocol out for its default one."
      )
    return dict(known[name])

  def arm_items(self):
    return list(self.arms) if self.arms else [("base", {})]

  def baseline_arm(self) -> str:
    return self.baseline or self.arm_items()[0][0]
