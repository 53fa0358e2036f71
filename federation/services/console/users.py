"""The console's staff: a file of user names and scrypt password hashes, written by
`cityfed console add-user`, readable by its owner only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from federation.errors import ConfigError, InvalidArgument
from federation.trust.keys import write_file_atomically

# scrypt at 2^15 × 8: about 32 MiB and 60 ms a guess (RFC 7914's interactive-login setting).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 12
_NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class PasswordHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(16)
        return cls(salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(_scrypt(password, self.salt, self.n, self.r, self.p),
                                   self.digest)

    def to_json(self) -> dict:
        return {"scrypt": {"n": self.n, "r": self.r, "p": self.p,
                           "salt": base64.b64encode(self.salt).decode(),
                           "hash": base64.b64encode(self.digest).decode()}}

    @classmethod
    def from_json(cls, obj: dict) -> PasswordHash:
        s = obj["scrypt"]
        return cls(base64.b64decode(s["salt"]), base64.b64decode(s["hash"]), int(s["n"]),
                   int(s["r"]), int(s["p"]))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                          dklen=32)


# Checked against when the name is unknown, so that an unknown name costs a guess's time too.
_DECOY = PasswordHash(b"\0" * 16, b"\0" * 32)


class Users:
    """The users file: {"users": {name: {"scrypt": {...}}}}."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, PasswordHash]:
        try:
            data = json.loads(self.path.read_bytes())
            return {name: PasswordHash.from_json(entry) for name, entry in data["users"].items()}
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no users file; create one with `cityfed console "
                              "add-user`") from None
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{self.path}: not a console users file") from None

    def names(self) -> list[str]:
        return sorted(self._read())

    def add(self, name: str, password: str) -> None:
        if not _NAME.fullmatch(name):
            raise InvalidArgument("a user name is lowercase letters, digits, '.', '_' or '-', "
                                  "starting with a letter, at most 64")
        if len(password) < MIN_PASSWORD:
            raise InvalidArgument(f"a password has at least {MIN_PASSWORD} characters")
        users = self._read() if self.path.exists() else {}
        users[name] = PasswordHash.of(password)
        body = {"users": {n: h.to_json() for n, h in sorted(users.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.path, json.dumps(body, indent=1).encode() + b"\n", 0o600)

    def check(self, name: str, password: str) -> bool:
        found = self._read().get(name)
        if found is None:
            _DECOY.matches(password)
            return False
        return found.matches(password)


def default_users_file(region: Path, member: str) -> Path:
    return Path(region) / "console" / f"{member}.users.json"


