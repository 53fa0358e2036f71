"""The trust commands: `cityfed region init` and `cityfed manifest sign|verify|show|purpose`."""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from federation.errors import ConfigError
from federation.synthetic import divisions
from federation.trust.keys import (
    PUBLIC_MODE,
    key_id,
    read_private_key,
    read_public_key,
    write_file_atomically,
)
from federation.trust.manifest import (
    Manifest,
    ManifestRejected,
    MemberKey,
    Purpose,
    format_time,
    load_manifest,
    manifest_from_json,
    parse_json,
    sign_manifest,
    verify_held_manifest,
)
from federation.trust.region_init import DEFAULT_PURPOSES, add_purpose, init_region

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def add_region_init(region_commands: argparse._SubParsersAction) -> None:
    init = region_commands.add_parser(
        "init", help="create a region's root key, TLS CA, member keys and signed manifest")
    init.add_argument("directory", type=Path)
    init.add_argument("--region", required=True, help="the region's name, like 'jjj'")
    init.add_argument("--cities", default=",".join(divisions.CITIES),
                      help="comma-separated city member ids (default: the five demo cities)")
    init.add_argument("--authority", default="",
                      help="comma-separated authority member ids, like 'jjj-health'")
    init.add_argument("--host", action="append", dest="hosts",
                      help="a host name or IP the member certificates name; repeat for more "
                           f"(default: {', '.join(DEFAULT_HOSTS)}); cities listen on the first")
    init.add_argument("--base-port", type=int, default=7401,
                      help="the first city listens here, the next on the next port")
    init.add_argument("--valid-days", type=int, default=365, help="the manifest's validity")
    init.add_argument("--purpose", action="append", dest="purposes", type=purpose_argument,
                      metavar="NAME[=DESCRIPTION]",
                      help="a purpose questions may be asked for; repeat for more. Given, the "
                           "manifest registers exactly these (a standard one needs no "
                           "description); default: "
                           f"{', '.join(p.id for p in DEFAULT_PURPOSES)}")
    init.add_argument("--force", action="store_true",
                      help="replace an existing region's keys (every node must re-pin root.pub)")
    init.set_defaults(run=run_region_init)


def add_commands(commands: argparse._SubParsersAction) -> None:
    manifest = commands.add_parser(
        "manifest", help="sign, verify and show the region's member manifest").add_subparsers(
        dest="manifest_command", required=True)

    sign = manifest.add_parser("sign", help="sign a manifest with the region's root key")
    sign.add_argument("manifest", type=Path, help="a manifest file, signed or not")
    sign.add_argument("--root-key", type=Path, required=True, help="the root's Ed25519 key")
    sign.add_argument("--out", type=Path, help="where to write it (default: in place)")
    sign.add_argument("--bump-version", action="store_true",
                      help="next version, issued now, valid for as long as before")
    sign.set_defaults(run=run_sign)

    verify = manifest.add_parser("verify", help="check a manifest as a node would")
    verify.add_argument("manifest", type=Path)
    verify.add_argument("--root-public-key", type=Path, required=True,
                        help="the pinned root public key (root.pub)")
    verify.add_argument("--held", type=Path,
                        help="the manifest the node holds now: refuse anything older")
    verify.set_defaults(run=run_verify)

    show = manifest.add_parser("show", help="print a manifest's members, keys and purposes")
    show.add_argument("manifest", type=Path)
    show.add_argument("--root-public-key", type=Path, help="also verify the signature")
    show.set_defaults(run=run_show)

    purpose = manifest.add_parser(
        "purpose", help="register the purposes questions may be asked for").add_subparsers(
        dest="purpose_command", required=True)
    add = purpose.add_parser(
        "add", help="register a purpose: the manifest's next version, signed with the root key")
    add.add_argument("name", help="the purpose's id, like 'road-safety'")
    add.add_argument("--description", required=True,
                     help="what answers asked for it are used for (cities grant by purpose)")
    add.add_argument("--region", type=Path, default=None,
                     help="the region folder `cityfed region init` wrote, whose manifest.json "
                          "is replaced (default: $CITYFED_REGION or region)")
    add.add_argument("--root-key", type=Path,
                     help="the root's Ed25519 key (default: root/root.key in the region folder)")
    add.set_defaults(run=run_purpose_add)


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def purpose_argument(text: str) -> Purpose:
    """`NAME=DESCRIPTION`, or the name of a standard purpose alone."""
    name, _, description = text.partition("=")
    if not description:
        standard = next((p for p in DEFAULT_PURPOSES if p.id == name), None)
        if standard is None:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a standard purpose: say what it is for, as "
                f"'{name}=DESCRIPTION'")
        return standard
    return Purpose(name, description)


def display_name(member_id: str) -> str:
    return divisions.member(member_id).name if member_id in divisions.CITIES else member_id


def run_region_init(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    cities = [(c, display_name(c)) for c in _ids(args.cities)]
    authorities = [(a, a) for a in _ids(args.authority)]
    result = init_region(args.directory, region=args.region, cities=cities,
                         authorities=authorities, hosts=tuple(args.hosts or DEFAULT_HOSTS),
                         base_port=args.base_port, valid_days=args.valid_days,
                         purposes=args.purposes, force=args.force)
    root_kid = key_id(read_public_key(result.root_public_key))
    print(f"created region {args.region} in {result.directory}: {len(cities)} cities, "
          f"{len(authorities)} authorities", file=out)
    print(f"  manifest      {result.manifest} (version 1)", file=out)
    print(f"  root key      {result.root_key} (kid {root_kid}): keep it offline", file=out)
    print(f"  pin on nodes  {result.root_public_key}, {result.ca_certificate}", file=out)
    return 0


def run_purpose_add(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    region = args.region or Path(os.environ.get("CITYFED_REGION", "region"))
    manifest = add_purpose(region, Purpose(args.name, args.description), datetime.now(UTC),
                           root_key_path=args.root_key)
    print(f"registered purpose {args.name} in {region / 'manifest.json'}: version "
          f"{manifest.version}, expires {format_time(manifest.expires_at)}", file=out)
    print("  nodes and gateways reading this file take it within a second, without a restart; "
          "copy it over every other node's manifest file", file=out)
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file: {error.strerror}") from None


def run_sign(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    root_key = read_private_key(args.root_key)
    document = parse_json(_read(args.manifest))
    body = document.get("manifest", document) if isinstance(document, dict) else document
    manifest = manifest_from_json(body)
    if args.bump_version:
        now = datetime.now(UTC).replace(microsecond=0)
        manifest = dataclasses.replace(
            manifest, version=manifest.version + 1, issued_at=now,
            expires_at=now + (manifest.expires_at - manifest.issued_at))
    data = sign_manifest(manifest, root_key)
    verify_held_manifest(data, root_key.public_key())
    target = args.out or args.manifest
    write_file_atomically(target, data, PUBLIC_MODE)
    print(f"signed {target}: region {manifest.region}, version {manifest.version}, expires "
          f"{format_time(manifest.expires_at)}, root key {key_id(root_key.public_key())}",
          file=out)
    return 0


def run_verify(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    root = read_public_key(args.root_public_key)
    held = None
    if args.held:
        try:
            held = verify_held_manifest(_read(args.held), root)
        except ManifestRejected as error:
            raise ConfigError(f"{args.held}: the held manifest does not verify: "
                              f"{error}") from None
    try:
        manifest = load_manifest(args.manifest, root, held=held)
    except ManifestRejected as error:
        print(f"REJECTED {error.why}: {error.detail}", file=out)
        return 1
    print(f"OK region {manifest.region}, version {manifest.version}, expires "
          f"{format_time(manifest.expires_at)}, {len(manifest.members)} members", file=out)
    return 0


def _key_state(key: MemberKey, now: datetime) -> str:
    if key.valid_at(now):
        return "current"
    return "not yet valid" if now < key.not_before else "expired"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> RichTable:
    table = RichTable(show_edge=False, header_style="bold", title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))  # Text: never read a manifest's strings as markup
    return table


def print_manifest(manifest: Manifest, signature: str, out: io.TextIOBase,
                   now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    console = Console(file=out, width=max(120, Console().width), highlight=False)
    expired = "  (EXPIRED)" if now > manifest.expires_at else ""
    console.print(f"region {manifest.region}, version {manifest.version}, issued "
                  f"{format_time(manifest.issued_at)}, expires "
                  f"{format_time(manifest.expires_at)}{expired}", markup=False)
    console.print(f"signature: {signature}", markup=False)
    console.print(_table(
        "members", ("id", "name", "role", "endpoint", "groups", "tls sha-256"),
        [(m.id, m.name, m.role, m.endpoint or "-", ", ".join(m.groups),
          m.tls_fingerprint[:16] + "…") for m in manifest.members]))
    console.print(_table(
        "signing keys", ("member", "kid", "not before", "not after", "now"),
        [(m.id, k.kid, format_time(k.not_before),
          "-" if k.not_after is None else format_time(k.not_after), _key_state(k, now))
         for m in manifest.members for k in m.keys]))
    console.print(_table("purposes", ("id", "description"),
                         [(p.id, p.description) for p in manifest.purposes]))


def run_show(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    data = _read(args.manifest)
    if args.root_public_key:
        manifest = verify_held_manifest(data, read_public_key(args.root_public_key))
        signature = "verified with the root public key"
    else:
        document = parse_json(data)
        if not isinstance(document, dict):
            raise ManifestRejected("malformed", "the file must hold a JSON object")
        manifest = manifest_from_json(document.get("manifest"))
        found = document.get("signature")
        kid = found.get("kid") if isinstance(found, dict) else None
        signature = f"by key {kid}, NOT verified (pass --root-public-key)" if kid else "none"
    print_manifest(manifest, signature, out)
    return 0
