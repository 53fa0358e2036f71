"""Purposes are registered by the region's operator: `cityfed region init --purpose` and
`cityfed manifest purpose add`, which signs the manifest's next version with the root key.
Running nodes take a purpose added this way without a restart; a token for a purpose the
manifest does not register is refused."""

from __future__ import annotations

import io
import json
import time

import grpc
import pytest

from cli.main import main as cityfed
from federation.query.sql import parse_query
from federation.trust.keys import generate_signing_key, read_public_key, write_private_key
from federation.trust.manifest import Purpose, load_manifest
from federation.trust.region_init import DEFAULT_PURPOSES
from tests.regionkit import aggregate, start_region

PLAN = parse_query("SELECT sex, count(*) FROM population GROUP BY sex").plan.SerializeToString()
ROAD_SAFETY = "road-safety"


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cityfed(list(argv), out, err)
    return code, out.getvalue() + err.getvalue()


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def manifest_of(directory):
    return load_manifest(directory / "manifest.json",
                         read_public_key(directory / "root" / "root.pub"))


@pytest.fixture
def region(tmp_path):
    running = start_region(tmp_path, ("tianjin",), rows=50)  # every purpose granted: "*"
    yield running
    running.stop()


def test_a_purpose_added_with_the_cli_is_accepted_by_running_nodes(region):
    ask = lambda purpose: code_of(lambda: aggregate(region, "tianjin", PLAN,  # noqa: E731
                                                    purpose=purpose, timeout=10))
    with pytest.raises(grpc.RpcError) as refused:
        aggregate(region, "tianjin", PLAN, purpose=ROAD_SAFETY, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "purpose is not registered" in refused.value.details()

    code, said = run("manifest", "purpose", "add", ROAD_SAFETY, "--description",
                     "Road accidents by district, for planning safer crossings.",
                     "--region", str(region.directory))
    assert code == 0, said
    assert f"registered purpose {ROAD_SAFETY}" in said and "version 2" in said
    manifest = manifest_of(region.directory)
    assert manifest.version == 2
    assert manifest.purposes == (*DEFAULT_PURPOSES, Purpose(
        ROAD_SAFETY, "Road accidents by district, for planning safer crossings."))

    deadline = time.monotonic() + 5  # the node looks at its manifest file every second
    while ask(ROAD_SAFETY) != grpc.StatusCode.OK:
        assert time.monotonic() < deadline, "the running node never took the new purpose"
        time.sleep(0.1)
    assert ask("never-registered") == grpc.StatusCode.UNAUTHENTICATED


def test_manifest_purpose_add_refuses_a_known_purpose_a_bad_name_and_a_foreign_root(
        region, tmp_path):
    directory = str(region.directory)
    before = (region.directory / "manifest.json").read_bytes()

    code, said = run("manifest", "purpose", "add", "population-statistics", "--description",
                     "again", "--region", directory)
    assert code == 1 and "'population-statistics' is already registered" in said, said
    code, said = run("manifest", "purpose", "add", "Road Safety", "--description", "roads",
                     "--region", directory)
    assert code == 1 and "purpose 'Road Safety' must be lowercase letters" in said, said
    code, said = run("manifest", "purpose", "add", ROAD_SAFETY, "--description", " ",
                     "--region", directory)
    assert code == 1 and "needs a description" in said, said
    foreign = tmp_path / "foreign.key"
    write_private_key(foreign, generate_signing_key())
    code, said = run("manifest", "purpose", "add", ROAD_SAFETY, "--description", "roads",
                     "--region", directory, "--root-key", str(foreign))
    assert code == 1 and "bad_signature" in said, said

    assert (region.directory / "manifest.json").read_bytes() == before


def test_region_init_registers_exactly_the_purposes_it_is_given(tmp_path):
    code, said = run("region", "init", str(tmp_path / "r"), "--region", "test",
                     "--cities", "tianjin", "--authority", "auditor",
                     "--purpose", "population-statistics",
                     "--purpose", f"{ROAD_SAFETY}=Road accidents by district.")
    assert code == 0, said
    assert manifest_of(tmp_path / "r").purposes == (
        DEFAULT_PURPOSES[0], Purpose(ROAD_SAFETY, "Road accidents by district."))
    document = json.loads((tmp_path / "r" / "manifest.json").read_bytes())
    assert [p["id"] for p in document["manifest"]["purposes"]] == [
        "population-statistics", ROAD_SAFETY]

    code, said = run("region", "init", str(tmp_path / "default"), "--region", "test",
                     "--cities", "tianjin")
    assert code == 0, said
    assert manifest_of(tmp_path / "default").purposes == DEFAULT_PURPOSES


def test_region_init_wants_a_description_for_a_purpose_of_its_own(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        run("region", "init", str(tmp_path / "r"), "--region", "test", "--cities", "tianjin",
            "--purpose", ROAD_SAFETY)
    assert stopped.value.code == 2
    assert f"'{ROAD_SAFETY}=DESCRIPTION'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
