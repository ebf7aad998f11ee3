"""The seed notes' own 1-D GAN loop (seed 002): Keras models, `predict` + `train_on_batch` per
minibatch, 3 minibatches per epoch. Kept literally, `discriminator.trainable = False` included
(on Keras 3 that flag, set after compiling D, stops D's own train_on_batch from updating it:
the seed's D silently never trains; it only makes this loop cheaper to time)."""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow.keras import layers  # pylint: disable=g-import-not-at-top


def build():
  d = tf.keras.Sequential([
      layers.Input((1,)),
      layers.Dense(32, activation="relu"),
      layers.Dense(1, activation="sigmoid"),
  ])
  d.compile(loss="binary_crossentropy", optimizer=tf.keras.optimizers.RMSprop(0.001))
  g = tf.keras.Sequential(
      [layers.Input((16,)), layers.Dense(32, activation="relu"), layers.Dense(1)]
  )
  d.trainable = False
  z = layers.Input((16,))
  gan = tf.keras.Model(z, d(g(z)))
  gan.compile(loss="binary_crossentropy", optimizer=tf.keras.optimizers.RMSprop(0.0005))
  return g, d, gan


def run_epochs(epochs: int, seed: int = 0):
  """Seconds for `epochs` epochs of the seed's loop (3 steps each), after one warm-up epoch."""
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(1000, 1)).astype(np.float32)
  g, d, gan = build()

  def epoch():
    for n in range(3):
      lo, hi = n * 333, (1000 if n == 2 else n * 333 + 333)
      bx = real[lo:hi]
      bz = rng.uniform(-1, 1, size=(bx.shape[0], 16)).astype(np.float32)
      gz = g.predict(bz, verbose=0)
      target = np.zeros(bx.shape[0] * 2, np.float32)
      target[: bx.shape[0]], target[bx.shape[0] :] = 0.9, 0.1
      d.train_on_batch(np.concatenate([bx, gz]), target)
      gan.train_on_batch(bz, np.full(bx.shape[0], 0.9, np.float32))

  epoch()  # warm-up: builds the train / predict functions
  t = time.perf_counter()
  for _ in range(epochs):
    epoch()
  return time.perf_counter() - t
