"""A sweep's report as a library: summary.json, report.md and the comparison figures, rebuilt from
what is on disk (the CLI is experiments/report.py; the schema is docs/summary.md).

- collect.py: the runs that belong to a sweep (the settings each arm is reported under, from the
  command, else sweep.json, else the previous summary, else the settings most runs share), their
  values, recovered where files are damaged, and the runs shown apart;
- verdicts.py: each arm against the baseline paired by seed, and the sequential design's
  decisions as a pure function of (summary, design);
- tables.py: the Markdown tables of a summary.json, from that file alone;
- markdown.py: report.md, one function per section;
- schema.py: the summary's shape as typed records (tests/test_docs.py checks docs/summary.md
  and every committed summary against them);
- sweep.py: summarize (the summary) and build (the files).
"""

from gen_models.report.collect import arms_on_disk
from gen_models.report.sweep import build
from gen_models.report.sweep import summarize
from gen_models.report.tables import table_text
from gen_models.report.tables import tables_text
from gen_models.report.tables import verdict_text
from gen_models.report.verdicts import apply_design
from gen_models.report.verdicts import comparisons
from gen_models.report.verdicts import design_verdicts
