"""Re-evaluate a saved run's latest checkpoint with the project's metrics.

  python -m experiments.evaluate --run runs/<exp>/<arm>/seed<k> [--n 10000]

Prints the metrics as JSON and writes them to <run>/eval_step<k>.json.
"""

import argparse
import json
import os
import sys


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--run", required=True, help="a run directory, runs/<exp>/<arm>/seed<k>")
  p.add_argument("--n", type=int, default=None, help="generated samples (default: the run's eval.num_samples)")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  from gen_models.errors import RunError  # pylint: disable=g-import-not-at-top
  from gen_models.config import ConfigError  # pylint: disable=g-import-not-at-top
  from gen_models.data import DataError  # pylint: disable=g-import-not-at-top
  try:
    import time  # pylint: disable=g-import-not-at-top
    from experiments import runner  # pylint: disable=g-import-not-at-top
    from gen_models import config as config_lib  # pylint: disable=g-import-not-at-top
    from gen_models import tasks  # pylint: disable=g-import-not-at-top
    cfg, state, data, key, step = runner.load_run(args.run)
    if args.n is not None:  # validated like --set eval.num_samples (minimum sample counts)
      cfg = config_lib.validate(config_lib.set_key(cfg, "eval.num_samples", args.n))
      if args.n == 0:
        raise ConfigError("--n 0 scores nothing: give the number of samples to generate (at least "
                          f"{config_lib.MIN_EVAL_SAMPLES_IMAGES} for images).")
    t = time.perf_counter()
    metrics = tasks.evaluate_saved(cfg, state, data, key)
    out = {"run": args.run, "step": step, "eval_s": time.perf_counter() - t, "metrics": metrics}
    path = os.path.join(args.run, f"eval_step{step}.json")
    with open(path, "w") as f:
      json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    return 0
  except (RunError, ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  from gen_models import runtime  # pylint: disable=g-import-not-at-top
  runtime.configure("experiments.evaluate")
  sys.exit(main())
