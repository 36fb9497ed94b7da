"""``dse report``: the HTML page, its figures and tables, and how it renders in headless
Chromium."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow
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


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium through chromedriver (Debian's packages; CI must have them)."""
    if _chromium() is None or shutil.which("chromedriver") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (see .ci/run)")
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_renders_in_headless_chromium_without_console_errors(comparison, browser):
    driver = browser
    _, page = comparison
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


@pytest.fixture(scope="module")
def board_sweep(tmp_path_factory):
    """examples/sweep_fpga_boards.toml at 300 points, in this process."""
    from dse.sweeps import sweep

    root = Path(__file__).resolve().parents[1]
    text = (root / "examples" / "sweep_fpga_boards.toml").read_text()
    cfg = tmp_path_factory.mktemp("boards") / "boards.toml"
    cfg.write_text(text.replace("points = 2000", "points = 300"))
    return sweep(cfg, output=cfg.parent / "out", workers=0, progress=False).path


@pytest.mark.slow
def test_a_sweep_report_needs_objectives_and_writes_nothing_without(board_sweep, tmp_path):
    out = tmp_path / "page"
    proc = subprocess.run(
        [sys.executable, "-m", "dse.cli", "report", str(board_sweep), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--objectives: the sweep" in proc.stderr
    assert "fpga_latency_ms" in proc.stderr and not out.exists()


@pytest.mark.slow
def test_a_sweep_report_draws_one_front_per_board_with_honest_feasibility(
    board_sweep, tmp_path, browser
):
    """One front (colour and legend entry) per swept board, the feasible counts of the designs
    that fit, no hypervolume over a Sobol order, two objectives without parallel coordinates;
    and the explorer zooms, pans and resets with ticks at round numbers (headless Chromium)."""
    from selenium.webdriver.common.by import By

    df = dse.results.load(board_sweep, with_pareto=False)
    boards = sorted(df["simulators.fpga.board"].unique())
    page = report(
        [board_sweep],
        out=tmp_path / "page",
        objectives=["fpga_latency_ms:min", "fpga_dsp:min"],
    )
    text = page.read_text()
    assert "Hypervolume over evaluations" not in text and "Parallel coordinates" not in text
    driver = browser
    driver.get(page.resolve().as_uri())
    legend = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "figure span.legend")]
    assert legend == [
        f"● simulators.fpga.board = {b} front"
        for b in df["simulators.fpga.board"].drop_duplicates()
    ]
    assert sorted(lab.split("= ")[1].split(" ")[0] for lab in legend) == boards
    fits = (df.status == "ok") & (df.fpga_feasible == 1)
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('h2')).filter(h => h.textContent.startsWith("
        "'Per ')).map(h => Array.from(h.nextElementSibling.querySelectorAll('tbody tr')).map("
        "r => Array.from(r.cells).map(c => c.textContent)));"
    )
    (rows,) = cells
    per_board = {r[0].split("= ")[-1]: (int(r[1]), int(r[2])) for r in rows}
    for b in boards:
        sub = df["simulators.fpga.board"] == b
        assert per_board[b] == (int(sub.sum()), int((fits & sub).sum()))
    circles = driver.find_elements(By.CSS_SELECTOR, "svg.explorer circle")
    assert len(circles) == int(fits.sum())  # every design that fits, nothing else
    colours = {c.get_attribute("fill") for c in circles if c.get_attribute("class") == "pareto"}
    assert len(colours) == len(boards)

    def ticks():
        return driver.execute_script(
            "return Array.from(document.querySelectorAll('svg.explorer')[0]"
            ".querySelectorAll('text.xtick')).map(t => t.textContent);"
        )

    def round_numbers(labels: list[str]) -> bool:
        """Evenly spaced multiples of 1, 2 or 5 x 10^k (a linear axis), or 1, 2 and 5 x 10^k
        themselves (a log axis)."""
        scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
        values = [float(t[:-1]) * scale[t[-1]] if t[-1] in scale else float(t) for t in labels]
        mantissa = {round(abs(v) / 10 ** np.floor(np.log10(abs(v))), 6) for v in values if v}
        if mantissa <= {1.0, 2.0, 5.0} and all(v > 0 for v in values):
            return True
        steps = {round(b - a, 9) for a, b in zip(values, values[1:])}
        return len(steps) == 1 and round(
            steps.pop() / 10 ** np.floor(np.log10(abs(values[1] - values[0]))), 6
        ) in (1.0, 2.0, 5.0)

    before = ticks()
    assert len(before) >= 3 and round_numbers(before), before
    svg = driver.find_elements(By.CSS_SELECTOR, "svg.explorer")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", svg)
    for _ in range(4):  # the wheel zooms in around the pointer
        driver.execute_script(
            "var r = arguments[0].getBoundingClientRect();"
            "arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -100, bubbles: true,"
            " cancelable: true, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2}));",
            svg,
        )
    zoomed = ticks()
    assert zoomed != before and round_numbers(zoomed), zoomed
    driver.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('dblclick', {bubbles: true}));", svg
    )
    assert ticks() == before  # reset
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    shot = tmp_path / "sweep.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
