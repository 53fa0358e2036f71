"""`cityfed audit …`: verify a node's audit log, read it, and hand its signed checkpoints and
consistency proofs to an authority that holds only the region's manifest.

Exit codes: 0 when the log verifies (verify) or the checkpoints are consistent
(check-consistency), 1 when they do not or for an error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from federation.errors import ConfigError, InvalidArgument
from federation.trust.keys import PUBLIC_MODE, read_public_key, write_file_atomically
from federation.trust.manifest import Manifest, load_manifest
from node.audit import (
    DECISIONS,
    PublicKeys,
    archive,
    check_consistency_between,
    consistency_proof_between,
    export_checkpoints,
    has_log,
    key_lookup,
    parse_time,
    read_records,
    verify_log,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser(
        "audit", help="verify and read a node's audit log, prove it only grew").add_subparsers(
        dest="audit_command", required=True)

    verify = audit.add_parser(
        "verify", help="check every record and signed checkpoint; name the first bad record "
                       "(exit 0 intact, 1 tampered)")
    verify.add_argument("directory", type=Path, help="the log folder (audit.log and later "
                                                     "segments, checkpoints.log)")
    add_key_arguments(verify, required=False)
    verify.add_argument("--public-key", type=Path,
                        help="the node's public signing key file, instead of the manifest")
    verify.add_argument("--city", help="the member id whose log this is (default: the city the "
                                       "records name)")
    verify.add_argument("--checkpoints", type=Path,
                        help="checkpoints exported earlier and kept elsewhere: the log must "
                             "still hold what they sign")
    verify.set_defaults(run=run_verify)

    show = audit.add_parser("show", help="list records, newest last")
    show.add_argument("directory", type=Path)
    show.add_argument("--caller", help="only this caller's member id")
    show.add_argument("--purpose", help="only this purpose")
    show.add_argument("--since", help="from this ISO 8601 time on (UTC unless it says)")
    show.add_argument("--until", help="before this ISO 8601 time")
    show.add_argument("--decision", choices=DECISIONS)
    show.add_argument("--json", action="store_true", help="one JSON record per line")
    show.set_defaults(run=run_show)

    export = audit.add_parser("export-checkpoints",
                              help="write the signed checkpoints as a JSON array")
    export.add_argument("directory", type=Path)
    export.add_argument("--out", type=Path, help="a file instead of standard output")
    export.set_defaults(run=run_export)

    prove = audit.add_parser("prove-consistency",
                             help="print the proof that the log of M records extends the log "
                                  "of N (RFC 9162)")
    prove.add_argument("directory", type=Path)
    prove.add_argument("--old-size", type=int, required=True)
    prove.add_argument("--new-size", type=int, required=True)
    prove.set_defaults(run=run_prove)

    check = audit.add_parser(
        "check-consistency", help="with only the manifest: are two signed checkpoints of a log "
                                  "consistent? (exit 0 yes, 1 no)")
    add_key_arguments(check, required=True)
    check.add_argument("old", help="the older checkpoint: JSON text or a file holding it")
    check.add_argument("new", help="the newer checkpoint: JSON text or a file holding it")
    check.add_argument("proof", help="the proof prove-consistency printed: JSON text or a file")
    check.set_defaults(run=run_check)

    move = audit.add_parser(
        "archive", help="move old segments to another folder; what remains still verifies "
                        "(from the signed checkpoint where it starts)")
    move.add_argument("directory", type=Path, help="the log folder")
    move.add_argument("destination", type=Path,
                      help="where the segments go: an empty folder, or the one an earlier "
                           "archive of this log went to")
    move.add_argument("--before", type=int, required=True, metavar="INDEX",
                      help="move the segments holding only records below INDEX (whole segments, "
                           "up to a segment start a checkpoint signed; never the current one)")
    add_key_arguments(move, required=False)
    move.add_argument("--public-key", type=Path,
                      help="the node's public signing key file, instead of the manifest")
    move.add_argument("--city", help="the member id whose log this is")
    move.set_defaults(run=run_archive)


def add_key_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--manifest", type=Path, required=required,
                        help="the region's signed manifest (lists the city's keys)")
    parser.add_argument("--root-public-key", type=Path, required=required,
                        help="the region's pinned root public key (root/root.pub)")


def _manifest(args: argparse.Namespace) -> Manifest | None:
    if (args.manifest is None) != (args.root_public_key is None):
        raise ConfigError("--manifest and --root-public-key go together")
    if args.manifest is None:
        return None
    return load_manifest(args.manifest, read_public_key(args.root_public_key))


def _json_argument(text: str, what: str) -> Any:
    """JSON given inline, or the name of a file holding it."""
    if text.lstrip().startswith(("{", "[")):
        source = text
    else:
        try:
            source = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
            raise ConfigError(f"{text}: cannot read the {what}: {reason}") from None
    try:
        return json.loads(source)
    except ValueError:
        raise InvalidArgument(f"the {what} is not JSON") from None


def checkpoint_file(path: Path) -> list[dict]:
    """A JSON array of checkpoints, or one checkpoint per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise ConfigError(f"{path}: cannot read the checkpoints: {reason}") from None
    try:
        if text.lstrip().startswith("["):
            loaded = json.loads(text)
        else:
            loaded = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise InvalidArgument(f"{path}: not a JSON array or JSON lines of checkpoints") from None
    if not isinstance(loaded, list):
        raise InvalidArgument(f"{path}: not a list of checkpoints")
    return loaded


def _log_city(directory: Path) -> str | None:
    """The city the first record names."""
    for record in read_records(directory):
        city = record.get("city")
        return city if isinstance(city, str) else None
    return None


def _keys(args: argparse.Namespace) -> PublicKeys | None:
    manifest = _manifest(args)
    if manifest is not None and args.public_key is not None:
        raise ConfigError("give either --manifest or --public-key, not both")
    if args.public_key is not None:
        return key_lookup(read_public_key(args.public_key))
    return manifest


def _need_log(directory: Path) -> None:
    if not has_log(directory):
        raise ConfigError(f"{directory}: no audit log here (audit.log or a later segment)")


def run_verify(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    _need_log(args.directory)
    keys = _keys(args)
    city = args.city or _log_city(args.directory)
    held = checkpoint_file(args.checkpoints) if args.checkpoints else ()
    report = verify_log(args.directory, keys, city=city, held_checkpoints=held)
    if keys is None:
        print("warning: checkpoint signatures were NOT checked; give --manifest and "
              "--root-public-key (or --public-key) to check them", file=err)
    for note in report.notes:
        print(f"note: {note}", file=err)
    if not report.ok:
        where = (f"first bad record: {report.first_bad_index}"
                 if report.first_bad_index is not None else
                 f"bad checkpoint: line {report.bad_checkpoint}"
                 if report.bad_checkpoint is not None else "")
        print(f"TAMPERED ({report.kind}): {args.directory}: {report.problem}", file=out)
        if where:
            print(where, file=out)
        return 1
    signed = ("signatures checked against the manifest" if args.manifest is not None else
              "signatures checked against the public key" if keys is not None else
              "signatures not checked")
    held_text = f", {len(held)} held checkpoints" if held else ""
    archived = (f" (records {report.start}..{report.start + report.records - 1}; the "
                f"{report.start} before them are archived)" if report.start else "")
    print(f"OK: {args.directory}: {report.records} records{archived}, {report.checkpoints} "
          f"checkpoints{held_text}; log of {city or 'an unnamed city'}, {signed}", file=out)
    return 0


def run_archive(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    _need_log(args.directory)
    keys = _keys(args)
    if keys is None:
        raise ConfigError("archiving checks the log's signatures first: give --manifest and "
                          "--root-public-key, or --public-key")
    if args.before < 0:
        raise InvalidArgument("--before must be a record index (0 or more)")
    moved = archive(args.directory, args.destination, args.before, keys,
                    city=args.city or _log_city(args.directory))
    if not moved.moved:
        print(f"nothing archived: {args.directory} starts at record {moved.start}, and no "
              f"segment after it starts at or below {args.before} with a signed checkpoint "
              "(the current segment is never archived)", file=out)
        return 0
    print(f"archived {moved.records} records in {len(moved.moved)} segments to "
          f"{args.destination}; {args.directory} now starts at record {moved.start}, verified "
          f"from the signed checkpoint of size {moved.start}", file=out)
    return 0


_COLUMNS = ("#", "time", "caller", "purpose", "method", "decision", "status", "reason",
            "groups", "ms")
_NO_WRAP = ("#", "time", "decision", "status", "groups", "ms")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def run_show(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    _need_log(args.directory)
    for name in ("since", "until"):
        text = getattr(args, name)
        if text is not None:
            try:
                parse_time(text)
            except ValueError:
                raise InvalidArgument(f"--{name} must be an ISO 8601 time like "
                                      f"2026-11-26T10:00:00Z, not {text!r}") from None
    records = read_records(args.directory, caller=args.caller, purpose=args.purpose,
                           since=args.since, until=args.until, decision=args.decision)
    if args.json:
        for record in records:
            print(json.dumps(record, sort_keys=True, ensure_ascii=False), file=out)
        return 0
    table = Table(show_edge=False, header_style="bold")
    for heading in _COLUMNS:
        table.add_column(heading, overflow="fold", no_wrap=heading in _NO_WRAP,
                         justify="right" if heading in ("#", "ms") else "left")
    count = 0
    for record in records:
        count += 1
        method = _cell(record.get("method")).rsplit("/", 1)[-1]
        groups = (f"{_cell(record.get('groups_returned'))}/"
                  f"{_cell(record.get('groups_suppressed'))}")
        table.add_row(_cell(record.get("index")), _cell(record.get("time")),
                      _cell(record.get("caller")), _cell(record.get("purpose")), method,
                      _cell(record.get("decision")), _cell(record.get("status")),
                      _cell(record.get("reason")), groups, _cell(record.get("duration_ms")))
    console = Console(file=out, width=max(140, Console().width), highlight=False, markup=False,
                      emoji=False)
    console.print(table)
    print(f"{count} records (groups: returned/withheld)", file=out)
    return 0


def run_export(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    checkpoints = export_checkpoints(args.directory)
    # One checkpoint per line inside the array, so any one can be copied out whole.
    text = "[\n" + ",\n".join(json.dumps(c, sort_keys=True, ensure_ascii=False)
                              for c in checkpoints) + "\n]\n"
    if args.out is None:
        out.write(text)
    else:
        write_file_atomically(args.out, text.encode("utf-8"), PUBLIC_MODE)
        print(f"wrote {len(checkpoints)} checkpoints to {args.out}", file=err)
    return 0


def run_prove(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    proof = consistency_proof_between(args.directory, args.old_size, args.new_size)
    print(json.dumps({"old_size": args.old_size, "new_size": args.new_size, "proof": proof},
                     indent=2), file=out)
    return 0


def run_check(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    manifest = _manifest(args)
    old = _json_argument(args.old, "old checkpoint")
    new = _json_argument(args.new, "new checkpoint")
    proof = _json_argument(args.proof, "proof")
    if isinstance(proof, dict):
        for name, checkpoint in (("old_size", old), ("new_size", new)):
            if name in proof and isinstance(checkpoint, dict) and \
                    proof[name] != checkpoint.get("size"):
                print(f"NOT consistent: the proof is for {name} {proof[name]}, the checkpoint "
                      f"has size {checkpoint.get('size')}", file=out)
                return 1
        proof = proof.get("proof")
    if not isinstance(proof, list) or not all(isinstance(p, str) for p in proof):
        raise InvalidArgument("the proof must be a list of hex hashes, or an object with one "
                              "under \"proof\"")
    problem = check_consistency_between(old, new, proof, manifest)
    if problem:
        print(f"NOT consistent: {problem}", file=out)
        return 1
    print(f"consistent: the log of {new['log']} at {new['size']} records ({new['time']}) "
          f"extends its log at {old['size']} records ({old['time']}); both checkpoints are "
          "signed by the city's key in the manifest", file=out)
    return 0

