"""``dse report``: the HTML page, its figures and tables, and how it renders in headless
Chromium."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import reference_data

import dse
from dse.reports.axes import axis_label, use_log
from dse.reports.html import report


def config(driver: dict, seed: int, budget: int = 40) -> dict:
    table = str(reference_data("nasbench201_naslib.csv"))
    return {
        "run": {"name": driver["driver"], "seed": seed},
        "space": {"name": "nasbench201", "restrict": {"file": table, "column": "arch_str"}},
        "proxies": {
            "tabular": {
                "file": table,
                "column": "val_acc_cifar10",
                "metric": "accuracy",
                "unit": "%",
            },
            "analytic": {},
        },
        "objectives": [
            {"metric": "accuracy", "direction": "max"},
            {"metric": "params", "direction": "min"},
            {"metric": "hook_flops", "direction": "min"},
        ],
        "constraints": [{"metric": "params", "max": 1.2e6}],
        "search": {**driver, "max_evaluations": budget},
    }


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    runs = [
        dse.run(config(d, s), output=out, progress=False).path
        for d in ({"driver": "random"}, {"driver": "optuna", "sampler": "tpe"})
        for s in (0, 1)
    ]
    page = report(runs, out=out / "report", title="random vs TPE")
    return runs, page


def test_report_holds_figures_tables_and_configs(comparison):
    runs, page = comparison
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "random vs TPE" in text
    figures = sorted(p.name for p in (page.parent / "figures").iterdir())
    # three objectives: three pairwise fronts, parallel coordinates, hypervolume; PNG and SVG each
    assert len([f for f in figures if f.startswith("pareto_")]) == 6
    assert {"hypervolume.png", "hypervolume.svg", "parallel_coordinates.png"} <= set(figures)
    assert text.count("data:image/png;base64,") == 5  # self-contained: every figure embedded
    assert "optuna:tpe" in text and "hv / random" in text
    front = pd.read_csv(page.parent / "pareto.csv")
    union = pd.concat([dse.results.load(r) for r in runs])
    assert set(front.arch_id) <= set(union.arch_id) and len(front) > 0
    assert (front["params"] <= 1.2e6).all()
    assert {"1<-0", "3<-2"} <= set(front.columns)  # the designs' decisions
    for r in runs:
        assert dse.results.manifest(r)["run_id"] in text


def test_the_explorer_names_every_front_point_and_axes_carry_units(comparison):
    runs, page = comparison
    text = page.read_text()
    front = pd.read_csv(page.parent / "pareto.csv")
    assert text.count("<svg class='explorer'") == 3  # three objectives: three pairs
    for arch_id in front.arch_id:  # every Pareto design can be found by hovering
        assert f"data-tip='{html.escape(arch_id, quote=True)}" in text
    assert "params [parameters] (lower is better)" in text  # units from the run's manifest
    assert "hook_flops [FLOPs]" in text and "accuracy [%] (higher is better)" in text
    assert "<div class='scroll'><table" in text
    # self-contained: nothing is fetched when the page is viewed
    assert not re.search(r"(src|href)=['\"]?https?:", text)


def test_axes_go_log_when_the_data_span_more_than_two_decades():
    assert use_log(np.array([0.1, 3.0, 120.0])) and not use_log(np.array([1.0, 50.0]))
    assert not use_log(np.array([0.0, 1.0, 1e6]))  # a zero cannot sit on a log axis
    assert axis_label("lat", "min", {"lat": "ms"}) == "lat [ms] (lower is better)"


def test_report_cli_and_sweeps_with_objectives_given(tmp_path, comparison):
    runs, _ = comparison
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "dse.cli",
            "report",
            str(runs[0]),
            "--objectives",
            "accuracy:max",
            "params:min",
        ],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert (runs[0] / "report" / "index.html").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "dse.cli", "report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no run" in missing.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium_without_console_errors(comparison):
    if _chromium() is None or shutil.which("chromedriver") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (see .ci/run)")
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, page = comparison
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={page.parent / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_window_size(1280, 900)
        driver.get(page.resolve().as_uri())
        sizes = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
            "i.naturalHeight]);"
        )
        assert len(sizes) == 5 and all(ok and w > 300 and h > 200 for ok, w, h in sizes), sizes
        # the tables sort when a header is clicked (the page's only script)
        first = driver.execute_script(
            "return document.querySelector('table.sortable tbody tr td').textContent;"
        )
        driver.execute_script("document.querySelector('table.sortable th').click();")
        driver.execute_script("document.querySelector('table.sortable th').click();")
        assert (
            driver.execute_script("return document.querySelector('table.sortable th').dataset.dir;")
            == "desc"
        )
        assert first
        # hovering a Pareto point of the explorer names its architecture beside the pointer
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        point = driver.find_element(By.CSS_SELECTOR, "svg.explorer circle.pareto")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", point)
        ActionChains(driver).move_to_element(point).perform()
        tip = driver.find_element(By.ID, "dse-tip")
        assert tip.is_displayed()
        front = pd.read_csv(page.parent / "pareto.csv")
        assert tip.text.splitlines()[0] in set(front.arch_id), tip.text
        assert "accuracy = " in tip.text and "params = " in tip.text
        # wide tables scroll inside the page rather than widening it
        width = driver.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 1280, width
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        shot = page.parent / "screenshot.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
