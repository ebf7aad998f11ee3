import pytest

from gen_models import config as config_lib
from gen_models import families
from gen_models.config import Config, ConfigError


def test_parse_by_field_type():
  cfg = config_lib.apply_overrides(
      Config(),
      {
          "train.steps": "1e3",
          "optim.d_lr": "2e-4",
          "data.name": "mnist",
          "model.arch": "dcgan",
          "loss.gen_target": "none",
          "seed": "7",
      },
  )
  assert cfg.train.steps == 1000 and isinstance(cfg.train.steps, int)
  assert cfg.optim.d_lr == 2e-4
  assert cfg.loss.gen_target is None
  assert cfg.seed == 7
  assert config_lib.set_key(cfg, "loss.gen_target", "0.8").loss.gen_target == 0.8


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("train.steps", "abc", "not an integer"),
        ("train.steps", "2.5", "not an integer"),
        ("optim.d_lr", "fast", "not a finite number"),
        ("optim.d_lr", "nan", "not a finite number"),
        ("train.stpes", "3", "Unknown config key 'train.stpes'. Did you mean train.steps"),
        ("nonsense", "3", "Unknown config key"),
    ],
)
def test_bad_overrides_name_the_key(key, value, fragment):
  with pytest.raises(ConfigError, match=None) as e:
    config_lib.set_key(Config(), key, value)
  assert fragment in str(e.value)


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("optim.d_lr", -1e-3, "'optim.d_lr'"),
        ("loss.real_target", 1.5, "<= 1.0"),
        ("model.latent_dim", 0, ">= 1"),
        ("loss.generator", "wgan", "Allowed: ns, minimax"),
        ("train.batch_size", 5000, "larger than the dataset"),
    ],
)
def test_validation_names_key_and_allowed_values(key, value, fragment):
  with pytest.raises(ConfigError) as e:
    families.validate(config_lib.set_key(Config(), key, value))
  assert fragment in str(e.value)


def test_dict_round_trip_and_version_check():
  cfg = config_lib.apply_overrides(Config(), {"optim.g_lr": 3e-4, "loss.gen_target": 0.8})
  assert config_lib.from_dict(config_lib.to_dict(cfg)) == cfg
  old = config_lib.to_dict(cfg)
  old["version"] = 0
  with pytest.raises(ConfigError, match="version"):
    config_lib.from_dict(old)


def test_parse_assignment():
  assert config_lib.parse_assignment("a.b=c=d") == ("a.b", "c=d")
  for bad in ("nokey", "=3"):
    with pytest.raises(ConfigError):
      config_lib.parse_assignment(bad)
