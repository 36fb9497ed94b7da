"""Bad input is one line naming the field, exit 2, nothing written (issue: Reliability II)."""

from __future__ import annotations

import math

import pytest

import dse
from dse.params import ConfigError


def good(**changes) -> dict:
    cfg = {
        "run": {"name": "bad"},
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "objectives": [{"metric": "params"}],
        "constraints": [{"metric": "params", "max": 1e6}],
        "search": {"driver": "random", "max_evaluations": 5},
    }
    for section, value in changes.items():
        cfg[section] = value
    return cfg


@pytest.mark.parametrize(
    "run_id",
    ["../../escaped_run", "/tmp/absolute_run", ".", "", "a/b", "a\x00b", "x" * 101, "-rf"],
)
def test_a_run_id_that_is_not_one_folder_name_is_refused_and_writes_nothing(tmp_path, run_id):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--run-id: must be 1-100 letters"):
        dse.run(good(), run_id=run_id, output=out, progress=False)
    assert not out.exists() and not (tmp_path / "escaped_run").exists()


@pytest.mark.parametrize("name", ["a\x00b", "../up", ".hidden", "with space"])
def test_a_run_name_that_is_not_one_folder_name_is_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="run.name: must be 1-100 letters"):
        dse.run(good(run={"name": name}), output=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"objectives": [{"metric": "params", "ref": math.nan}]}, "objectives[0].ref"),
        ({"search": {"driver": "random", "max_seconds": math.nan}}, "search.max_seconds"),
        ({"constraints": [{"metric": "params", "max": math.nan}]}, "constraints[0].max"),
        ({"constraints": [{"metric": "params", "min": -math.inf}]}, "constraints[0].min"),
        (
            {"simulators": {"fpga": {"board": "ZC706", "dsp_fraction": math.nan}}},
            "simulators.fpga.dsp_fraction",
        ),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, changes, field):
    """A NaN bound used to drop the constraint (20 of 20 feasible) and a NaN went into the
    manifest as bare NaN."""
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        dse.run(good(**changes), output=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
