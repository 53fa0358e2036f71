"""Reading TOML configuration into frozen dataclasses, with errors that name the file and key."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from federation.errors import ConfigError

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def build(kind: type[T], table: dict[str, Any], path: Path, where: str = "") -> T:
    """Build a frozen dataclass from a TOML table: unknown keys, missing keys and values of the
    wrong type are errors naming the file and the key. Path fields resolve against the file's
    folder."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    hints = typing.get_type_hints(kind)
    prefix = f"{path}: {where}" if where else f"{path}: "
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}unknown key {unknown[0]!r}; known keys: {', '.join(fields)}")
    values = {}
    for name, field in fields.items():
        if name not in table:
            required = dataclasses.MISSING
            if field.default is required and field.default_factory is required:
                raise ConfigError(f"{prefix}missing key {name!r}")
            continue
        values[name] = _coerce(table[name], hints[name], f"{prefix}key {name!r}", path)
    return kind(**values)


def _coerce(value: Any, hint: Any, label: str, path: Path) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(value, options[0], label, path)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a path string")
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else (path.parent / candidate).resolve()
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{label} must be a table")
        _, value_hint = typing.get_args(hint)
        return {key: _coerce(item, value_hint, f"{label}.{key}", path)
                for key, item in value.items()}
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{label} must be a list")
        return tuple(value)
    if isinstance(hint, type) and (not isinstance(value, hint) or
                                   (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{label} must be of type {hint.__name__}, not {type(value).__name__}")
    return value
