"""`cityfed node doctor`: a node's setup checked as its operator would check it, each problem with
what to fix; and the one line a node that cannot start prints instead of a traceback."""

from __future__ import annotations

import enum
import errno
import os
import subprocess
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.errors import CityfedError, StateUnavailable
from federation.trust.identity import channel_options
from federation.trust.keys import key_id, public_key_from_text, read_private_key
from federation.trust.manifest import Manifest, load_manifest, verify_held_manifest
from federation.trust.pki import certificate_fingerprint, member_dns_name
from federation.trust.private_files import open_to_others
from node.audit import export_checkpoints, parse_time
from node.config import NodeConfig, load_config
from node.policy import load_policy

# Below this much free space a disk the node writes to is a problem, below WARN_FREE a warning.
MIN_FREE = 64 * 1024 * 1024
WARN_FREE = 1024 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Disk:
    """A filesystem the node writes to, by the first of the node's folders found on it."""

    folder: Path
    free: int
    total: int


def disks(config: NodeConfig) -> list[Disk]:
    """The filesystems holding the node's state, its database (and DuckDB's write-ahead log and
    spill folder beside it) and its admin socket, each once."""
    found: dict[int, Disk] = {}
    for folder in (config.state_path, config.database.parent, config.admin_socket_path.parent):
        existing = _existing(folder)
        info = os.statvfs(existing)
        device = existing.stat().st_dev
        if device not in found:
            found[device] = Disk(folder, info.f_bavail * info.f_frsize,
                                 info.f_blocks * info.f_frsize)
    return list(found.values())


def _existing(path: Path) -> Path:
    """The path, or its nearest ancestor that exists (a state folder not created yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def size_text(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def cannot_start(config: NodeConfig, error: OSError) -> CityfedError:
    """The error a node that failed to start on an operating-system error reports: what failed,
    and for a full disk, which of the node's folders is on it."""
    what = error.strerror or str(error) or type(error).__name__
    if error.filename:
        what += f": {error.filename}"
    if error.errno in _FULL:
        full = [disk for disk in disks(config) if disk.free < MIN_FREE] or disks(config)
        where = "; ".join(f"the disk holding {disk.folder} has {size_text(disk.free)} free"
                          for disk in full)
        advice = f"{where}: free space there and start the node again"
    elif error.errno == errno.EFBIG:
        advice = ("a file reached the node's file-size limit (ulimit -f, systemd's "
                  "LimitFSIZE=): raise the limit and start the node again")
    else:
        advice = "fix that and start the node again (`cityfed node doctor` checks the rest)"
    return StateUnavailable(f"{config.city} cannot start: {what}; {advice}")


# --- `cityfed node doctor` -------------------------------------------------------------------

EXPIRY_WARNING = timedelta(days=30)


class Level(enum.Enum):
    OK = "ok"
    WARN = "warn"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str = ""


class _Findings(list):
    def ok(self, check: str, message: str) -> None:
        self.append(Finding(check, Level.OK, message))

    def warn(self, check: str, message: str, fix: str) -> None:
        self.append(Finding(check, Level.WARN, message, fix))

    def problem(self, check: str, message: str, fix: str) -> None:
        self.append(Finding(check, Level.PROBLEM, message, fix))


def diagnose(config_path: Path, *, now: datetime | None = None, peers: bool = True,
             timeout: float = 3.0) -> list[Finding]:
    """Every check of a node's setup, in the order an operator would fix them. Reads only:
    nothing is written, and a running node is asked only for its health."""
    now = now or datetime.now(UTC)
    found = _Findings()
    try:
        config = load_config(config_path)
    except CityfedError as error:
        found.problem("config", str(error), "correct the key it names (docs/configuration.md)")
        return found
    found.ok("config", f"{config_path}: the node of {config.city}")
    _check_policy(config, found)
    material = _check_keys(config, found)
    manifest = _check_manifest(config, material, now, found)
    _check_certificates(config, material, manifest, now, found)
    _check_clock(config, manifest, material, now, found)
    _check_disks(config, found)
    _check_modes(config, found)
    if peers and manifest is not None and material.get("tls") is not None:
        _check_peers(config, manifest, material, timeout, found)
    return found


def _check_policy(config: NodeConfig, found: _Findings) -> None:
    if config.policy is None:
        found.warn("policy", "no policy is set: the node refuses every question",
                   "write the city's sharing policy (docs/policy.md) and set `policy`")
        return
    try:
        policy = load_policy(config.policy)
    except CityfedError as error:
        found.problem("policy", str(error), "correct the policy (`cityfed policy check`)")
        return
    found.ok("policy", f"{config.policy}: {len(policy.rules)} rules")


def _read(path: Path, what: str, check: str, found: _Findings) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as error:
        found.problem(check, f"{path}: cannot read the {what}: {error.strerror}",
                      f"set the path of the {what} in the config, and let the node's user "
                      "read it")
        return None


def _check_keys(config: NodeConfig, found: _Findings) -> dict:
    """The trust material that could be read: root key, TLS key, certificate and CA, signing
    key id."""
    material: dict = {}
    root = _read(config.root_public_key, "root public key", "keys", found)
    if root is not None:
        try:
            material["root"] = public_key_from_text(root.decode("ascii", "replace"))
        except ValueError:
            found.problem("keys", f"{config.root_public_key}: not a root public key",
                          "use root/root.pub as the region's operator handed it out")
    try:
        material["kid"] = key_id(read_private_key(config.signing_key).public_key())
    except CityfedError as error:
        found.problem("keys", str(error), "use members/<city>/signing.key of this city")
    certificate_pem = _read(config.tls_certificate, "TLS certificate", "keys", found)
    key_pem = _read(config.tls_private_key, "TLS private key", "keys", found)
    ca_pem = _read(config.tls_ca, "CA certificate", "keys", found)
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem) if certificate_pem else None
        ca = x509.load_pem_x509_certificate(ca_pem) if ca_pem else None
    except ValueError:
        found.problem("keys", "the TLS certificate or the CA certificate is not PEM",
                      "use members/<city>/tls.pem and root/ca.pem")
        return material
    if certificate is not None and key_pem is not None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            found.problem("keys", f"{config.tls_private_key}: not an unencrypted PEM private key",
                          "use members/<city>/tls.key")
            return material
        if _public_bytes(key.public_key()) != _public_bytes(certificate.public_key()):
            found.problem("keys", f"{config.tls_private_key} is not the key of "
                                  f"{config.tls_certificate}",
                          "use the key and certificate issued together (members/<city>/)")
        else:
            material["tls"] = (certificate_pem, key_pem, ca_pem)
    material["certificate"], material["ca"] = certificate, ca
    if "kid" in material and "tls" in material:
        found.ok("keys", f"signing key {material['kid']}; the TLS key matches its certificate")
    return material


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_manifest(config: NodeConfig, material: dict, now: datetime,
                    found: _Findings) -> Manifest | None:
    if "root" not in material:
        return None
    try:
        manifest = load_manifest(config.manifest, material["root"], now=now)
    except CityfedError as error:
        fix = {"expired": "ask the region's operator for a newer signed manifest",
               "not_yet_valid": "check this host's clock",
               }.get(getattr(error, "why", ""), "use the manifest the region's operator signed, "
                                                  "with the root key pinned in the config")
        found.problem("manifest", str(error), fix)
        return None
    held_path = config.state_path / "manifest.json"
    if held_path.exists():
        try:
            held = verify_held_manifest(held_path.read_bytes(), material["root"])
        except (CityfedError, OSError):
            held = None
        if held is not None and held.version > manifest.version:
            found.problem("manifest", f"{config.manifest}: version {manifest.version} is older "
                                      f"than version {held.version} the node holds; it will "
                                      "refuse to start with it",
                          "use the region's latest manifest")
    me = manifest.member(config.city)
    if me is None or me.role != "city":
        found.problem("manifest", f"{config.manifest}: {config.city} is not a city of "
                                  f"region {manifest.region}",
                      "check `city` in the config, or ask the region's operator to list it")
        return manifest
    certificate = material.get("certificate")
    if certificate is not None and certificate_fingerprint(certificate) != me.tls_fingerprint:
        found.problem("manifest", f"{config.tls_certificate} is not the certificate the "
                                  f"manifest lists for {config.city}",
                      "use the certificate the manifest lists, or ask the region's operator "
                      "to list the new one")
    kid = material.get("kid")
    key = next((k for k in me.keys if k.kid == kid), None)
    if kid is not None and key is None:
        found.problem("manifest", f"signing key {kid} is not one the manifest lists for "
                                  f"{config.city}",
                      "use the listed key, or ask the region's operator to list the new one")
    elif key is not None and not key.valid_at(now):
        found.problem("manifest", f"signing key {kid} is not valid now", "use a current key")
    elif key is not None and key.not_after is not None and key.not_after - now < EXPIRY_WARNING:
        found.warn("manifest", f"signing key {kid} stops being valid on "
                               f"{key.not_after:%Y-%m-%d}",
                   "ask the region's operator to list the next key before then")
    if manifest.expires_at - now < EXPIRY_WARNING:
        found.warn("manifest", f"the manifest (version {manifest.version}) expires on "
                               f"{manifest.expires_at:%Y-%m-%d}",
                   "ask the region's operator for a newer signed manifest before then")
    else:
        found.ok("manifest", f"version {manifest.version} of region {manifest.region}, signed, "
                             f"valid until {manifest.expires_at:%Y-%m-%d}, lists {config.city}")
    return manifest


def _check_certificates(config: NodeConfig, material: dict, manifest: Manifest | None,
                        now: datetime, found: _Findings) -> None:
    for path, certificate in ((config.tls_certificate, material.get("certificate")),
                              (config.tls_ca, material.get("ca"))):
        if certificate is None:
            continue
        ends = certificate.not_valid_after_utc
        if now >= ends:
            found.problem("certificate", f"{path} expired on {ends:%Y-%m-%d}",
                          "ask the region's operator for a new certificate")
        elif ends - now < EXPIRY_WARNING:
            found.warn("certificate", f"{path} expires in {(ends - now).days} days "
                                      f"({ends:%Y-%m-%d})",
                       "ask the region's operator for a new certificate, and for a manifest "
                       "listing it, before then")
        else:
            found.ok("certificate", f"{path} valid until {ends:%Y-%m-%d}")
    certificate, ca = material.get("certificate"), material.get("ca")
    if certificate is not None and ca is not None:
        try:
            certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            found.problem("certificate", f"{config.tls_certificate} was not issued by "
                                         f"{config.tls_ca}",
                          "use the region's CA certificate (root/ca.pem)")
    if certificate is not None and manifest is not None:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        if member_dns_name(config.city, manifest.region) not in names:
            found.problem("certificate", f"{config.tls_certificate} does not name "
                                         f"{member_dns_name(config.city, manifest.region)}",
                          "use this city's certificate (members/<city>/tls.pem)")


def _check_clock(config: NodeConfig, manifest: Manifest | None, material: dict, now: datetime,
                 found: _Findings) -> None:
    """A clock behind what this node has signed or been given: tokens, certificates and the
    audit log's checkpoints all depend on it."""
    later = []
    if manifest is not None and manifest.issued_at > now:
        later.append(f"the manifest was issued at {manifest.issued_at:%Y-%m-%d %H:%M:%S} UTC")
    certificate = material.get("certificate")
    if certificate is not None and certificate.not_valid_before_utc > now:
        later.append(f"the TLS certificate is valid from "
                     f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    try:
        checkpoints = export_checkpoints(config.state_path / "audit")
        last = parse_time(checkpoints[-1]["time"]) if checkpoints else None
    except Exception:  # a log this check cannot read: `cityfed audit verify` says why
        last = None
    if last is not None and last > now:
        later.append(f"the audit log's last checkpoint is dated {last:%Y-%m-%d %H:%M:%S} UTC")
    if later:
        found.problem("clock", f"this host's clock ({now:%Y-%m-%d %H:%M:%S} UTC) is behind: "
                               + "; ".join(later),
                      "set the clock right (NTP) before starting the node")
        return
    synchronised = _ntp_synchronised()
    if synchronised is False:
        found.warn("clock", "the clock is not synchronised (timedatectl: NTPSynchronized=no)",
                   "enable NTP (systemd-timesyncd or chrony): tokens live minutes")
    else:
        found.ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC, not behind the manifest, the "
                          "certificate or the audit log")


def _ntp_synchronised() -> bool | None:
    try:
        answer = subprocess.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    value = answer.stdout.strip()
    return None if answer.returncode or value not in ("yes", "no") else value == "yes"


def _check_disks(config: NodeConfig, found: _Findings) -> None:
    for disk in disks(config):
        text = f"the disk holding {disk.folder} has {size_text(disk.free)} free of " \
               f"{size_text(disk.total)}"
        if disk.free < MIN_FREE:
            found.problem("disk", text, "free space there: with a full disk the node answers "
                                        "UNAVAILABLE (docs/errors.md)")
        elif disk.free < WARN_FREE:
            found.warn("disk", text, "free space there before it fills")
        else:
            found.ok("disk", text)


def _check_modes(config: NodeConfig, found: _Findings) -> None:
    loose = [path for root in (*config.private_paths, config.tls_private_key,
                               config.signing_key) for path in open_to_others(root)]
    if loose:
        shown = ", ".join(str(p) for p in loose[:3]) + (f" and {len(loose) - 3} more"
                                                        if len(loose) > 3 else "")
        found.problem("files", f"others than the node's user may read {shown}",
                      "chmod go-rwx them (the node tightens its state and database at start, "
                      "not its keys)")
    else:
        found.ok("files", "the keys, database and state are the node's user's alone")


def _check_peers(config: NodeConfig, manifest: Manifest, material: dict, timeout: float,
                 found: _Findings) -> None:
    """A health check over mutual TLS, with this node's own certificate, to every city of the
    manifest (this one too: is it serving?)."""
    certificate_pem, key_pem, ca_pem = material["tls"]
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                               certificate_chain=certificate_pem)

    def check(member) -> tuple[str, str | None]:
        options = channel_options(member.id, manifest.region)
        with grpc.secure_channel(member.endpoint, credentials, options=options) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout)
            except grpc.RpcError as error:
                return member.id, f"{error.code().name}: {(error.details() or '')[:160]}"
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        return member.id, None if serving else "not serving (shutting down?)"

    cities = [m for m in manifest.cities if m.endpoint]
    with futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(cities)))) as pool:
        answers = dict(pool.map(check, cities))
    others = [m for m in cities if m.id != config.city]
    for member in cities:
        problem = answers[member.id]
        if problem is None:
            found.ok("peers", f"{member.id} answers at {member.endpoint}")
        elif member.id == config.city:
            found.warn("peers", f"this node ({member.endpoint}) does not answer: {problem}",
                       "start it (`cityfed node serve`), or check `listen` against its "
                       "endpoint in the manifest")
        else:
            found.warn("peers", f"{member.id} at {member.endpoint} does not answer: {problem}",
                       f"check that this host reaches {member.endpoint} (firewall, DNS) and "
                       f"that {member.id} runs")
    if others and all(answers[m.id] is not None for m in others):
        found.problem("peers", "no other city answers",
                      "check this host's network, firewall and DNS to the endpoints the "
                      "manifest lists")


def report(findings: list[Finding], out) -> int:
    """Print the findings, each problem and warning with what to fix; 1 when any is a
    problem."""
    for finding in findings:
        print(f"{finding.level.value:8} {finding.check:12} {finding.message}", file=out)
        if finding.fix:
            print(f"{'':8} {'':12} fix: {finding.fix}", file=out)
    problems = sum(f.level is Level.PROBLEM for f in findings)
    warnings = sum(f.level is Level.WARN for f in findings)
    print(f"{problems} problem{'s' * (problems != 1)}, {warnings} "
          f"warning{'s' * (warnings != 1)}", file=out)
    return 1 if problems else 0
