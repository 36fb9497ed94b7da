"""The fault-injection scenarios of exact resume, SIGTERM and tampered stores (imported by
``fault_injection.py``, which prints them with the others)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from fault_injection import (
    CONFIG,
    DSE,
    TRUST,
    Scenario,
    cli,
    compare,
    kill_after,
    rows,
)

REA = 'driver = "rea"\npopulation_size = 20\nsample_size = 5'


def config_with(work: Path, name: str, seed: int, budget: int, search: str) -> Path:
    """The benchmark's config with another [search] driver section."""
    text = CONFIG.format(seed=seed, budget=budget).replace(
        'driver = "pymoo"\npop_size = 20', search
    )
    cfg = work / f"{name}.toml"
    cfg.write_text(text)
    return cfg


def compare_exact(s: Scenario, run: Path, reference: pd.DataFrame) -> None:
    """Lost and duplicated rows as :func:`compare` counts them, and the rows whose design differs
    from the uninterrupted run's at the same eval_id (a replay that diverged)."""
    compare(s, run, reference)
    got = rows(run).drop_duplicates("eval_id").set_index("eval_id").arch_hash
    ref = reference.set_index("eval_id").arch_hash
    both = ref.index.intersection(got.index)
    s.diverged += int((got[both] != ref[both]).sum()) + abs(len(got) - len(ref))


def driver_kills(work: Path, label: str, search: str, budget: int, trials: int, rng, seed: int):
    """SIGKILL of a run of ``search`` at random moments, then --resume, against the whole run."""
    s = Scenario(f"SIGKILL + resume: {label}")
    cfg = config_with(work, label.replace(" ", "_"), seed, budget, search)
    start = time.monotonic()
    whole = cli(["run", cfg, "--run-id", "ref", "--output", work / f"{label}-ref", "--quiet"], work)
    run_s = time.monotonic() - start
    assert whole.returncode == 0, whole.stderr
    reference = rows(work / f"{label}-ref" / "ref")
    for t in range(trials):
        out = work / f"{label.replace(' ', '_')}-kill{t}"
        kill_after(
            ["run", cfg, "--run-id", "r", "--output", out, "--quiet"],
            work,
            rng.uniform(0.4, max(0.5, run_s * 0.9)),
        )
        resumed = cli(["run", "--resume", out / "r", "--quiet", TRUST], work)
        s.exits[resumed.returncode] += 1
        compare_exact(s, out / "r", reference)
        s.trials += 1
    return s


def sigterm(work: Path, cfg: Path, reference: pd.DataFrame, run_s: float, trials: int, rng):
    """SIGTERM mid-run: exit 143 and an ``interrupted`` manifest, then --resume."""
    s = Scenario("SIGTERM, then --resume")
    for t in range(trials):
        out = work / f"term{t}"
        proc = subprocess.Popen(
            DSE + ["run", str(cfg), "--run-id", "r", "--output", str(out), "--quiet"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            proc.wait(timeout=rng.uniform(0.5, max(0.6, run_s * 0.8)))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate()
        s.exits[proc.returncode] += 1
        status = json.loads((out / "r" / "manifest.json").read_text())["status"]
        if proc.returncode == 143 and status != "interrupted":
            s.messages.append(f"exit 143 but the manifest says {status!r}")
        resumed = cli(["run", "--resume", out / "r", "--quiet", TRUST], work)
        s.exits[resumed.returncode] += 1
        compare_exact(s, out / "r", reference)
        s.trials += 1
    return s


def _parts(run: Path) -> list[Path]:
    return sorted((run / "evals").glob("part-*.parquet"))


def tampered_parts(work: Path, cfg: Path, ref_run: Path, reference: pd.DataFrame, seed: int):
    """Another run's part over one of the same size; a part copied to the next number of a
    killed run; a value edited by hand. Each is refused in one line, then --drop-corrupt."""
    s = Scenario("tampered parts (copied, replaced, edited)")
    other = config_with(work, "other", seed + 1, 100, 'driver = "pymoo"\npop_size = 20')
    assert (
        cli(["run", other, "--run-id", "o", "--output", work / "other", "--quiet"], work).returncode
        == 0
    )
    foreign = _parts(work / "other" / "o")[1]

    def replaced(run: Path) -> None:
        shutil.copyfile(foreign, _parts(run)[1])

    def copied_into_killed(run: Path) -> None:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest.update(status="running", parts={}, evaluations=None)
        (run / "manifest.json").write_text(json.dumps(manifest))
        last = _parts(run)[-1]
        shutil.copyfile(
            _parts(run)[0], last.with_name(f"part-{int(last.stem[5:]) + 1:06d}.parquet")
        )

    def edited(run: Path) -> None:
        part = _parts(run)[2]
        table = pq.read_table(part)
        values = table.column("params").to_pylist()
        values[0] = 1.0
        i = table.schema.get_field_index("params")
        pq.write_table(table.set_column(i, table.schema.field(i), [values]), part)

    for k, tamper in enumerate((replaced, copied_into_killed, edited)):
        run = work / f"tampered{k}" / "r"
        shutil.copytree(ref_run, run)
        tamper(run)
        s.refused(cli(["run", "--resume", run, "--quiet", TRUST], work))
        fixed = cli(["run", "--resume", run, "--drop-corrupt", "--quiet", TRUST], work)
        s.exits[fixed.returncode] += 1
        compare(s, run, reference)
        s.trials += 1
    return s


def bad_input_table(work: Path) -> tuple[Scenario, str]:
    """The bad-input table as a scenario (trials: cases; exits; messages: the failures)."""
    from bad_inputs import report, run_case, run_cases

    outcomes = [run_case(c, work) for c in run_cases()]
    s = Scenario("bad input to every command")
    for o in outcomes:
        s.trials += 1
        s.exits[o.code] += 1
        if not o.ok:
            s.messages.append(f"{o.case.name}: {o.message[:120]} (wrote {o.written})")
    return s, report(outcomes)
