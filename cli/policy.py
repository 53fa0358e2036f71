"""`cityfed policy explain` and `cityfed policy check`: read a policy without running anything.

Exit codes: 0 when the policy allows the question (explain) or the file is valid (check), 4 when
the policy refuses the question, 1 for an error (a bad policy file, SQL outside the subset),
2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from federation.query.datasets import DATASETS
from federation.query.sql import parse_query
from node.policy import ROLES, Caller, decide, explain, load_policy

EXIT_REFUSED = 4


def add_commands(commands: argparse._SubParsersAction) -> None:
    policy = commands.add_parser(
        "policy", help="check a sharing policy and explain its decisions").add_subparsers(
        dest="policy_command", required=True)

    explain_cmd = policy.add_parser(
        "explain", help="say which rule allows or refuses each column of a question "
                        "(exit 0 allowed, 4 refused)")
    explain_cmd.add_argument("sql", help="a SELECT in cityfed's SQL subset (see README)")
    explain_cmd.add_argument("--policy", type=Path, required=True, help="the policy TOML file")
    explain_cmd.add_argument("--caller", required=True, help="the asking member's id")
    explain_cmd.add_argument("--role", choices=ROLES, default="city",
                             help="the caller's role in the manifest (default: city)")
    explain_cmd.add_argument("--groups", default="",
                             help="comma-separated groups the caller belongs to")
    explain_cmd.add_argument("--purpose", required=True, help="the purpose the caller states")
    explain_cmd.set_defaults(run=run_explain)

    check = policy.add_parser("check", help="validate a policy file and list its rules")
    check.add_argument("file", type=Path)
    check.set_defaults(run=run_check)


def run_explain(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    policy = load_policy(args.policy)
    caller = Caller(args.caller, args.role,
                    tuple(g.strip() for g in args.groups.split(",") if g.strip()))
    decision = decide(policy, caller, args.purpose, parse_query(args.sql).plan)
    print(explain(decision), file=out)
    return 0 if decision.answerable else EXIT_REFUSED


def run_check(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    policy = load_policy(args.file)
    console = Console(file=out, width=max(120, Console().width), highlight=False, markup=False,
                      emoji=False)
    table = Table(show_edge=False, header_style="bold")
    for heading in ("#", "dataset", "columns", "callers", "purposes", "level", "note"):
        table.add_column(heading, overflow="fold")
    for number, rule in enumerate(policy.rules, start=1):
        table.add_row(str(number), rule.dataset, ", ".join(rule.columns),
                      ", ".join(rule.callers), ", ".join(rule.purposes), rule.level.keyword,
                      rule.note)
    console.print(table)
    private = policy.privacy
    print(f"privacy: ε {private.epsilon_per_question:g} and δ {private.delta_per_question:g} per "
          f"question; ε {private.epsilon_per_period:g} and δ {private.delta_per_period:g} per "
          f"caller, purpose and {private.period}", file=out)
    for name in DATASETS:
        settings = private.of(name)
        bounds = ", ".join(f"{c} [{lo}, {hi}]" for c, (lo, hi) in settings.bounds.items())
        print(f"  {name}: at most {settings.max_rows_per_person} rows per "
              f"{DATASETS[name].unit_name}; bounds: {bounds or 'none'}", file=out)
    print(f"{args.file}: valid, {len(policy.rules)} rules; anything no rule allows is denied",
          file=out)
    return 0
