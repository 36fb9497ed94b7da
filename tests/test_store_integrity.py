"""The store knows its own bytes: a part replaced, copied, edited or orphaned is named on
show, refused on resume, and set aside (never admitted) with --drop-corrupt."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

import dse
from dse.params import ConfigError
from dse.results import load
from dse.results.store import RunStore, StoreError


def config(name: str = "integrity", seed: int = 0) -> dict:
    return {
        "run": {"name": name, "seed": seed},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "objectives": [
            {"metric": "hook_flops", "direction": "max"},
            {"metric": "params", "direction": "min"},
        ],
        "search": {"driver": "pymoo", "pop_size": 10, "max_evaluations": 40},
    }


@pytest.fixture
def runs(tmp_path):
    """Two finished runs of the same problem (different seeds), parts of 10 rows each."""
    dse.run(config(seed=0), run_id="a", output=tmp_path, progress=False)
    dse.run(config(seed=1), run_id="b", output=tmp_path, progress=False)
    return tmp_path / "a", tmp_path / "b"


def parts(run):
    return sorted((run / "evals").glob("part-*.parquet"))


def resume(run, **kw):
    return dse.run(resume=run, max_evaluations=60, progress=False, **kw)


def test_another_runs_part_of_the_same_size_is_named_and_never_admitted(runs, capsys):
    a, b = runs
    victim = parts(a)[1]
    assert len(pd.read_parquet(victim)) == len(pd.read_parquet(parts(b)[1]))
    shutil.copyfile(parts(b)[1], victim)
    from dse.reports.text import print_summary

    print_summary(a, limit=5)
    assert f"{victim} is not the part the run recorded" in capsys.readouterr().err
    with pytest.raises(StoreError, match="its bytes changed"):
        resume(a)
    resume(a, drop_corrupt=True)
    df = load(a)
    assert df.eval_id.is_unique and df.arch_hash.is_unique and set(df.run_id) == {"a"}
    assert (victim.parent / f".{victim.name}.corrupt").is_file()  # set aside, not deleted


def test_a_part_copied_into_a_killed_run_repeats_its_rows_and_is_refused(runs):
    """A killed run's manifest never closed, so no record covers its parts: the rows tell."""
    a, _ = runs
    store = RunStore(a)
    store.update_manifest(status="running", parts={}, evaluations=None)
    last = parts(a)[-1]
    copy = last.with_name(f"part-{int(last.stem.split('-')[1]) + 1:06d}.parquet")
    shutil.copyfile(parts(a)[0], copy)
    with pytest.raises(StoreError, match=f"{copy.name} repeats 10 eval_id"):
        resume(a)
    resume(a, drop_corrupt=True)
    df = load(a)
    assert df.eval_id.is_unique and df.arch_hash.is_unique


def test_an_edited_value_is_noticed(runs):
    a, _ = runs
    part = parts(a)[2]
    table = pq.read_table(part)
    params = table.column("params").to_pylist()
    params[0] = 1.0  # a better design than any, written by hand
    index = table.schema.get_field_index("params")
    table = table.set_column(index, table.schema.field(index), [params])
    pq.write_table(table, part)
    with pytest.raises(StoreError, match=f"{part.name} is not the part the run recorded"):
        resume(a)


def test_a_run_folder_without_its_manifest_is_not_started_over(runs):
    """Before: dse run with the same id started over beside the old parts (rows duplicated)."""
    a, _ = runs
    (a / "manifest.json").unlink()
    before = {p.name: p.read_bytes() for p in parts(a)}
    with pytest.raises(ConfigError, match="holds evaluations but no manifest.json"):
        dse.run(config(), run_id="a", output=a.parent, progress=False)
    assert {p.name: p.read_bytes() for p in parts(a)} == before


def test_a_manifest_whose_config_is_null_is_one_line(runs):
    a, _ = runs
    store = RunStore(a)
    text = (a / "manifest.json").read_text()
    store.update_manifest(config=None)
    with pytest.raises(StoreError, match="is not a dse manifest"):
        resume(a)
    (a / "manifest.json").write_text(text)


def sweep_config(seed: int) -> dict:
    return {
        "run": {"name": "sw", "seed": seed},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "sweep": {
            "method": "random",
            "points": 40,
            "chunk_size": 10,
            "workers": 0,
            "parameters": {"arch": "all"},
        },
    }


def test_a_sweep_part_of_another_sweep_is_refused_then_its_chunk_runs_again(tmp_path):
    from dse.sweeps import sweep

    a = sweep(sweep_config(0), output=tmp_path / "a", progress=False).path
    b = sweep(sweep_config(1), output=tmp_path / "b", progress=False).path
    whole = load(a, with_pareto=False)
    shutil.copyfile(parts(b)[2], parts(a)[2])
    with pytest.raises(StoreError, match="holds rows of another run|its bytes changed"):
        sweep(resume=a, progress=False)
    sweep(resume=a, progress=False, drop_corrupt=True)
    again = load(a, with_pareto=False)
    columns = ["eval_id", "arch_hash", "params", "hook_flops"]
    assert again[columns].equals(whole[columns])
