import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import losses


def _sig(x):
  return 1 / (1 + np.exp(-x))


def test_bce_matches_hand_computation():
  logits = np.array([-2.0, 0.0, 3.0])
  for t in (1.0, 0.9, 0.1, 0.0):
    p = _sig(logits)
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(losses.bce_with_logits(jnp.asarray(logits), t), expected, rtol=1e-6)


def test_bce_is_stable_for_extreme_logits():
  out = losses.bce_with_logits(jnp.array([-200.0, 200.0]), jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(out, [200.0, 200.0], rtol=1e-6)
  g = jax.grad(lambda l: losses.bce_with_logits(l, 1.0).sum())(jnp.array([-200.0, 200.0]))
  assert np.all(np.isfinite(g))


@pytest.mark.parametrize("real_t,fake_t", [(1.0, 0.0), (0.9, 0.0), (0.9, 0.1)])
def test_discriminator_loss_targets(real_t, fake_t):
  lr, lf = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
  pr, pf = _sig(lr), _sig(lf)
  real = -(real_t * np.log(pr) + (1 - real_t) * np.log(1 - pr)).mean()
  fake = -(fake_t * np.log(pf) + (1 - fake_t) * np.log(1 - pf)).mean()
  got = losses.discriminator_loss(jnp.asarray(lr), jnp.asarray(lf), real_t, fake_t)
  np.testing.assert_allclose(got, 0.5 * (real + fake), rtol=1e-6)


def test_discriminator_loss_is_log2_at_equilibrium():
  z = jnp.zeros(4)
  np.testing.assert_allclose(losses.discriminator_loss(z, z), np.log(2), rtol=1e-6)


def test_weights_ignore_padding():
  lr, lf = jnp.array([1.0, 2.0, 50.0]), jnp.array([-1.0, 0.5, -50.0])
  w = jnp.array([1.0, 1.0, 0.0])
  np.testing.assert_allclose(
      losses.discriminator_loss(lr, lf, 0.9, 0.1, w),
      losses.discriminator_loss(lr[:2], lf[:2], 0.9, 0.1),
      rtol=1e-6,
  )


def test_generator_losses_values():
  l = np.array([-1.0, 0.3])
  d = _sig(l)
  np.testing.assert_allclose(
      losses.generator_loss_ns(jnp.asarray(l)), np.mean(-np.log(d)), rtol=1e-6
  )
  np.testing.assert_allclose(
      losses.generator_loss_minimax(jnp.asarray(l)), np.mean(np.log(1 - d)), rtol=1e-6
  )
  # the traced switch picks the same values
  np.testing.assert_allclose(
      losses.generator_loss(jnp.asarray(l), 0.0), np.mean(-np.log(d)), rtol=1e-6
  )
  np.testing.assert_allclose(
      losses.generator_loss(jnp.asarray(l), 1.0), np.mean(np.log(1 - d)), rtol=1e-6
  )


def test_minimax_gradient_vanishes_when_d_rejects_fakes_but_ns_does_not():
  # D(G(z)) -> 0, i.e. the logit -> -inf: early training, D easily spots fakes.
  for logit in (-5.0, -10.0, -20.0):
    l = jnp.array([logit])
    g_mm = jax.grad(lambda x: losses.generator_loss_minimax(x))(l)[0]
    g_ns = jax.grad(lambda x: losses.generator_loss_ns(x))(l)[0]
    d = _sig(logit)
    np.testing.assert_allclose(g_mm, -d, rtol=1e-5, atol=1e-12)  # d/dl log(1 - s(l)) = -s(l)
    np.testing.assert_allclose(g_ns, -(1 - d), rtol=1e-5)  # d/dl -log s(l) = -(1 - s(l))
    assert abs(g_mm) < 7e-3 and abs(g_ns) > 0.99
  # both push the logit up (make fakes look real): negative gradients of the loss
  assert jax.grad(lambda x: losses.generator_loss_minimax(x).sum())(jnp.array([0.0])) < 0
