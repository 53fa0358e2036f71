"""Write docs/datasets.md, the standard datasets' reference, from federation/query/datasets.py
(`make docs`); `--check` fails when the file is not what the definitions give."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.datasets import dataset_summary  # noqa: E402
from federation.query.datasets import DATASETS, Column, Sensitivity  # noqa: E402

REFERENCE = ROOT / "docs" / "datasets.md"

HEADER = """\
# Standard datasets

<!-- Generated from federation/query/datasets.py by `make docs`; do not edit by hand. -->

Every city stores these tables with exactly these columns; `cityfed datasets` prints the same
(`--json` for a program), and `NodeService/ListDatasets` publishes them with what the caller
may do with each column. A file loaded with `cityfed node ingest` must have exactly these
columns (the CSV header or Parquet names, in any order); each value is checked against its type,
whether it may be NULL (an empty CSV field) and its format, and a file with one bad value changes
nothing.

- **format**: what every non-null value must look like. A pattern is a regular expression the
  whole value must match; dates and timestamps are local, without a time zone.
- **bounds**: for a numeric column, the range each value is clamped to before it enters a
  private sum or average (a city's policy may set others: [policy.md](policy.md)).
- **sensitivity**, how much harm a column can do if it leaves the city:
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _format(column: Column) -> str:
    text = column.value_format
    return f"`{text}`" if column.pattern else _cell(text)


def render() -> str:
    parts = [HEADER]
    parts += [f"  - `{s.value}`: {s.meaning}\n" for s in Sensitivity]
    for dataset in DATASETS.values():
        parts.append(f"\n## `{dataset.name}`\n\n{dataset_summary(dataset)}\n\n"
                     "| column | type | NULL | unit | format | bounds | sensitivity | "
                     "description |\n|---|---|---|---|---|---|---|---|\n")
        for c in dataset.columns:
            bounds = "" if c.bounds is None else f"{c.bounds[0]} to {c.bounds[1]}"
            parts.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | "
                         f"{c.unit} | {_format(c)} | {bounds} | {c.sensitivity.value} | "
                         f"{_cell(c.description)} |\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the reference is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not REFERENCE.exists() or REFERENCE.read_text() != text:
            print(f"{REFERENCE.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
