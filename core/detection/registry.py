"""The one entry shape of every component registry (detectors, landmarkers), and the lookups they share.

An entry says how to build the component (`factory`), whether it can be built here (`check`: None, or the
plain sentence saying what to install) and what it is (`description`, and an optional short `label`).
Pages, CLI and API list `available()` and build through `require()`, so they offer the same choices and a
missing package or model file reaches a person as a message, never as a traceback.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, TypeVar

from core.errors import UserFacingError

T = TypeVar("T")
Check = Callable[[], str | None]


def installed() -> None:
    """The check of a component that needs nothing beyond the base requirements."""
    return None


def requires_module(module: str, hint: str) -> Check:
    """A check that passes when `module` is importable (looked up, not imported: cheap); else `hint`."""
    def check() -> str | None:
        return None if importlib.util.find_spec(module) is not None else hint

    return check


def lazy(target: str, **kwargs: Any) -> Callable[..., Any]:
    """`"package.module:name"` called with `kwargs` only when used, so listing a registry imports no backend."""
    module, _, name = target.partition(":")

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return call


@dataclass(frozen=True, kw_only=True)
class RegistryEntry(Generic[T]):
    """One registered component: its factory, its availability check with install hint, its description."""

    factory: Callable[..., T]
    description: str          # one line, shown in the app and CLI help
    check: Check = installed  # None when it can be built here, else what is missing and how to install it
    label: str = ""           # a short name for menus; the registry name when empty


E = TypeVar("E", bound=RegistryEntry[Any])


class UnknownComponent(UserFacingError):
    """A name no registry entry has: the message lists the choices."""

    code = "unknown_component"


class Registry(Generic[E]):
    """Entries of one kind ("detector", "landmarker") by name, in the order menus show them."""

    def __init__(self, kind: str, entries: Mapping[str, E], unavailable: type[UserFacingError]) -> None:
        self.kind = kind
        self.entries = dict(entries)
        self.unavailable = unavailable  # raised for a known entry that cannot be built here

    def names(self) -> list[str]:
        """Every registered name, installed or not."""
        return list(self.entries)

    def missing(self, name: str) -> str | None:
        """None when `name` can be built here, else its install hint (unknown names are never available)."""
        entry = self.entries.get(name)
        return f"no {self.kind} is called {name!r}." if entry is None else entry.check()

    def available(self) -> list[str]:
        """The names that can be built here: what pages, CLI and API offer."""
        return [name for name, entry in self.entries.items() if entry.check() is None]

    def entry(self, name: str) -> E:
        """The entry for a known name; an unknown one is refused with the choices listed."""
        if name not in self.entries:
            raise UnknownComponent(f"Unknown {self.kind} {name!r}. Choose one of: {', '.join(self.available())}.")
        return self.entries[name]

    def require(self, name: str) -> E:
        """The entry for a name that can be built here; otherwise the refusal says what to install."""
        entry = self.entry(name)
        hint = entry.check()
        if hint is not None:
            raise self.unavailable(f"The {name!r} {self.kind} is not installed here: {hint} "
                                   f"Available: {', '.join(self.available())}.")
        return entry

    def label(self, name: str) -> str:
        return self.entry(name).label or name

    def description(self, name: str) -> str:
        return self.entry(name).description
