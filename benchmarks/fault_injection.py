"""Fault injection on real subprocesses: does the store ever lose or duplicate a row?

Scenarios (each against an uninterrupted run of the same config and seed):

* SIGKILL of ``dse run`` at a random moment, then ``dse run --resume`` (``--trials`` times);
* a part deleted from a finished run, then a resume (refused; then ``--drop-corrupt``);
* two resumes of one killed run at once (one must be refused);
* SIGKILL of a Dask worker in the middle of ``dse sweep``;
* a truncated part (``dse show`` and ``--resume`` refuse; ``--drop-corrupt`` continues);
* a corrupt manifest (every command refuses with one line);
* a full disk: the run writes to a tiny tmpfs (needs root or user namespaces) and must stop with
  one clear line and a resumable store, which then finishes on a disk with room;
* SIGKILL of a regularised-evolution run (REA's tournament retries ask what is known) and of a
  run with ``max_stagnant_evaluations``, at random moments, then ``--resume``: the records must
  equal the uninterrupted run's, eval_id by eval_id (``diverged`` counts the rows that differ);
* SIGTERM (how SLURM and Kubernetes stop a job): exit 143, manifest ``interrupted``, resumable;
* tampered parts: another run's part copied over one of the same size, a part copied to the next
  number of a killed run, a value edited by hand: refused with one line, and ``--drop-corrupt``
  admits no duplicate;
* the bad-input table of ``benchmarks/bad_inputs.py`` (82 cases over every command): exit codes,
  tracebacks and files written.

Printed per scenario: trials, rows lost, rows duplicated, rows diverged, exit codes and the
refusal messages. Target: 0 lost, 0 duplicated and 0 diverged everywhere, every refusal one line
with exit 2 (a full disk: 1; SIGTERM: 143).

    python benchmarks/fault_injection.py [--trials 20] [--budget 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

import dse

DSE = [sys.executable, "-m", "dse.cli"]

PLUGIN = '''
import time

from dse.provider import MetricProvider
from dse.registry import PROXIES


@PROXIES.register("fi_slow")
class Slow(MetricProvider):
    """Node count after a short sleep: an evaluation that takes real time."""

    name, metrics, units, cost = "fi_slow", ("fi_nodes",), {"fi_nodes": "nodes"}, 1.0

    def __init__(self, delay_s: float = 0.004):
        self.delay_s = delay_s

    def evaluate(self, graph, arch, space):
        time.sleep(self.delay_s)
        return {"fi_nodes": float(graph.number_of_nodes())}
'''

CONFIG = """
[run]
name = "fi"
seed = {seed}
plugins = ["fi_plugin"]

[space]
name = "nasbench201"

[proxies.analytic]

[proxies.fi_slow]

[[objectives]]
metric = "hook_flops"
direction = "max"

[[objectives]]
metric = "params"
direction = "min"

[search]
driver = "pymoo"
pop_size = 20
max_evaluations = {budget}
"""

SWEEP = """
[run]
name = "fi-sweep"
seed = {seed}
plugins = ["fi_plugin"]

[space]
name = "nasbench201"

[proxies.fi_slow]
delay_s = 0.01

[simulators.fpga]

[sweep]
method = "random"
points = 400
chunk_size = 10

[sweep.parameters]
arch = "all"
"simulators.fpga.board" = ["ZC706", "ZCU102"]
"""


#: resumes of these runs import fi_plugin from the work folder, outside the run folder: the
#: user's own plugin, trusted explicitly
TRUST = "--trust-plugins"


@dataclass
class Scenario:
    name: str
    trials: int = 0
    lost: int = 0
    duplicated: int = 0
    diverged: int = 0
    exits: Counter = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def refused(self, proc: subprocess.CompletedProcess) -> None:
        self.exits[proc.returncode] += 1
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        one = len(lines) == 1 and "Traceback" not in proc.stderr
        text = lines[-1] if lines else "(no message)"
        # the pid in a lock message differs per trial; the rest is the message
        text = re.sub(r"pid \d+", "pid N", text)
        text = re.sub(r"/(kill|twice)\d+/", r"/\1K/", text)
        self.messages.append(("" if one else "NOT ONE LINE: ") + text[:220])


def cli(args, cwd, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        DSE + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def rows(run: Path) -> pd.DataFrame:
    """Every row in the run's parts, read as any Parquet reader would (no dse checks)."""
    return ds.dataset(str(run / "evals"), format="parquet").to_table().to_pandas()


def compare(s: Scenario, run: Path, reference: pd.DataFrame) -> None:
    got = rows(run)
    ref = reference.set_index("arch_hash")["hook_flops"]
    have = got.drop_duplicates("arch_hash").set_index("arch_hash")["hook_flops"]
    missing = set(ref.index) - set(have.index)
    wrong = [h for h in set(ref.index) & set(have.index) if ref[h] != have[h]]
    s.lost += len(missing) + len(wrong)
    s.duplicated += (len(got) - got.arch_hash.nunique()) + (len(got) - got.eval_id.nunique())


def kill_after(cmd, cwd, delay: float) -> int:
    proc = subprocess.Popen(
        DSE + [str(a) for a in cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def sigkill_runs(work: Path, cfg: Path, ref: pd.DataFrame, run_s: float, trials: int, rng):
    s = Scenario("SIGKILL during a run, then --resume")
    for t in range(trials):
        out = work / f"kill{t}"
        kill_after(
            ["run", cfg, "--run-id", "r", "--output", out, "--quiet"],
            work,
            rng.uniform(0.5, max(0.6, run_s * 0.9)),
        )
        resumed = cli(["run", "--resume", out / "r", "--quiet", TRUST], work)
        s.exits[resumed.returncode] += 1
        if resumed.returncode != 0:
            s.messages.append(resumed.stderr.strip().splitlines()[-1][:160])
        compare(s, out / "r", ref)
        s.trials += 1
    return s


def deleted_part(work: Path, ref_run: Path, ref: pd.DataFrame, rng):
    s = Scenario("a part deleted, then --resume")
    run = work / "deleted" / "r"
    shutil.copytree(ref_run, run)
    parts = sorted((run / "evals").glob("part-*.parquet"))
    rng.choice(parts[:-1]).unlink()
    s.refused(cli(["run", "--resume", run, "--quiet", TRUST], work))
    fixed = cli(["run", "--resume", run, "--drop-corrupt", "--quiet", TRUST], work)
    s.exits[fixed.returncode] += 1
    compare(s, run, ref)
    s.trials = 1
    return s


def concurrent_resumes(work: Path, cfg: Path, ref: pd.DataFrame, run_s: float, trials: int):
    s = Scenario("two --resume at once")
    for t in range(trials):
        out = work / f"twice{t}"
        kill_after(["run", cfg, "--run-id", "r", "--output", out, "--quiet"], work, run_s * 0.4)
        a = subprocess.Popen(
            DSE + ["run", "--resume", str(out / "r"), "--quiet", TRUST],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)
        b = cli(["run", "--resume", out / "r", "--quiet", TRUST], work)
        a_out, a_err = a.communicate()
        first = subprocess.CompletedProcess(a.args, a.returncode, a_out, a_err)
        for proc in (first, b):
            if proc.returncode == 2:
                s.refused(proc)
            else:
                s.exits[proc.returncode] += 1
        if 0 not in (first.returncode, b.returncode):  # neither finished: finish now
            cli(["run", "--resume", out / "r", "--quiet", TRUST], work)
        compare(s, out / "r", ref)
        s.trials += 1
    return s


def worker_killed(work: Path, seed: int):
    from distributed import Client, LocalCluster

    s = Scenario("SIGKILL of a Dask worker mid-sweep")
    cfg = work / "sweep.toml"
    cfg.write_text(SWEEP.format(seed=seed))
    reference = rows(dse.sweep(cfg, output=work / "sweep-ref", workers=0, progress=False).path)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        out = work / "sweep-kill"

        def killer():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if len(list(out.glob("*/evals/part-*.parquet"))) >= 8:
                    os.kill(pids[0], signal.SIGKILL)
                    return
                time.sleep(0.01)

        thread = threading.Thread(target=killer)
        thread.start()
        result = dse.sweep(cfg, output=out, scheduler=cluster.scheduler_address, progress=False)
        thread.join()
    got = rows(result.path)
    ref = reference.set_index("eval_id")
    have = got.drop_duplicates("eval_id").set_index("eval_id")
    s.lost = len(set(ref.index) - set(have.index)) + int(
        (
            have.loc[ref.index.intersection(have.index), "fpga_latency_ms"]
            != ref.loc[ref.index.intersection(have.index), "fpga_latency_ms"]
        ).sum()
    )
    s.duplicated = len(got) - got.eval_id.nunique()
    s.exits[0] += 1
    s.trials = 1
    return s


def truncated_part(work: Path, ref_run: Path, ref: pd.DataFrame, rng):
    s = Scenario("a truncated part")
    run = work / "truncated" / "r"
    shutil.copytree(ref_run, run)
    part = rng.choice(sorted((run / "evals").glob("part-*.parquet")))
    part.write_bytes(part.read_bytes()[: max(8, part.stat().st_size // 3)])
    s.refused(cli(["show", run], work))
    s.refused(cli(["run", "--resume", run, "--quiet", TRUST], work))
    fixed = cli(["run", "--resume", run, "--drop-corrupt", "--quiet", TRUST], work)
    s.exits[fixed.returncode] += 1
    compare(s, run, ref)
    s.trials = 1
    return s


def corrupt_manifest(work: Path, ref_run: Path, ref: pd.DataFrame):
    s = Scenario("a corrupt manifest")
    run = work / "manifest" / "r"
    shutil.copytree(ref_run, run)
    (run / "manifest.json").write_text('{"run_id": "r", "conf')
    for args in (["show", run], ["run", "--resume", run, TRUST], ["report", run]):
        s.refused(cli(args, work))
    compare(s, run, ref)  # the parts are untouched
    s.trials = 1
    return s


def full_disk(work: Path, cfg: Path, ref: pd.DataFrame):
    s = Scenario("a full disk (64 KiB tmpfs)")
    mnt = work / "tiny"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        s.messages.append("skipped: cannot mount a tmpfs here (needs root)")
        return s
    try:
        failed = cli(["run", cfg, "--run-id", "r", "--output", mnt, "--quiet"], work)
        s.refused(failed)
        shutil.copytree(mnt / "r", work / "roomy" / "r")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    resumed = cli(["run", "--resume", work / "roomy" / "r", "--quiet", TRUST], work)
    s.exits[resumed.returncode] += 1
    compare(s, work / "roomy" / "r", ref)
    s.trials = 1
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="SIGKILL trials")
    ap.add_argument("--budget", type=int, default=400, help="proposals per run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="dse-fault-") as tmp:
        work = Path(tmp)
        (work / "fi_plugin.py").write_text(PLUGIN)  # beside the config: found through it
        cfg = work / "fi.toml"
        cfg.write_text(CONFIG.format(seed=args.seed, budget=args.budget))
        start = time.monotonic()
        whole = cli(["run", cfg, "--run-id", "ref", "--output", work / "ref", "--quiet"], work)
        run_s = time.monotonic() - start
        assert whole.returncode == 0, whole.stderr
        ref_run = work / "ref" / "ref"
        ref = rows(ref_run)
        print(f"reference run: {len(ref)} rows in {run_s:.1f} s (budget {args.budget})")
        scenarios = [
            sigkill_runs(work, cfg, ref, run_s, args.trials, rng),
            deleted_part(work, ref_run, ref, rng),
            concurrent_resumes(work, cfg, ref, run_s, 3),
            worker_killed(work, args.seed),
            truncated_part(work, ref_run, ref, rng),
            corrupt_manifest(work, ref_run, ref),
            full_disk(work, cfg, ref),
        ]
        from fault_resume import REA, bad_input_table, driver_kills, sigterm, tampered_parts

        kills = max(2, args.trials // 4)
        scenarios += [
            driver_kills(work, "rea", REA, args.budget, kills, rng, args.seed),
            driver_kills(
                work,
                "rea with stagnation",
                REA + "\nmax_stagnant_evaluations = 60",
                1000,
                kills,
                rng,
                args.seed,
            ),
            sigterm(work, cfg, ref, run_s, kills, rng),
            tampered_parts(work, cfg, ref_run, ref, args.seed),
        ]
        table_scenario, table = bad_input_table(work)
        scenarios.append(table_scenario)
    print()
    print(table)
    print()
    print(f"{'scenario':44s} {'trials':>6s} {'lost':>5s} {'dup':>5s} {'div':>5s}  exit codes")
    work_text = str(work)
    for s in scenarios:
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(s.exits.items()))
        print(f"{s.name:44s} {s.trials:6d} {s.lost:5d} {s.duplicated:5d} {s.diverged:5d}  {codes}")
        for m in dict.fromkeys(s.messages):
            print(f"{'':44s} message: {m.replace(work_text, '$WORK')}")
    bad = [s.name for s in scenarios if s.lost or s.duplicated or s.diverged]
    bad += [s.name for s in scenarios if s.name.startswith("bad input") and s.messages]
    print(
        "\n"
        + (
            "every scenario: 0 lost, 0 duplicated, 0 diverged; every bad input refused"
            if not bad
            else "FAILED: " + ", ".join(bad)
        )
    )


if __name__ == "__main__":
    main()
