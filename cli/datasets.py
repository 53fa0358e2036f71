"""`cityfed datasets`: the region's standard schemas, as federation/query/datasets.py
defines them."""

from __future__ import annotations

import argparse
import io
import json

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from federation.errors import InvalidArgument
from federation.query.datasets import DATASETS, Dataset, Sensitivity

COLUMNS = ("column", "type", "unit", "format", "bounds", "sensitivity", "description")


def add_commands(commands: argparse._SubParsersAction) -> None:
    datasets = commands.add_parser(
        "datasets", help="the standard datasets: each column's type, unit, format and "
                         "sensitivity")
    datasets.add_argument("names", nargs="*", metavar="DATASET",
                          help=f"only these (default: all: {', '.join(DATASETS)})")
    datasets.add_argument("--json", action="store_true", help="print them as JSON")
    datasets.set_defaults(run=run_datasets)


def column_rows(dataset: Dataset) -> list[tuple[str, ...]]:
    """One row of COLUMNS per column: for the terminal and for docs/datasets.md."""
    return [(c.name, f"{c.type} or NULL" if c.nullable else c.type, c.unit, c.value_format,
             "" if c.bounds is None else f"{c.bounds[0]} to {c.bounds[1]}",
             c.sensitivity.value, c.description) for c in dataset.columns]


def dataset_summary(dataset: Dataset) -> str:
    return (f"{dataset.description} Privacy unit: {dataset.unit_name}; a private answer uses at "
            f"most {dataset.max_rows_per_person} of its rows.")


def run_datasets(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    unknown = [name for name in args.names if name not in DATASETS]
    if unknown:
        raise InvalidArgument(f"no standard dataset {unknown[0][:64]!r}: the datasets are "
                              f"{', '.join(DATASETS)}")
    chosen = [DATASETS[name] for name in args.names or DATASETS]
    if args.json:
        document = {"datasets": [d.to_json() for d in chosen],
                    "sensitivities": {s.value: s.meaning for s in Sensitivity}}
        out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return 0
    console = Console(file=out, width=max(120, Console().width), highlight=False)
    for dataset in chosen:
        table = RichTable(show_edge=False, header_style="bold", title_justify="left",
                          title=Text(f"{dataset.name}: {dataset_summary(dataset)}"))
        for column in COLUMNS:
            table.add_column(column, overflow="fold", no_wrap=column == "column")
        for row in column_rows(dataset):
            table.add_row(*map(Text, row))  # Text: a pattern's brackets are not markup
        console.print(table)
        console.print()
    console.print("sensitivity: " + "; ".join(f"{s.value}: {s.meaning}" for s in Sensitivity),
                  markup=False)
    console.print("format: what every non-null value in a loaded file must be (a pattern is a "
                  "regular expression the whole value matches); bounds: the range a value is "
                  "clamped to in a private sum or average (docs/policy.md)",
                  markup=False)
    return 0
