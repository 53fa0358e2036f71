"""The region's members and where to reach them, read from the region file (`region.toml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from federation.config_files import build, read_toml
from federation.errors import ConfigError, InvalidArgument


@dataclass(frozen=True)
class Member:
    id: str
    endpoint: str
    name: str = ""
    role: str = "city"


@dataclass(frozen=True)
class Region:
    name: str
    members: tuple[Member, ...]

    @property
    def cities(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == "city")

    def select_cities(self, wanted: list[str] | tuple[str, ...] = ()) -> tuple[Member, ...]:
        """The cities named in `wanted`, in that order; all cities when it is empty."""
        if not wanted:
            return self.cities
        by_id = {m.id: m for m in self.cities}
        unknown = [c for c in wanted if c not in by_id]
        if unknown:
            raise InvalidArgument(f"unknown city {unknown[0][:64]!r}; the region's cities are: "
                                  + ", ".join(by_id))
        return tuple(by_id[c] for c in dict.fromkeys(wanted))


def load_region(path: Path) -> Region:
    table = read_toml(path)
    header = table.get("region", {})
    members = tuple(build(Member, entry, path, f"[[members]] #{index + 1} ")
                    for index, entry in enumerate(table.get("members", [])))
    if not members:
        raise ConfigError(f"{path}: no [[members]] listed")
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: member ids must be unique")
    return Region(name=header.get("name", path.stem), members=members)


def region_toml(name: str, members: list[Member]) -> str:
    lines = ["[region]", f'name = "{name}"', ""]
    for member in members:
        lines += ["[[members]]", f'id = "{member.id}"', f'name = "{member.name}"',
                  f'role = "{member.role}"', f'endpoint = "{member.endpoint}"', ""]
    return "\n".join(lines)
