"""Write docs/configuration.md, the node's configuration reference, from NodeConfig's fields and
their descriptions (`make docs`); `--check` fails when the file is not what they give."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.config import DESCRIPTION, NodeConfig  # noqa: E402

REFERENCE = ROOT / "docs" / "configuration.md"
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}

HEADER = """\
# Node configuration reference

<!-- Generated from NodeConfig in node/config.py by `make docs`; do not edit by hand. -->

A node reads one TOML file (`cityfed node serve --config node.toml`), its settings in a `[node]`
table (or at the top level). A key that is not listed here is refused, and so is a value of
the wrong type, with a message naming the file and the key. Paths are relative to the file's
folder; `~` is the user's home. Settings without a default are required.

```toml
[node]
city = "tianjin"
database = "tianjin.duckdb"
manifest = "manifest.json"
root_public_key = "root/root.pub"
tls_certificate = "members/tianjin/tls.pem"
tls_private_key = "members/tianjin/tls.key"
tls_ca = "root/ca.pem"
signing_key = "members/tianjin/signing.key"
policy = "tianjin.policy.toml"
listen = "0.0.0.0:7402"
```

| setting | type | default | what it does |
|---|---|---|---|
"""


def type_name(hint) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(type_name(option) for option in options) + ", optional"
    if typing.get_origin(hint) is dict:
        return "table"
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def toml_value(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str | Path):
        return f'`"{value}"`'
    if isinstance(value, dict) and not value:
        return "empty"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"`{value:_}`"
    return f"`{value!r}`"


def undocumented() -> list[str]:
    """Settings without a description."""
    return [f.name for f in dataclasses.fields(NodeConfig)
            if not f.metadata.get(DESCRIPTION, "").strip()]


def render() -> str:
    hints = typing.get_type_hints(NodeConfig)
    rows = []
    for field in dataclasses.fields(NodeConfig):
        if field.default_factory is not dataclasses.MISSING:
            default = toml_value(field.default_factory())
        elif field.default is dataclasses.MISSING:
            default = "required"
        else:
            default = toml_value(field.default)
        description = " ".join(field.metadata.get(DESCRIPTION, "").split()).replace("|", "\\|")
        rows.append(f"| `{field.name}` | {type_name(hints[field.name])} | {default} | "
                    f"{description} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="fail when the reference is stale or a setting undocumented")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"settings without a description in node/config.py: {', '.join(missing)}",
              file=sys.stderr)
        return 1
    text = render()
    if args.check:
        if not REFERENCE.exists() or REFERENCE.read_text() != text:
            print(f"{REFERENCE.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
