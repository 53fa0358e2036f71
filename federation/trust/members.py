"""The region's cities as the coordinator addresses them (built from the signed manifest)."""

from __future__ import annotations

from dataclasses import dataclass

from federation.errors import InvalidArgument


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
