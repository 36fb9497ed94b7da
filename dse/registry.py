"""One registry mechanism for everything that registers: plugins (spaces, proxies, simulators,
search drivers, commands) and the tables inside them (op kinds, zero-cost measures, pymoo
algorithms, optuna samplers).

Our own plugins and a user's register the same way: with the ``@SPACES.register("name")``
decorator in code that is imported, or through a Python entry point in the group
``dse.spaces`` / ``dse.proxies`` / ``dse.simulators`` / ``dse.drivers`` of an installed package.
Entry points are loaded lazily, the first time a name is looked up or listed, so the core never
imports plugin modules itself (no import cycles, fast start-up). A registry without an entry-point
group is a plain named table (``Registry("op kind")``): ``add`` or ``register`` fill it, and
``table[name]`` reads it, with an error that lists the allowed names.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


class UnknownPluginError(KeyError):
    """A name that no plugin of that kind is registered under."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered item: its name and what was registered (for plugins, the factory that
    builds one; for tables, the item itself)."""

    name: str
    factory: Any

    @property
    def summary(self) -> str:
        """The docstring's first paragraph, as one line (``dse list`` and ``--help`` show it
        whole, never cut at the end of the docstring's first line)."""
        doc = (self.factory.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())


def _unavailable(kind: str, name: str, where: str, exc: ImportError) -> Callable[..., Any]:
    def factory(**_params: Any) -> Any:
        raise UnknownPluginError(
            f"{kind} {name!r} ({where}) cannot be loaded: {exc}; "
            "install its extra, e.g. pip install 'dse[torch]'"
        )

    factory.__doc__ = f"(unavailable: {exc})"
    return factory


class Registry(Generic[T]):
    """Name -> factory table for one plugin kind, filled by decorators and entry points."""

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        self._loaded_entry_points = group is None

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator registering a factory (usually a class) or an item under ``name``."""

        def deco(factory: Any) -> Any:
            self.add(name, factory)
            return factory

        return deco

    def add(self, name: str, item: Any) -> None:
        """Register (or replace) ``item`` under ``name``."""
        self._entries[name] = Entry(name, item)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a no-op when it is not registered)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> Any:
        """What was registered as ``name``; the error lists every allowed name."""
        entry = self._entries.get(name)
        return entry.factory if entry is not None else self.get(name).factory

    def _load(self, ep: metadata.EntryPoint) -> None:
        try:
            loaded = ep.load()  # importing the module runs its @register decorators
        except ImportError as exc:  # e.g. torch-based proxies without torch installed
            self._entries[ep.name] = Entry(ep.name, _unavailable(self.kind, ep.name, ep.value, exc))
            return
        if ep.name not in self._entries:  # the entry point names the factory itself
            self._entries[ep.name] = Entry(ep.name, loaded)

    def _load_entry_points(self, name: str | None = None) -> None:
        """Import the entry points of this group: only ``name``'s when given (a config names
        the few plugins it uses, so a torch-free run never imports the torch proxies), else all
        (listing, and the allowed names of an error)."""
        if self._loaded_entry_points:
            return
        if name is None:
            self._loaded_entry_points = True
        for ep in metadata.entry_points(group=self.group or ""):
            if ep.name not in self._entries and (name is None or ep.name == name):
                self._load(ep)

    def get(self, name: str) -> Entry[T]:
        """The entry registered as ``name``; the error lists every allowed name."""
        if name not in self._entries:
            self._load_entry_points(name)
        if name not in self._entries:
            allowed = ", ".join(self.names()) or "(none registered)"
            raise UnknownPluginError(f"unknown {self.kind} {name!r}; allowed: {allowed}")
        return self._entries[name]

    def create(self, name: str, **params: Any) -> T:
        return self.get(name).factory(**params)

    def values(self) -> list[Any]:
        """Every registered item, by name."""
        return [e.factory for e in self.entries()]

    def available(self) -> list[str]:
        """Every name, registered or behind an entry point, without importing anything."""
        eps = metadata.entry_points(group=self.group) if self.group else ()
        return sorted(set(self._entries) | {ep.name for ep in eps})

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:  # without building get's error (an importer asks often)
            self._load_entry_points(name)
        return name in self._entries


SPACES: Registry = Registry("space", "dse.spaces")
PROXIES: Registry = Registry("proxy", "dse.proxies")
SIMULATORS: Registry = Registry("simulator", "dse.simulators")
DRIVERS: Registry = Registry("search driver", "dse.drivers")


@runtime_checkable
class Command(Protocol):
    """A ``dse`` subcommand of a plugin (``dse roofline``, ``dse calibrate``): the CLI makes one
    with no arguments, lets it declare its arguments, and runs it with the parsed ones. The
    class docstring's first line is its help line."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the subcommand's arguments on its own parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; the exit code (0 done, 1 failed, 2 bad input)."""


#: extra ``dse`` subcommands: :class:`Command` factories; the CLI adds one subcommand per entry
COMMANDS: Registry = Registry("command", "dse.commands")
#: what ``dse list WHAT`` prints besides the plugins: a function ``() -> [(name, one line)]``
#: per catalog (``devices``, ``boards``, ``llms``), registered where the catalog lives
LISTINGS: Registry = Registry("listing", "dse.listings")
