"""Errors whose message tells the user what to do; the command-line tools turn them into exit 2."""


class RunError(RuntimeError):
  """A problem with run directories, output paths or saved runs; the message says what to do."""
