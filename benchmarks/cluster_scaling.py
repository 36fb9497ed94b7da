"""Clusters: the same sweep and the same proxy report card on 1 and 2 SLURM jobs and on a
LocalCluster of the same size, and a million-point analytic sweep's client memory.

1. A sweep whose chunks take about 1 s (NAS-Bench-201 cells, the tests' ``slow_params`` proxy
   sleeping 0.1 s per cell, 10 cells per chunk, 40 chunks): wall time, points/s, scaling
   efficiency from 1 to 2 workers (``t1 / (2 t2)``) and the per-chunk scheduling overhead
   (``(workers x wall - work) / chunks``), on SLURM jobs (``--cluster slurm``, one core each)
   and on a LocalCluster (``--workers``).
2. A proxy report card (NASWOT, about 0.25 s per cell, on 200 NAS-Bench-201 cells, chunks of
   20) the same four ways and in one process.
3. Analytic sweeps of 100,000 and 1,000,000 random points (NAS-Bench-201 cells on the GPU
   roofline, chunks of 500, a 2-worker LocalCluster): rows/s, the manifest's size and the
   client process's peak resident memory (Linux ``VmHWM``), which must stay flat as points grow.

    python benchmarks/cluster_scaling.py [--skip-slurm] [--points 100000 1000000]

Needs a running SLURM for 1 and 2 (``.ci/slurm start`` as root starts a one-node one); the
machine's cores bound what 2 workers can show.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from timing import DATA

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SLOW = """
[run]
name = "scaling"
plugins = ["dse_test_plugins"]
[space]
name = "nasbench201"
[proxies.slow_params]
delay_s = {delay}
[sweep]
method = "random"
points = {points}
chunk_size = {chunk}
[sweep.parameters]
arch = "all"
"""
ANALYTIC = """
[run]
name = "million"
[space]
name = "nasbench201"
[simulators.gpu]
device = "A100-80GB-PCIe"
[sweep]
method = "random"
points = {points}
chunk_size = 500
[sweep.parameters]
arch = "all"
"""


def dse(args: list[str], cwd: Path) -> tuple[float, int, subprocess.CompletedProcess]:
    """(wall seconds, peak client RSS in bytes, the finished process)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dse.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = [0]

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - start
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if proc.returncode != 0:
        raise SystemExit(f"dse {' '.join(args)} failed:\n{err}")
    return wall, peak[0], done


WHERE = {
    "SLURM, 1 job": [
        "--cluster",
        "slurm",
        "--cluster-param",
        "jobs=1",
        "--cluster-param",
        "memory=3GB",
    ],
    "SLURM, 2 jobs": [
        "--cluster",
        "slurm",
        "--cluster-param",
        "jobs=2",
        "--cluster-param",
        "memory=3GB",
    ],
    "LocalCluster, 1 worker": ["--workers", "1"],
    "LocalCluster, 2 workers": ["--workers", "2"],
}


def sweep_scaling(work: Path, use_slurm: bool) -> None:
    delay, points, chunk = 0.1, 400, 10
    cfg = work / "slow.toml"
    cfg.write_text(SLOW.format(delay=delay, points=points, chunk=chunk))
    chunks, busy = points // chunk, points * delay
    print(f"\n== sweep: {points} points, {chunks} chunks of {chunk * delay:.1f} s of work each")
    walls = {}
    for name, args in WHERE.items():
        if name.startswith("SLURM") and not use_slurm:
            continue
        out = work / f"s-{len(walls)}"
        wall, _, _ = dse(["sweep", str(cfg), "--output", str(out), "--quiet", *args], work)
        workers = 2 if "2" in name else 1
        walls[name] = wall
        overhead = (workers * wall - busy) / chunks
        print(
            f"  {name:24s} {wall:6.1f} s  {points / wall:6.1f} points/s  "
            f"overhead {overhead:5.2f} s per chunk (start-up included)"
        )
    for kind in ("SLURM", "LocalCluster"):
        one = walls.get(f"{kind}, 1 job" if kind == "SLURM" else f"{kind}, 1 worker")
        two = walls.get(f"{kind}, 2 jobs" if kind == "SLURM" else f"{kind}, 2 workers")
        if one and two:
            print(f"  {kind}: scaling efficiency 1 -> 2 = {one / (2 * two):.1%} (target >= 85%)")


def card_scaling(work: Path, use_slurm: bool) -> None:
    print("\n== proxy report card: NASWOT on 200 NAS-Bench-201 cells, chunks of 20")
    base = [
        "proxy-eval",
        "--truth",
        str(DATA / "nasbench201_naslib.csv"),
        "--proxies",
        "nwot",
        "--target",
        "val_acc_cifar10",
        "--limit",
        "200",
        "--chunk-size",
        "20",
    ]
    wall, _, _ = dse([*base, "--out", str(work / "card-0")], work)
    print(f"  {'one process':24s} {wall:6.1f} s")
    walls = {}
    for name, args in WHERE.items():
        if name.startswith("SLURM") and not use_slurm:
            continue
        wall, _, _ = dse([*base, "--out", str(work / f"card-{len(walls) + 1}"), *args], work)
        walls[name] = wall
        print(f"  {name:24s} {wall:6.1f} s  {200 / wall:6.1f} cells/s")
    for kind, one, two in (("SLURM", "1 job", "2 jobs"), ("LocalCluster", "1 worker", "2 workers")):
        if f"{kind}, {one}" in walls and f"{kind}, {two}" in walls:
            eff = walls[f"{kind}, {one}"] / (2 * walls[f"{kind}, {two}"])
            print(f"  {kind}: scaling efficiency 1 -> 2 = {eff:.1%} (worker start-up included)")


def million(work: Path, sizes: list[int]) -> None:
    print("\n== analytic sweeps (GPU roofline on NAS-Bench-201 cells), 2-worker LocalCluster")
    peaks = []
    for n in sizes:
        cfg = work / f"m{n}.toml"
        cfg.write_text(ANALYTIC.format(points=n))
        out = work / f"m{n}"
        wall, peak, _ = dse(
            ["sweep", str(cfg), "--output", str(out), "--quiet", "--workers", "2"], work
        )
        (run,) = list(out.iterdir())
        manifest = run / "manifest.json"
        chunks = json.loads(manifest.read_text())["chunks"]
        peaks.append(peak)
        print(
            f"  {n:>9,} points: {wall:6.1f} s, {n / wall:8,.0f} rows/s, {chunks} chunks, "
            f"manifest {manifest.stat().st_size / 1e3:.0f} kB, client peak RSS {peak / 1e6:.0f} MB"
        )
        shutil.rmtree(out)
    if len(peaks) > 1:
        print(f"  client memory growth: {(peaks[-1] - peaks[0]) / 1e6:.0f} MB (target < 50 MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-slurm", action="store_true", help="LocalCluster rows only")
    ap.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--only", choices=["sweep", "card", "million"], default=None)
    args = ap.parse_args()
    use_slurm = not args.skip_slurm and shutil.which("sinfo") is not None
    if not use_slurm:
        print("(no SLURM: LocalCluster rows only)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "sweep"):
            sweep_scaling(work, use_slurm)
        if args.only in (None, "card"):
            card_scaling(work, use_slurm)
        if args.only in (None, "million"):
            million(work, args.points)


if __name__ == "__main__":
    main()
