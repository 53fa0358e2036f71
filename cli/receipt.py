"""`cityfed receipt verify`: check a saved `cityfed query --json` answer holding only the
manifest: each city's receipt against the plan and response bytes it covers (docs/audit.md,
"Receipts"), and that the cities' partials merge to the saved answer."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from federation.coordination.answers import verify_saved_answer
from federation.errors import InvalidArgument
from federation.trust.keys import read_public_key
from federation.trust.manifest import load_manifest


def add_commands(commands: argparse._SubParsersAction) -> None:
    receipt = commands.add_parser(
        "receipt", help="check the cities' signed receipts").add_subparsers(
        dest="receipt_command", required=True)
    verify = receipt.add_parser(
        "verify", help="check a saved `cityfed query --json` answer: every city's receipt "
                       "against what it returned, and the merge against the answer")
    verify.add_argument("file", type=Path, help="the saved output of cityfed query --json")
    verify.add_argument("--manifest", type=Path, required=True,
                        help="the region's signed manifest (lists the cities' keys)")
    verify.add_argument("--root-public-key", type=Path, required=True,
                        help="the region's root public key, pinned")
    verify.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    manifest = load_manifest(args.manifest, read_public_key(args.root_public_key))
    try:
        saved = json.loads(args.file.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidArgument(f"{args.file}: not a saved answer ({str(error)[:80]})") from None
    findings = verify_saved_answer(saved, manifest)
    for finding in findings:
        print(f"{finding.subject:<14} {'ok' if finding.ok else 'FAILED'}: {finding.text}",
              file=out)
    return 0 if all(f.ok for f in findings) else 1


