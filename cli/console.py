"""`cityfed console`: the web console of one member (usually a regional authority) for its
staff, and `cityfed console add-user` to let one of them in."""

from __future__ import annotations

import argparse
import getpass
import io
import sys
from pathlib import Path

from cli.arguments import add_identity_arguments, open_region, region_directory
from federation.errors import InvalidArgument
from federation.serving.signals import stop_on_signal


def add_commands(commands: argparse._SubParsersAction) -> None:
    console = commands.add_parser(
        "console", help="serve the web console of a member for its staff",
        description="Serve the web console: the region's health, questions with charts, "
                    "privacy budgets, audit checkpoints and receipts, fraud checks; every "
                    "action asks the cities as the --as member, like the CLI.")
    add_identity_arguments(console)
    console.add_argument("--listen", default="127.0.0.1:7480",
                         help="HOST:PORT (default 127.0.0.1:7480; loopback unless "
                              "--behind-tls-proxy)")
    console.add_argument("--users", type=Path,
                         help="the users file (default: REGION/console/MEMBER.users.json)")
    console.add_argument("--behind-tls-proxy", action="store_true",
                         help="listen beyond loopback: a TLS proxy in front serves HTTPS")
    console.add_argument("--timeout", type=float, default=10.0, help="seconds per city")
    console.set_defaults(run=run_console)
    more = console.add_subparsers(dest="console_command")
    add_user = more.add_parser("add-user", help="add a staff user, or set a user's password")
    add_user.add_argument("name")
    add_identity_arguments(add_user)
    add_user.add_argument("--users", type=Path, help="the users file (default as for console)")
    add_user.add_argument("--password-stdin", action="store_true",
                          help="read the password from standard input rather than asking")
    add_user.set_defaults(run=run_add_user)


def users_file(args: argparse.Namespace) -> Path:
    from federation.services.console.users import default_users_file

    if args.users:
        return args.users
    if not args.member:
        raise InvalidArgument("say which member's console: --as MEMBER or $CITYFED_MEMBER")
    return default_users_file(region_directory(args).path, args.member)


def run_add_user(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    from federation.services.console.users import Users

    path = users_file(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise InvalidArgument("the passwords differ")
    Users(path).add(args.name, password)
    print(f"{args.name} may log in to the console ({path})", file=out)
    return 0


def run_console(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    from federation.services.console.server import start_console

    manifest, identity = open_region(args)
    stop = stop_on_signal()
    console = start_console(manifest, identity, users_file=users_file(args),
                            listen=args.listen, region=region_directory(args),
                            behind_tls_proxy=args.behind_tls_proxy, city_timeout=args.timeout)
    print(f"console listening on {console.url}", file=out, flush=True)
    stop.wait()
    console.stop()
    return 0
