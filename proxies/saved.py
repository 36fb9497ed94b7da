"""Saved, versioned proxy configurations: what ``dse dps --name`` writes and ``saved = "name"``
(or ``"name@v2"``) reads back.

A configuration is JSON ``<store>/<name>/v<k>.json`` holding the proxy, its parameters and its
provenance (the fitness it reached, the architectures it was fitted on). The store is
``results/proxies`` or ``$DSE_PROXY_STORE``. Versions only grow: saving a name again writes the
next version and never replaces one.

Configurations the README reports ship inside the package (``dse/proxies/configs``), so
``saved = "nb201-dps"`` works on a fresh install without repeating the search. A name's versions
are the shipped ones and the store's together; a version saved locally numbers after the
shipped ones, and the latest wins.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

#: package folder of the shipped configurations
SHIPPED = "configs"


def store_dir(store: str | Path | None = None) -> Path:
    return Path(store or os.environ.get("DSE_PROXY_STORE", "results/proxies"))


def _versions(folder) -> dict[int, Any]:
    """Version number -> file (a Path or a package resource) of one configuration folder."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.iterdir():
        stem = p.name[:-5] if p.name.endswith(".json") else ""
        if stem.startswith("v") and stem[1:].isdigit():
            out[int(stem[1:])] = p
    return out


def _all_versions(name: str, store: str | Path | None) -> dict[int, Any]:
    shipped = _versions(resources.files("dse.proxies").joinpath(SHIPPED, name))
    return {**shipped, **_versions(store_dir(store) / name)}


def shipped_names() -> list[str]:
    """Names of the configurations shipped with the package."""
    root = resources.files("dse.proxies").joinpath(SHIPPED)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def save_proxy(
    name: str,
    proxy: str,
    params: dict[str, Any],
    provenance: dict[str, Any],
    store: str | Path | None = None,
) -> Path:
    """Write the next version of proxy configuration ``name``; returns its file."""
    if not name or any(c in name for c in "/\\@") or name.startswith("."):
        raise ValueError(f"name: must be a plain name without '/', '\\\\' or '@', got {name!r}")
    folder = store_dir(store) / name
    folder.mkdir(parents=True, exist_ok=True)
    version = 1 + max(_all_versions(name, store), default=0)
    path = folder / f"v{version}.json"
    path.write_text(
        json.dumps(
            {
                "name": name,
                "version": version,
                "proxy": proxy,
                "params": params,
                "provenance": provenance,
            },
            indent=2,
            default=str,
        )
    )
    return path


def load_proxy(ref: str, store: str | Path | None = None) -> dict[str, Any]:
    """A saved configuration by ``name`` (latest version) or ``name@vK``."""
    name, _, version = ref.partition("@")
    files = _all_versions(name, store)
    versions = sorted(files)
    if not versions:
        raise ValueError(
            f"saved: no saved proxy {name!r} in {store_dir(store)} or shipped; shipped: "
            f"{shipped_names()} (save one with dse dps --name or dse proxy-fit --name)"
        )
    number = version[1:] if version.startswith("v") else version
    k = versions[-1] if not version else int(number) if number.isdigit() else -1
    if k not in files:
        raise ValueError(
            f"saved: {name!r} has no version {version}; allowed values: "
            f"{[f'v{v}' for v in versions]}"
        )
    return json.loads(files[k].read_text())


def saved_params(ref: str, kind: str, store: str | Path | None = None) -> dict[str, Any]:
    """The parameters of saved configuration ``ref`` (``name`` or ``name@vK``), which must be
    one of proxy ``kind`` (an eproxy configuration does not configure GenNAS)."""
    record = load_proxy(ref, store)
    if record["proxy"] != kind:
        raise ValueError(f"saved: {ref!r} is a {record['proxy']} configuration, not a {kind} one")
    return record["params"]
