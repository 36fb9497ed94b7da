"""Saved, versioned proxy configurations: what ``dse dps --name`` writes and ``saved = "name"``
(or ``"name@v2"``) reads back.

A configuration is JSON ``<store>/<name>/v<k>.json`` holding the proxy, its parameters and its
provenance (the fitness it reached, the architectures it was fitted on). The store is
``results/proxies`` or ``$DSE_PROXY_STORE``. Versions only grow: saving a name again writes the
next version and never replaces one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def store_dir(store: str | Path | None = None) -> Path:
    return Path(store or os.environ.get("DSE_PROXY_STORE", "results/proxies"))


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
    version = 1 + max(
        (int(p.stem[1:]) for p in folder.glob("v*.json") if p.stem[1:].isdigit()), default=0
    )
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
    folder = store_dir(store) / name
    versions = sorted(int(p.stem[1:]) for p in folder.glob("v*.json") if p.stem[1:].isdigit())
    if not versions:
        raise ValueError(
            f"saved: no saved proxy {name!r} in {store_dir(store)} (save one with dse dps --name)"
        )
    k = int(version.lstrip("v")) if version else versions[-1]
    if k not in versions:
        raise ValueError(
            f"saved: {name!r} has no version v{k}; allowed values: {[f'v{v}' for v in versions]}"
        )
    return json.loads((folder / f"v{k}.json").read_text())
