"""A change detector, not a check of correctness: the records of small runs are pinned, so the
same config and seed give the same rows as when the tables in ``tests/pinned/`` were written,
whatever the record path's internals become. It catches change (a refactor that moved a
number); whether the numbers are right is what the other tests check.

Timing columns (``wall_s``, ``started_at``, ``time_*_s``) and the run id (it holds the clock) are
left out; floats are compared to 1e-9 relative, everything else exactly. Regenerate a table only
for an intended change of records: ``python tests/test_records_unchanged.py`` (and say so).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

import dse

PINNED = Path(__file__).resolve().parent / "pinned"

SEARCH = {
    "run": {"name": "pin", "seed": 7},
    "space": {"name": "nasbench201", "dataset": "cifar10"},
    "proxies": {"analytic": {}},
    "simulators": {"fpga": {"board": "ZC706", "architecture": "recursive"}},
    "objectives": [
        {"metric": "hook_flops", "direction": "max"},
        {"metric": "fpga_latency_ms", "direction": "min"},
    ],
    "constraints": [{"metric": "params", "max": 0.6e6}],
    "search": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 12, "max_evaluations": 48},
}
SWEEP = {
    "run": {"name": "pin-sweep", "seed": 3},
    "space": {"name": "nasbench201"},
    "simulators": {"fpga": {"board": "ZC706", "architecture": "recursive"}},
    "sweep": {
        "method": "random",
        "points": 20,
        "chunk_size": 7,
        "parameters": {
            "arch": "all",
            "simulators.fpga.board": ["ZC706", "ZCU102"],
            "simulators.fpga.dsp_budget": {"low": 128, "high": 700, "integer": True},
        },
    },
}


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    drop = [
        c
        for c in df.columns
        if c in ("run_id", "wall_s", "started_at", "is_pareto")
        or (c.startswith("time_") and c.endswith("_s"))
    ]
    out = df.drop(columns=drop).sort_values("eval_id").reset_index(drop=True)
    out["encoding"] = out["encoding"].map(lambda e: [int(v) for v in e])
    return out


def _records(kind: str, tmp: Path) -> pd.DataFrame:
    if kind == "search":
        path = dse.run(SEARCH, output=tmp, progress=False).path
    else:
        path = dse.sweep(SWEEP, output=tmp, workers=0, progress=False).path
    return _comparable(dse.results.load(path))


def _same(value, pinned) -> bool:
    if isinstance(pinned, float) and isinstance(value, (float, int)):
        if math.isnan(pinned):
            return isinstance(value, float) and math.isnan(value)
        return math.isclose(value, pinned, rel_tol=1e-9, abs_tol=1e-300)
    return value == pinned


def _check(kind: str, tmp: Path) -> None:
    got = _records(kind, tmp)
    pinned = json.loads((PINNED / f"{kind}.json").read_text())
    assert list(got.columns) == pinned["columns"]
    rows = got.to_dict(orient="records")
    assert len(rows) == len(pinned["rows"])
    for row, want in zip(rows, pinned["rows"]):
        for col, value in zip(pinned["columns"], want):
            got_value = row[col]
            if got_value is None or (isinstance(got_value, float) and math.isnan(got_value)):
                got_value = None
            assert (got_value is None and value is None) or _same(got_value, value), (
                f"{kind} eval_id {row['eval_id']} column {col}: {got_value!r} != pinned {value!r}"
            )


def test_a_search_gives_its_pinned_records(tmp_path):
    _check("search", tmp_path)


def test_a_sweep_gives_its_pinned_records(tmp_path):
    _check("sweep", tmp_path)


def _write(kind: str, tmp: Path) -> None:
    df = _records(kind, tmp)
    rows = [
        [None if (isinstance(v, float) and math.isnan(v)) else v for v in r]
        for r in df.itertuples(index=False, name=None)
    ]
    (PINNED / f"{kind}.json").write_text(
        json.dumps(
            {"columns": list(df.columns), "rows": rows},
            default=lambda v: v.item() if hasattr(v, "item") else str(v),
        )
    )


if __name__ == "__main__":  # regenerate the pinned tables
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for kind in sys.argv[1:] or ("search", "sweep"):
            _write(kind, Path(tmp))
