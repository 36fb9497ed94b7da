"""Is a run directory whole? The checks made every time a run is opened to resume, show or
report.

A run's manifest records, when the run closes, how many evaluations it holds and, for every
part, its rows, its first and last ``eval_id`` and the SHA-256 of its bytes. On open, the store
is compared with that record and with itself:

* a part the record names (or, for a search run, the part numbering skips) is missing;
* a part's bytes differ from the record (replaced by another file, or edited);
* a part holds rows of another run (``run_id``), or repeats an ``eval_id`` (or, in a search run,
  an ``arch_hash``) of an earlier part: a part copied in by hand, which a killed run (whose
  manifest never closed) cannot tell from its own by the record alone;
* the manifest's count of evaluations disagrees with the parts.

Each problem names its part and what is wrong; nothing is silently resumed over.
``--drop-corrupt`` is the explicit way on: unreadable, replaced and duplicating parts are set
aside (renamed, not deleted), missing ones acknowledged in the manifest, and the resumed search
evaluates their architectures again, so a duplicate is never admitted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dse.results.store import (
    RunStore,
    StoreError,
    _part_name,
    file_sha256,
    part_number,
    recorded_rows,
)


@dataclass(frozen=True)
class PartProblem:
    """One part and what is wrong with it."""

    part: str
    problem: str

    def line(self, store: RunStore) -> str:
        return f"{store.evals_dir / self.part} {self.problem}"


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


def content_problems(store: RunStore, manifest: dict[str, Any]) -> list[PartProblem]:
    """The parts on disk whose bytes or rows do not belong: changed since recorded, rows of
    another run, or an ``eval_id`` (search runs: also an ``arch_hash``) an earlier part holds.
    Unreadable parts are left to :meth:`RunStore.corrupt_parts`."""
    recorded = manifest.get("parts") or {}
    run_id = str(manifest.get("run_id"))
    search = manifest.get("kind") != "sweep"
    seen_ids: dict[int, str] = {}
    seen_hashes: dict[str, str] = {}
    out = []
    for p in store.part_files():
        record = recorded.get(p.name)
        if isinstance(record, dict) and record.get("sha256") not in (None, file_sha256(p)):
            held = f"{record.get('rows')} rows, eval_id {record.get('first_eval_id')}.."
            out.append(
                PartProblem(
                    p.name,
                    f"is not the part the run recorded ({held}{record.get('last_eval_id')}): "
                    "its bytes changed (SHA-256 differs)",
                )
            )
            continue
        try:
            table = pq.read_table(p, columns=["run_id", "eval_id", "arch_hash"])
        except (pa.ArrowException, OSError, KeyError):
            continue  # unreadable: a corrupt part, reported by the caller
        others = sorted(set(table.column("run_id").to_pylist()) - {run_id})
        if others:
            out.append(PartProblem(p.name, f"holds rows of another run ({others[0]!r})"))
            continue
        ids = table.column("eval_id").to_pylist()
        hashes = table.column("arch_hash").to_pylist() if search else []
        repeated = [i for i in ids if i in seen_ids]
        repeated_hash = [h for h in hashes if h in seen_hashes]
        if repeated:
            out.append(
                PartProblem(
                    p.name,
                    f"repeats {len(repeated)} eval_id(s) of {seen_ids[repeated[0]]} "
                    f"(first: {repeated[0]})",
                )
            )
            continue
        if repeated_hash:
            out.append(
                PartProblem(
                    p.name,
                    f"repeats {len(repeated_hash)} architecture(s) of "
                    f"{seen_hashes[repeated_hash[0]]} (arch_hash {repeated_hash[0]!r})",
                )
            )
            continue
        seen_ids.update(dict.fromkeys(ids, p.name))
        seen_hashes.update(dict.fromkeys(hashes, p.name))
    return out


def store_problems(store: RunStore, manifest: dict[str, Any], rows: int) -> list[str]:
    """What is wrong with ``store`` (``rows``: how many rows its parts hold), one line each;
    empty when the run is whole."""
    recorded: dict[str, Any] = manifest.get("parts") or {}
    problems = []
    for name in missing_parts(store, manifest):
        held = recorded_rows(recorded.get(name))
        problems.append(
            f"{store.evals_dir / name} is missing"
            + (f" (it held {held} rows)" if held is not None else " (the part numbers skip it)")
        )
    problems += [p.line(store) for p in content_problems(store, manifest)]
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
            + ". Restore the files from a copy, or continue without the damaged parts with "
            "--resume RUN --drop-corrupt (they are set aside, not deleted, and their "
            "architectures evaluated again)"
        )


def refuse_foreign_parts(store: RunStore, manifest: dict[str, Any], drop: bool) -> list[str]:
    """A sweep's check on resume: parts that do not belong (see :func:`content_problems`) are
    refused, or with ``drop`` set aside so their chunks run again; returns what was dropped."""
    problems = content_problems(store, manifest)
    if problems and not drop:
        raise StoreError(
            "; ".join(p.line(store) for p in problems)
            + ". Restore the files from a copy, or run their chunks again with --resume SWEEP "
            "--drop-corrupt (they are set aside, not deleted)"
        )
    lines = []
    for p in problems:
        target = store.set_aside(store.evals_dir / p.part)
        lines.append(f"set aside {p.part} as {target.name} ({p.problem}); its chunk runs again")
    return lines


def drop_damaged(store: RunStore, manifest: dict[str, Any]) -> list[str]:
    """Set unreadable, replaced and duplicating parts aside and acknowledge missing ones in the
    manifest; returns one line per part dropped, with the rows it costs (from the manifest's
    record, where there is one)."""
    recorded: dict[str, Any] = manifest.get("parts") or {}
    dropped = list(manifest.get("dropped", []))
    lines = []
    bad = {p.name: (p, "unreadable") for p in store.corrupt_parts()}
    for c in content_problems(store, manifest):
        bad.setdefault(c.part, (store.evals_dir / c.part, "damaged"))
    for part, why in bad.values():
        target = store.set_aside(part)
        rows = recorded_rows(recorded.get(part.name))
        dropped.append({"part": part.name, "rows": rows, "set_aside": target.name})
        lines.append(
            f"set aside {why} {part} as {target.name} "
            f"({rows if rows is not None else 'an unknown number of'} rows)"
        )
    for name in missing_parts(store, {**manifest, "dropped": dropped}):
        rows = recorded_rows(recorded.get(name))
        dropped.append({"part": name, "rows": rows, "set_aside": None})
        lines.append(
            f"continuing without missing {name} "
            f"({rows if rows is not None else 'an unknown number of'} rows)"
        )
    rows = store.read_table().num_rows
    store.update_manifest(dropped=dropped, evaluations=rows, parts=store.part_records())
    return lines
