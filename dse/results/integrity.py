"""Is a run directory whole? The checks made every time a run is opened to resume or show.

A run's manifest records, when the run closes, how many evaluations it holds and the rows of
every part. On open, the store is compared with that record and with itself (search runs number
their parts 0, 1, 2, ... and their rows ``eval_id`` 0, 1, 2, ...), so a part deleted by hand, a
truncated part or a manifest that disagrees with the data is reported, never silently resumed
over. ``--drop-corrupt`` is the explicit way on: unreadable parts are set aside (renamed, not
deleted), missing ones acknowledged in the manifest, and the resumed search evaluates their
architectures again.
"""

from __future__ import annotations

import sys
from typing import Any

from dse.results.store import RunStore, StoreError, _part_name, part_number


def _acknowledged(manifest: dict[str, Any]) -> set[str]:
    return {d["part"] for d in manifest.get("dropped", [])}


def missing_parts(store: RunStore, manifest: dict[str, Any]) -> list[str]:
    """Names of parts that should be there and are not: recorded in the manifest, or skipped by
    a search run's numbering (dropped ones excepted)."""
    on_disk = {p.name for p in store.part_files()}
    dropped = _acknowledged(manifest)
    missing = {n for n in (manifest.get("parts") or {}) if n not in on_disk}
    if manifest.get("kind") != "sweep" and on_disk:
        top = max(part_number(store.evals_dir / n) for n in on_disk)
        missing |= {_part_name(k) for k in range(top)} - on_disk
    return sorted(missing - dropped)


def store_problems(store: RunStore, manifest: dict[str, Any], rows: int) -> list[str]:
    """What is wrong with ``store`` (``rows``: how many rows its parts hold), one line each;
    empty when the run is whole."""
    recorded: dict[str, int] = manifest.get("parts") or {}
    problems = [
        f"{store.evals_dir / n} is missing"
        + (f" (it held {recorded[n]} rows)" if n in recorded else " (the part numbers skip it)")
        for n in missing_parts(store, manifest)
    ]
    n = manifest.get("evaluations")
    if n is not None and manifest.get("status") != "running" and n != rows:
        problems.append(f"{store.manifest_path} records {n} evaluations but the parts hold {rows}")
    if manifest.get("status") == "finished" and n and not store.part_files():
        problems.append(
            f"{store.manifest_path} says finished with {n} evaluations, but {store.evals_dir} "
            "holds no part"
        )
    return problems


def warn_damaged(store: RunStore, manifest: dict[str, Any], rows: int) -> None:
    """The problems of :func:`store_problems` as warning lines on stderr (``dse show`` and
    ``dse report`` read a damaged run, and say so)."""
    for problem in store_problems(store, manifest, rows):
        print(f"dse: warning: {problem}", file=sys.stderr)


def refuse_damaged(store: RunStore, manifest: dict[str, Any], rows: int) -> None:
    """A StoreError listing the problems, with what to do, when the run is not whole."""
    problems = store_problems(store, manifest, rows)
    if problems:
        raise StoreError(
            "; ".join(problems)
            + ". Restore the missing files, or continue without them with --resume RUN "
            "--drop-corrupt (their architectures are evaluated again)"
        )


def drop_damaged(store: RunStore, manifest: dict[str, Any]) -> list[str]:
    """Set unreadable parts aside and acknowledge missing ones in the manifest; returns one line
    per part dropped, with the rows it costs (from the manifest's record, where there is one)."""
    recorded: dict[str, int] = manifest.get("parts") or {}
    dropped = list(manifest.get("dropped", []))
    lines = []
    for part in store.corrupt_parts():
        target = store.set_aside(part)
        rows = recorded.get(part.name)
        dropped.append({"part": part.name, "rows": rows, "set_aside": target.name})
        lines.append(
            f"set aside unreadable {part} as {target.name} "
            f"({rows if rows is not None else 'an unknown number of'} rows)"
        )
    for name in missing_parts(store, {**manifest, "dropped": dropped}):
        rows = recorded.get(name)
        dropped.append({"part": name, "rows": rows, "set_aside": None})
        lines.append(
            f"continuing without missing {name} "
            f"({rows if rows is not None else 'an unknown number of'} rows)"
        )
    rows = store.read_table().num_rows
    store.update_manifest(dropped=dropped, evaluations=rows, parts=store.part_rows())
    return lines
