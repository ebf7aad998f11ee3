"""The seed's dense autoencoder in Keras, exactly as seed 001 trains it (784-32-784, Adam, MSE,
batch 256, 50 epochs, shuffle), for a side-by-side test MSE:

  python -m experiments.peers.keras_ae --data fashion_mnist [--epochs 50] [--noise 0.55]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m experiments.peers.keras_ae")
  p.add_argument("--data", default="fashion_mnist")
  p.add_argument("--data-dir", default="")
  p.add_argument("--epochs", type=int, default=50)
  p.add_argument("--noise", type=float, default=0.0)
  p.add_argument("--seed", type=int, default=0)
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from gen_models import data as data_lib  # pylint: disable=g-import-not-at-top

  tf.keras.utils.set_random_seed(args.seed)
  d = data_lib.load_images(args.data, args.data_dir, log=lambda s: None)
  x_train = d["train"]["x"].reshape(-1, 784).astype("float32") / 255.0
  x_test = d["test"]["x"].reshape(-1, 784).astype("float32") / 255.0
  inp = tf.keras.layers.Input(shape=(784,))
  encoded = tf.keras.layers.Dense(32, activation="relu")(inp)
  decoded = tf.keras.layers.Dense(784, activation="sigmoid")(encoded)
  ae = tf.keras.models.Model(inp, decoded)
  ae.compile(optimizer="adam", loss=tf.keras.losses.MeanSquaredError())
  rng = np.random.default_rng(args.seed)
  noisy_train = x_train + args.noise * rng.normal(size=x_train.shape).astype("float32")
  noisy_test = x_test + args.noise * rng.normal(size=x_test.shape).astype("float32")
  t = time.perf_counter()
  ae.fit(noisy_train, x_train, epochs=args.epochs, batch_size=256, shuffle=True, verbose=0)
  seconds = time.perf_counter() - t
  recon = ae.predict(noisy_test, verbose=0, batch_size=1000)
  mse = np.mean((recon - x_test) ** 2, axis=1)
  out = {
      "framework": "keras",
      "data": args.data,
      "epochs": args.epochs,
      "noise": args.noise,
      "seed": args.seed,
      "test_mse": float(mse.mean()),
      "test_psnr": float(np.mean(10 * np.log10(1 / mse))),
      "train_s": seconds,
  }
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
