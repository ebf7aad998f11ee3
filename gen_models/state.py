"""Train states. A GAN's state is {"g": TrainState, "d": TrainState}: two separately optimised
parameter sets, so no step can ever update the other network by accident (Keras' `trainable`
flag, which the seeds rely on, has no equivalent here and needs none)."""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from gen_models import models


class TrainState(train_state.TrainState):
  batch_stats: Any = None  # BatchNorm running statistics ({} for models without BatchNorm)


class KerasAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def scale_by_keras_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """Adam as Keras 2 and 3 compute it: m and v without bias correction, the correction folded into
  the step size, eps added to sqrt(v) itself: sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
  optax.scale_by_adam (and PyTorch) add eps to the bias-corrected sqrt(v_hat) instead, which is
  Keras' form with eps * sqrt(1 - b2^t): up to 30x smaller in the first steps (b2 = 0.999)."""

  def init(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return KerasAdamState(
        count=jnp.zeros([], jnp.int32), mu=zeros, nu=jax.tree.map(jnp.zeros_like, params)
    )

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
    count = state.count + 1
    t = count.astype(jnp.float32)
    alpha = jnp.sqrt(1 - b2**t) / (1 - b1**t)
    out = jax.tree.map(lambda m, v: alpha * m / (jnp.sqrt(v) + eps), mu, nu)
    return out, KerasAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


@functools.lru_cache(maxsize=None)
def make_tx(
    name: str, b1: float, b2: float, rho: float, eps: float, eps_form: str = "keras"
) -> optax.GradientTransformation:
  """An optimizer whose learning rate and Keras-style time decay are *state*, not constants.

  eps_form="keras" (the Keras seeds): RMSprop as Keras 2 (the seeds' `RMSprop(lr=, decay=)` API),
  g / (sqrt(v) + eps), eps outside the root; Adam as Keras 2/3 (scale_by_keras_adam).
  eps_form="optax": optax's defaults, RMSprop g / sqrt(v + eps) (= Keras 3) and Adam with eps on
  the bias-corrected root (= PyTorch, the MLP GAN seed's framework).

  Cached per static settings, so every run of a sweep shares one transformation object and
  therefore one compiled program; runs that differ only in learning rate differ only in the
  values stored in opt_state.hyperparams (which vmap can batch)."""

  def factory(learning_rate, decay):
    schedule = lambda count: learning_rate / (1.0 + decay * count)  # Keras' legacy `decay`
    if name == "adam":
      if eps_form == "keras":
        return optax.chain(scale_by_keras_adam(b1, b2, eps), optax.scale_by_learning_rate(schedule))
      return optax.adam(schedule, b1=b1, b2=b2, eps=eps)
    return optax.rmsprop(schedule, decay=rho, eps=eps, eps_in_sqrt=eps_form != "keras")

  return optax.inject_hyperparams(factory)(learning_rate=0.0, decay=0.0)


# Config keys stored as values in the optimizer state (opt_state.hyperparams), not compiled in.
TRACED_KEYS = ("optim.g_lr", "optim.d_lr", "optim.g_decay", "optim.d_decay")


def _create(module, variables, tx, lr, decay):
  params = variables["params"]
  state = TrainState.create(
      apply_fn=module.apply, params=params, tx=tx, batch_stats=variables.get("batch_stats", {})
  )
  hyper = dict(state.opt_state.hyperparams)
  hyper["learning_rate"] = jnp.asarray(lr, jnp.float32)
  hyper["decay"] = jnp.asarray(decay, jnp.float32)
  return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


@functools.partial(jax.jit, static_argnums=0)
def init_variables(module, rngs: dict, x) -> dict:
  """module.init(rngs, x, train=False) as one compiled program: the same bits as flax's eager
  init (tests/test_models.py), which compiles one small program per parameter shape and per layer
  of the forward pass (57-122 programs for a DCGAN) and took 1.5-2x longer to start a run here.
  Modules are hashable by their fields, so one architecture compiles once per process."""
  return module.init(rngs, x, train=False)


def create_gan_state(cfg, key, data_shape, d_twice_differentiated: bool = False) -> dict:
  """Initialises G and D for `cfg` with their own optimizers (and G's EMA weights when
  train.g_ema > 0: {"params", "batch_stats"}, a copy of G's initial ones, which the first
  update's debiased average replaces entirely, see steps._ema_update)."""
  g_mod, d_mod = models.gan_modules(cfg.model, tuple(data_shape), d_twice_differentiated)
  o = cfg.optim
  tx = make_tx(o.name, o.b1, o.b2, o.rho, o.eps, o.eps_form)
  key_g, key_d = jax.random.split(key)
  z = jnp.zeros((2, cfg.model.latent_dim), jnp.float32)
  x = jnp.zeros((2,) + tuple(data_shape), jnp.float32)
  g_vars = init_variables(g_mod, {"params": key_g}, z)
  d_vars = init_variables(d_mod, {"params": key_d}, x)
  state = {
      "g": _create(g_mod, g_vars, tx, o.g_lr, o.g_decay),
      "d": _create(d_mod, d_vars, tx, o.d_lr, o.d_decay),
  }
  if cfg.train.g_ema > 0:
    state["g_ema"] = jax.tree.map(
        jnp.copy, {"params": state["g"].params, "batch_stats": state["g"].batch_stats}
    )
  return state


def create_ae_state(cfg, key, data_shape) -> dict:
  """{"ae": TrainState} for an autoencoder or VAE."""
  module = models.build(cfg.model, tuple(data_shape))
  o = cfg.optim
  tx = make_tx(o.name, o.b1, o.b2, o.rho, o.eps, o.eps_form)
  key_p, key_n = jax.random.split(key)
  variables = init_variables(
      module, {"params": key_p, "noise": key_n}, jnp.zeros((2,) + tuple(data_shape))
  )
  return {"ae": _create(module, variables, tx, o.g_lr, o.g_decay)}


def param_count(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))
