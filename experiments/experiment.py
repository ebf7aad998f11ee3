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

  def __post_init__(self):  # checked when defined, not after hours of training
    if self.baseline and self.baseline not in dict(self.arm_items()):
      raise ConfigError(
          f"experiment {self.name!r}: baseline {self.baseline!r} is not one of its arms "
          f"{[a for a, _ in self.arm_items()]}."
      )
    # pylint: disable-next=g-import-not-at-top
    from gen_models import families
    from gen_models import notes  # pylint: disable=g-import-not-at-top

    family = families.of(self.config)
    if self.primary and self.primary not in family.verdict_metrics:
      raise ConfigError(
          f"experiment {self.name!r}: primary metric {self.primary!r} is not one the "
          f"{family.name} family compares ({', '.join(family.verdict_metrics)})."
      )
    try:
      notes.check(family, self.config)
    except ValueError as e:
      raise ConfigError(f"experiment {self.name!r}: {e}") from None

  def arm_items(self):
    return list(self.arms) if self.arms else [("base", {})]

  def baseline_arm(self) -> str:
    return self.baseline or self.arm_items()[0][0]
