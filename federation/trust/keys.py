"""Ed25519 signing keys (request tokens, receipts, the manifest), their key ids, and key files.

A key id is the first 16 bytes of SHA-256 over the raw 32-byte public key, in lowercase base32
without padding (26 characters of a-z and 2-7): stable, derived from the key alone, and safe in
file names and JWT headers.

Private keys are PEM PKCS#8 files with mode 0600, written through a temporary file in the same
folder that is created 0600, so a key is never readable by others, not even for a moment.
Public keys travel as text: base64url of the raw 32 bytes, without padding.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from federation.errors import ConfigError

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    digest = hashlib.sha256(public_key.public_bytes_raw()).digest()[:16]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: any other character, padding, or a non-canonical
    encoding (stray low bits in the last character) is a ValueError."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url without padding") from None
    if b64url_encode(data) != text:
        raise ValueError("not a canonical base64url encoding")
    return data


def public_key_to_text(public_key: Ed25519PublicKey) -> str:
    return b64url_encode(public_key.public_bytes_raw())


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Raises ValueError unless `text` is base64url of exactly 32 raw bytes."""
    raw = b64url_decode(text.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def write_file_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data` in one step; the file has `mode` from its first byte on."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    # The rename is durable only once the folder is synced: a held manifest that silently
    # reverted after a crash would lower the rollback floor.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private_key(path: Path, key: PrivateKeyTypes) -> None:
    write_file_atomically(path, private_key_pem(key), SECRET_MODE)


def load_private_key_file(path: Path) -> PrivateKeyTypes:
    """Any unencrypted PEM private key; errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the key file: {error.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{path}: the private key is encrypted; cityfed reads unencrypted "
                          "PKCS#8 keys protected by file permissions") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path}: not a PEM private key") from None


def read_private_key(path: Path) -> Ed25519PrivateKey:
    key = load_private_key_file(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an Ed25519 private key, found "
                          f"{type(key).__name__}")
    return key


def write_public_key(path: Path, public_key: Ed25519PublicKey) -> None:
    write_file_atomically(path, (public_key_to_text(public_key) + "\n").encode("ascii"),
                          PUBLIC_MODE)


def read_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file as `write_public_key` writes it: one line of base64url."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not ASCII text"
        raise ConfigError(f"{path}: cannot read the public key file: {reason}") from None
    try:
        return public_key_from_text(text)
    except ValueError as error:
        raise ConfigError(f"{path}: not an Ed25519 public key ({error})") from None
