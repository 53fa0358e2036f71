"""`cityfed node doctor` checks a node's setup as its operator would and says what to fix: exit 0
when there is nothing to fix, 1 with each problem named otherwise."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cli.main import main
from federation.trust.manifest import sign_manifest
from node.config import NodeConfig
from node.doctor import Level, diagnose
from tests import regionkit
from tests.test_disk_full import SmallDisk

CITY, OTHER = "tianjin", "beijing"


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    running = regionkit.start_region(tmp_path_factory.mktemp("doctor"), (CITY, OTHER), rows=50)
    yield running
    running.stop()


def write_config(region, path, **changes) -> NodeConfig:
    config = dataclasses.replace(region.nodes[CITY].config, **changes)
    path.write_text(regionkit.config_toml(config))
    return config


def findings(config_path, **options) -> dict[str, list]:
    by_check: dict[str, list] = {}
    for finding in diagnose(config_path, **options):
        by_check.setdefault(finding.check, []).append(finding)
    return by_check


def problems(found: dict[str, list]) -> dict[str, list[str]]:
    return {check: [f.message for f in each if f.level is Level.PROBLEM]
            for check, each in found.items() if any(f.level is Level.PROBLEM for f in each)}


def test_a_sound_node_with_its_peers_up_has_nothing_to_fix(region, tmp_path):
    write_config(region, tmp_path / "node.toml")
    out = io.StringIO()
    assert main(["node", "doctor", "--config", str(tmp_path / "node.toml")], out=out) == 0, \
        out.getvalue()
    text = out.getvalue()
    assert text.rstrip().endswith("0 problems, 0 warnings")
    for check in ("config", "policy", "keys", "manifest", "certificate", "clock", "disk",
                  "files", "peers"):
        assert f"ok       {check}" in text
    assert f"{OTHER} answers at" in text and f"{CITY} answers at" in text


def test_a_config_error_is_named_with_the_key(tmp_path):
    (tmp_path / "node.toml").write_text('[node]\ncity = "tianjin"\nthreads = "two"\n')
    out = io.StringIO()
    assert main(["node", "doctor", "--config", str(tmp_path / "node.toml")], out=out) == 1
    assert "PROBLEM  config" in out.getvalue() and "fix:" in out.getvalue()


def test_keys_readable_by_others_are_a_problem(region, tmp_path):
    config = write_config(region, tmp_path / "node.toml")
    config.signing_key.chmod(0o644)
    try:
        found = problems(findings(tmp_path / "node.toml", peers=False))
    finally:
        config.signing_key.chmod(0o600)
    assert found == {"files": [f"others than the node's user may read {config.signing_key}"]}


def test_another_citys_certificate_or_key_is_a_problem(region, tmp_path):
    other = region.trusted.directory.member(OTHER)
    write_config(region, tmp_path / "node.toml", tls_certificate=other / "tls.pem",
                 tls_private_key=other / "tls.key", signing_key=other / "signing.key")
    found = problems(findings(tmp_path / "node.toml", peers=False))
    assert set(found) == {"manifest", "certificate"}
    assert any("is not the certificate the manifest lists for tianjin" in m
               for m in found["manifest"])
    assert any("is not one the manifest lists" in m for m in found["manifest"])
    assert found["certificate"] == [f"{other / 'tls.pem'} does not name tianjin.test.cityfed"]


def test_a_manifest_not_signed_by_the_pinned_root_is_a_problem(region, tmp_path):
    forged = tmp_path / "manifest.json"
    forged.write_bytes(sign_manifest(region.manifest, Ed25519PrivateKey.generate()))
    write_config(region, tmp_path / "node.toml", manifest=forged)
    found = problems(findings(tmp_path / "node.toml", peers=False))
    assert list(found) == ["manifest"] and "signature" in found["manifest"][0]


def test_a_certificate_about_to_expire_warns_and_an_expired_one_is_a_problem(region, tmp_path):
    config = write_config(region, tmp_path / "node.toml")
    ends = x509.load_pem_x509_certificate(config.tls_certificate.read_bytes()) \
        .not_valid_after_utc
    soon = findings(tmp_path / "node.toml", peers=False, now=ends - timedelta(days=10))
    assert [f.message for f in soon["certificate"] if f.level is Level.WARN] == [
        f"{config.tls_certificate} expires in 10 days ({ends:%Y-%m-%d})"]
    late = problems(findings(tmp_path / "node.toml", peers=False, now=ends + timedelta(days=1)))
    assert f"{config.tls_certificate} expired on {ends:%Y-%m-%d}" in late["certificate"]
    assert "manifest" in late  # the manifest lives a year: long gone by then


def test_a_clock_behind_the_manifest_and_certificate_is_a_problem(region, tmp_path):
    write_config(region, tmp_path / "node.toml")
    manifest = region.manifest
    found = problems(findings(tmp_path / "node.toml", peers=False,
                              now=manifest.issued_at - timedelta(days=2)))
    (clock,) = found["clock"]
    assert "this host's clock" in clock and "is behind: the TLS certificate is valid from" in clock
    assert "issued at" in found["manifest"][0]


def test_a_full_disk_is_a_problem_naming_the_folder(region, tmp_path):
    disk = SmallDisk(tmp_path / "disk")
    try:
        if not disk.tmpfs:
            pytest.skip("no filesystem to fill here (mounting is not permitted)")
        disk.fill()
        write_config(region, tmp_path / "node.toml", state_dir=disk.path / "state")
        found = problems(findings(tmp_path / "node.toml", peers=False))
    finally:
        disk.unmount()
    assert found == {"disk": [f"the disk holding {disk.path / 'state'} has 0 bytes free of "
                              "32.0 MiB"]}


def test_a_city_that_does_not_answer_is_named(region, tmp_path):
    write_config(region, tmp_path / "node.toml")
    region.stop_node(OTHER)
    found = findings(tmp_path / "node.toml", timeout=2)
    warnings = [f.message for f in found["peers"] if f.level is Level.WARN]
    assert len(warnings) == 1 and warnings[0].startswith(f"{OTHER} at ")
    assert problems(found) == {"peers": ["no other city answers"]}
