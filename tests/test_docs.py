"""The documentation holds together: README.md stays short and links only to docs that exist, and
every command in README.md and docs/ parses (its experiment, arms, keys and values validate;
other tools' flags parse), so no page tells a user to run something that cannot run."""

import glob
import importlib
import json
import os
import re
import shlex

import pytest

from experiments import design_loop
from experiments import planning
from experiments import registry
from experiments import report
from experiments.commands import run
from gen_models import report as report_lib
from gen_models.report import schema
from tests import helpers

PAGES = [os.path.join(helpers.ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(helpers.ROOT, "docs", "**", "*.md"), recursive=True)
)
# Synopsis notation (optional flags, placeholders) is a description, not a command.
SYNOPSIS = re.compile(r"\[|\.\.\.|\$|\bNAME\b|\bEXP\b|\bFLAGS\b|\bDIR\b| N\b| K\b|\bD\b|\\\|")
PLACEHOLDERS = {
    "runs/<exp>/<arm>/seed<k>": "runs/dcgan/base/seed0",
    "runs/<exp>": "runs/dcgan",
    "docs/results/data/<exp>.json": "docs/results/data/gaussian1d_loss.json",
}


def _code(text):
  """Code spans and fenced-block lines of a Markdown page (continuation lines joined)."""
  blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
  rest = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
  out = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", rest)]
  for block in blocks:
    out += [line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
  return out


def commands():
  """(page, tool, argv) for every command that the docs show."""
  found = []
  for page in PAGES:
    for code in _code(open(page).read()):
      for m in re.finditer(
          r"(?:python -m experiments\.([\w.]+)|\./launch\.sh ([\w$]+))((?: [^;&|#]*)?)", code
      ):
        tool, exp, rest = m.group(1), m.group(2), m.group(3).strip()
        if exp in ("setup", "test") or SYNOPSIS.search(m.group(0)):
          continue
        for k, v in PLACEHOLDERS.items():
          rest = rest.replace(k, v)
        argv = shlex.split(rest)
        found.append((
            os.path.relpath(page, helpers.ROOT),
            tool or "run",
            ([f"--exp={exp}"] if exp else []) + argv,
        ))
  return found


def test_the_readme_is_short_and_links_to_docs_that_exist():
  text = open(PAGES[0]).read()
  assert len(text.splitlines()) < 300
  for page in PAGES:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", open(page).read()):
      if not target.startswith("http"):
        assert os.path.exists(os.path.normpath(os.path.join(os.path.dirname(page), target))), (
            page,
            target,
        )


def _command_module(tool) -> str:
  """Where `python -m experiments.<tool>`'s parse_args lives: behind an entry shim, the command."""
  shimmed = os.path.exists(os.path.join(helpers.ROOT, "experiments", "commands", f"{tool}.py"))
  return f"experiments.commands.{tool}" if shimmed else f"experiments.{tool}"


def test_the_docs_show_commands_of_every_tool():
  tools = {tool for _, tool, _ in commands()}
  assert {"run", "report", "evaluate", "sample", "diagnose", "extractors", "bench"} <= tools, tools
  assert len(commands()) > 25


@pytest.mark.parametrize(
    "page,tool,argv", commands(), ids=lambda v: v if isinstance(v, str) else None
)
def test_every_documented_command_parses(page, tool, argv):
  if tool == "run":
    args = run.parse_args(argv)
    if args.list:
      return
    exp = registry.get(args.exp)
    design_loop.resolve_design_flags(exp, args)  # the experiment's seeds-on-demand default
    # experiment, protocol, arms, keys, values, ranges
    arm_cfgs = planning.build_configs(exp, args.set, args.seeds, args.arms, args.protocol)
    if args.until_decided:
      design_loop.check_until_decided(exp, arm_cfgs)
      design_loop.design_of(exp, arm_cfgs, args)
  elif tool == "report":
    if argv[:1] == ["--tables"]:  # a committed summary.json, named from the repository root
      assert len(argv) == 2 and os.path.isfile(os.path.join(helpers.ROOT, argv[1])), (page, argv)
    else:
      assert len(argv) == 1 and not argv[0].startswith("-"), (page, argv)
  else:
    importlib.import_module(_command_module(tool)).parse_args(argv)  # SystemExit on a bad flag


@pytest.mark.parametrize(
    "tool",
    [
        "run",
        "evaluate",
        "sample",
        "diagnose",
        "extractors",
        "bench",
        "design_check",
        "peers.keras_ae",
    ],
)
def test_every_tool_prints_its_help(tool, capsys):
  with pytest.raises(SystemExit) as e:
    importlib.import_module(_command_module(tool)).parse_args(["--help"])
  assert e.value.code == 0 and "usage:" in capsys.readouterr().out


def test_the_report_tool_prints_its_help(capsys):

  assert report.main(["--help"]) == 0 and "usage:" in capsys.readouterr().out


# Every published sweep's summary.json is committed under docs/results/data/, and the results pages
# quote its tables between these markers, exactly as `python -m experiments.report --tables FILE`
# prints them: a table can be rebuilt from data in the repository, and cannot drift from it.
DATA = sorted(glob.glob(os.path.join(helpers.ROOT, "docs", "results", "data", "*.json")))
QUOTE = re.compile(r"<!-- tables: (data/[\w.]+\.json) -->\n(.*?)\n<!-- end tables -->", re.S)


def _quoted():
  out = {}
  for page in glob.glob(os.path.join(helpers.ROOT, "docs", "results", "*.md")):
    for m in QUOTE.finditer(open(page).read()):
      out[m.group(1)] = (os.path.basename(page), m.group(2).strip())
  return out


def test_every_published_table_is_what_its_committed_summary_rebuilds():
  quoted = _quoted()
  assert DATA and quoted  # both exist, so the test checks something
  on_disk = {"data/" + os.path.basename(p) for p in DATA}
  assert set(quoted) <= on_disk, f"quoted but not committed: {set(quoted) - on_disk}"
  assert on_disk <= set(quoted), f"committed but quoted nowhere: {on_disk - set(quoted)}"
  for path in DATA:
    page, text = quoted["data/" + os.path.basename(path)]
    with open(path) as f:
      assert text == report_lib.tables_text(json.load(f)).strip(), (page, path)


def test_every_published_verdict_agrees_with_its_printed_interval():
  checked = 0
  for path in DATA:
    with open(path) as f:
      comps = json.load(f).get("comparisons") or []
    for c in comps:
      decided = c["verdict"].startswith(("better", "worse"))
      lo, hi = c["ci_low"], c["ci_high"]
      excludes = (lo is not None and lo > 0) or (hi is not None and hi < 0)
      assert decided == excludes, (os.path.basename(path), c["arm"], c["metric"], c["verdict"])
      checked += 1
  assert checked


def test_the_extending_guide_names_files_and_tests_that_exist():
  text = open(os.path.join(helpers.ROOT, "docs", "extending.md"), encoding="utf-8").read()
  paths = set(re.findall(r"`((?:gen_models|experiments|tests)/[\w/]+\.py)(?:::(\w+))?`", text))
  assert len(paths) > 15, paths
  for path, test in paths:
    full = os.path.join(helpers.ROOT, path)
    assert os.path.isfile(full), path
    if test:
      assert f"def {test}(" in open(full, encoding="utf-8").read(), (path, test)
  names = set(re.findall(r"`(\w+)` in `gen_models/data.py`|\(`(DATASETS)`\)", text))
  assert names, "the dataset registry is named"


def _documented_keys() -> dict:
  """{"summary" | "arms" | "comparisons": the keys docs/summary.md's schema block gives}."""
  text = open(os.path.join(helpers.ROOT, "docs", "summary.md"), encoding="utf-8").read()
  block = text.split("```")[1]
  out, section = {"summary": set(), "arms": set(), "comparisons": set()}, "summary"
  for line in block.splitlines():
    code = line.split("#")[0]
    indent = len(code) - len(code.lstrip())
    if indent == 2:
      section = "summary"
    for m in re.finditer(r'"([a-z_0-9]+)":', code):
      depth = sum(code[: m.start()].count(o) - code[: m.start()].count(c) for o, c in ("{}", "[]"))
      if depth == 0:  # not a key inside a value, e.g. a metric's "mean"
        out[section].add(m.group(1))
    if re.match(r'\s+"(arms|comparisons)": \[\{', code):
      section = re.match(r'\s+"(\w+)"', code).group(1)
  return out


def test_the_summary_schema_page_matches_its_typed_records_and_every_committed_summary():

  records = {"summary": schema.Summary, "arms": schema.Arm, "comparisons": schema.Comparison}
  documented = _documented_keys()
  for part, record in records.items():
    assert documented[part] == set(record.__annotations__), part
  for path in glob.glob(os.path.join(helpers.ROOT, "docs", "results", "data", "*.json")):
    with open(path) as f:
      summary = json.load(f)
    assert set(summary) <= set(schema.Summary.__annotations__), path
    for arm in summary["arms"]:
      assert set(arm) <= set(schema.Arm.__annotations__), path
    for c in summary.get("comparisons") or []:
      assert set(c) <= set(schema.Comparison.__annotations__), (path, set(c))
    if summary.get("sequential"):
      assert set(summary["sequential"]) == set(schema.Sequential.__annotations__), path
