"""The import graph: no module of gen_models/ or experiments/ imports one that imports it back (at
the top or inside a function), config.py is a leaf, and the entry points do not import jax before
their allocator re-exec (gen_models.runtime.configure); and the suite's own order names its files.
"""

import ast
import graphlib
import os
import subprocess
import sys

import pytest

from tests import conftest
from tests import helpers

PACKAGES = ("gen_models", "experiments")


def _modules():
  out = {}
  for pkg in PACKAGES:
    for d, _, files in os.walk(os.path.join(helpers.ROOT, pkg)):
      for f in files:
        if f.endswith(".py"):
          name = os.path.relpath(os.path.join(d, f), helpers.ROOT)[:-3].replace(os.sep, ".")
          out[name.removesuffix(".__init__")] = os.path.join(d, f)
  return out


def import_graph() -> dict:
  """{module: {project modules it imports anywhere in its file}}; `from package import name`
  counts as importing the submodule `name` where there is one, else the package."""
  mods = _modules()
  graph = {}
  for name, path in mods.items():
    deps = set()
    for node in ast.walk(ast.parse(open(path).read())):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
          for _ in range(node.level - 1):
            pkg = pkg.rpartition(".")[0]
          base = f"{pkg}.{base}".rstrip(".")
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
      for t in targets:
        while t and t not in mods:
          t = t.rpartition(".")[0]
        if t and t != name:
          deps.add(t)
    graph[name] = deps
  return graph


def test_there_is_no_import_cycle():
  graph = import_graph()
  assert len(graph) > 40
  try:
    graphlib.TopologicalSorter(graph).prepare()
  except graphlib.CycleError as e:
    pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_the_cycle_check_finds_a_planted_cycle():
  graph = import_graph()
  # config.validate -> families
  graph["gen_models.config"] = graph["gen_models.config"] | {"gen_models.families"}
  with pytest.raises(graphlib.CycleError):
    graphlib.TopologicalSorter(graph).prepare()


def test_config_is_a_leaf():
  assert import_graph()["gen_models.config"] == set()


@pytest.mark.parametrize(
    "module",
    [
        "experiments.run",
        "experiments.evaluate",
        "experiments.sample",
        "experiments.diagnose",
        "experiments.extractors",
        "experiments.bench",
    ],
)
def test_an_entry_point_does_not_import_jax_before_configuring_the_allocator(module):
  code = f"import sys, {module}; print('jax' in sys.modules)"
  out = subprocess.run(
      [sys.executable, "-c", code], cwd=helpers.ROOT, capture_output=True, text=True, check=True
  )
  assert out.stdout.strip() == "False", out.stderr


def test_the_code_is_formatted_and_within_100_columns():
  files = [
      os.path.join(d, f)
      for pkg in (*PACKAGES, "tests")
      for d, _, fs in os.walk(os.path.join(helpers.ROOT, pkg))
      for f in fs
      if f.endswith(".py")
  ]
  long = [
      f"{os.path.relpath(p, helpers.ROOT)}:{i}"
      for p in files
      for i, line in enumerate(open(p, encoding="utf-8").read().split("\n"), 1)
      if len(line) > 100
  ]
  assert not long, long
  check = subprocess.run(
      [sys.executable, "-m", "pyink", "--check", "gen_models", "experiments", "tests"],
      cwd=helpers.ROOT,
      capture_output=True,
      text=True,
  )
  assert check.returncode == 0, check.stderr[-2000:] + "\nrun ./launch.sh format"


def test_the_longest_first_order_names_existing_test_files():
  # a renamed or removed file would silently drop out of the order the processes are fed
  missing = [
      f
      for f in conftest.LONGEST_FIRST
      if not os.path.isfile(os.path.join(helpers.ROOT, "tests", f))
  ]
  assert not missing, missing
  assert len(set(conftest.LONGEST_FIRST)) == len(conftest.LONGEST_FIRST)
