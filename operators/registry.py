"""Registries of measurable things: a decorator per family, fnmatch listing, no silent overwrite.

Unlike timm's ``register_model`` a second registration under the same name is refused: two
modules answering to one name would make every result file ambiguous.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "Entry", "Registry", "OPERATORS", "NETWORKS"]


class ConfigError(ValueError):
    """An operator or network was asked for with arguments it cannot take (message says why)."""


@dataclass(frozen=True)
class Entry:
    """One registered builder.

    ``factory`` builds the ``nn.Module``; ``cost`` (operators only) is the pure analytic
    cost function of the same keyword arguments plus the input shape.
    """

    name: str
    factory: Callable[..., Any]
    summary: str
    cost: Callable[..., Any] | None = None
    validate: Callable[..., None] | None = None
    meta: tuple[tuple[str, Any], ...] = ()

    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)


class Registry:
    """Name → :class:`Entry`, for one family (operators or networks)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        summary: str,
        cost: Callable[..., Any] | None = None,
        validate: Callable[..., None] | None = None,
        **meta: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``factory`` under ``name``; a duplicate name raises ``ValueError``."""

        def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Entry(name, factory, summary, cost, validate, tuple(sorted(meta.items()))))
            return factory

        return wrap

    def add(self, entry: Entry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.family} {entry.name!r} is already registered; pick another name")
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern`` (``fnmatch``), sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))


OPERATORS = Registry("operator")
NETWORKS = Registry("network")
