"""The image GANs in TensorFlow 2: Keras layers, a tf.function step with GradientTape (oneDNN)."""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow.keras import layers  # pylint: disable=g-import-not-at-top

LATENT = {"dcgan": 100, "dcgan_transpose": 32, "dcgan_atienza": 100, "mlp_gan": 10}


def build(arch):
  """(G, D) Keras models as the seeds write them (D returns logits)."""
  if arch == "dcgan":
    g = tf.keras.Sequential([
        layers.Input((100,)),
        layers.Dense(6272),
        layers.LeakyReLU(0.2),
        layers.BatchNormalization(),
        layers.Reshape((7, 7, 128)),
        layers.UpSampling2D(),
        layers.Conv2D(64, 5, padding="same"),
        layers.BatchNormalization(),
        layers.LeakyReLU(0.2),
        layers.UpSampling2D(),
        layers.Conv2D(1, 5, padding="same", activation="tanh"),
    ])
    d = tf.keras.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(64, 5, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Dropout(0.2),
        layers.Conv2D(128, 5, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(1),
    ])
  elif arch == "dcgan_transpose":
    g = tf.keras.Sequential([
        layers.Input((32,)),
        layers.Dense(3136),
        layers.BatchNormalization(momentum=0.9),
        layers.LeakyReLU(0.3),
        layers.Reshape((7, 7, 64)),
        layers.Dropout(0.4),
        layers.UpSampling2D(),
        layers.Conv2DTranspose(32, 5, padding="same"),
        layers.BatchNormalization(momentum=0.9),
        layers.LeakyReLU(0.3),
        layers.UpSampling2D(),
        layers.Conv2DTranspose(16, 5, padding="same"),
        layers.BatchNormalization(momentum=0.9),
        layers.LeakyReLU(0.3),
        layers.Conv2D(1, 5, padding="same", activation="sigmoid"),
    ])
    d = tf.keras.Sequential(
        [layers.Input((28, 28, 1))]
        + [
            l
            for f in (64, 128, 256)
            for l in (
                layers.Conv2D(f, 5, strides=2, padding="same", activation="relu"),
                layers.Dropout(0.4),
            )
        ]
        + [layers.Flatten(), layers.Dense(1)]
    )
  elif arch == "dcgan_atienza":
    g_layers = [layers.Input((100,)), layers.Dense(6272), layers.Reshape((7, 7, 128))]
    for f, s in ((128, 2), (64, 2), (32, 1), (1, 1)):
      g_layers += [
          layers.BatchNormalization(),
          layers.Activation("relu"),
          layers.Conv2DTranspose(f, 5, strides=s, padding="same"),
      ]
    g = tf.keras.Sequential(g_layers + [layers.Activation("sigmoid")])
    d_layers = [layers.Input((28, 28, 1))]
    for f, s in ((32, 2), (64, 2), (128, 2), (256, 1)):
      d_layers += [layers.LeakyReLU(0.2), layers.Conv2D(f, 5, strides=s, padding="same")]
    d = tf.keras.Sequential(d_layers + [layers.Flatten(), layers.Dense(1)])
  elif arch == "mlp_gan":
    g_layers = [layers.Input((10,))]
    for w in (128, 256, 512, 1024):
      g_layers += [
          layers.Dense(w),
          layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
          layers.ReLU(),
      ]
    g = tf.keras.Sequential(
        g_layers + [layers.Dense(784, activation="sigmoid"), layers.Reshape((28, 28, 1))]
    )
    d = tf.keras.Sequential([
        layers.Input((28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512),
        layers.LeakyReLU(0.2),
        layers.Dense(256),
        layers.LeakyReLU(0.2),
        layers.Dense(128),
        layers.LeakyReLU(0.2),
        layers.Dense(1),
    ])
  else:
    raise ValueError(arch)
  return g, d


def param_counts(arch):
  g, d = build(arch)
  stats = sum(int(tf.size(w)) for w in g.non_trainable_weights)
  return (
      sum(int(tf.size(w)) for w in g.trainable_weights),
      stats,
      sum(int(tf.size(w)) for w in d.trainable_weights),
  )


def output_shape(arch, batch=2):
  g, d = build(arch)
  x = g(tf.zeros((batch, LATENT[arch])), training=False)
  return tuple(x.shape), tuple(d(x, training=False).shape)


def make_step(arch, batch, lr=2e-4):
  g, d = build(arch)
  opt_g, opt_d = tf.keras.optimizers.Adam(lr), tf.keras.optimizers.Adam(lr)
  bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)
  real = tf.random.uniform((batch, 28, 28, 1))
  ones, zeros = tf.ones((batch, 1)), tf.zeros((batch, 1))
  labels = tf.concat([ones, zeros], 0)

  @tf.function
  def step():
    z = tf.random.normal((batch, LATENT[arch]))
    with tf.GradientTape() as g_tape:
      fake = g(z, training=True)  # one G forward, shared by both updates
      with tf.GradientTape() as d_tape:
        d_loss = bce(labels, d(tf.concat([real, tf.stop_gradient(fake)], 0), training=True))
      opt_d.apply_gradients(
          zip(d_tape.gradient(d_loss, d.trainable_variables), d.trainable_variables)
      )
      g_loss = bce(ones, d(fake, training=True))  # through the updated D
    opt_g.apply_gradients(
        zip(g_tape.gradient(g_loss, g.trainable_variables), g.trainable_variables)
    )
    return d_loss, g_loss

  return step


def throughput(arch, batch, seconds=4.0, warmup=3):
  step = make_step(arch, batch)
  t = time.perf_counter()
  for _ in range(warmup):
    step()[0].numpy()
  first = time.perf_counter() - t
  n, t = 0, time.perf_counter()
  while time.perf_counter() - t < seconds or n < 3:
    out = step()
    n += 1
  out[0].numpy()
  return n * batch / (time.perf_counter() - t), first
