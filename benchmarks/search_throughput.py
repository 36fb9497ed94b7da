"""End-to-end search throughput: architectures per second of a whole ``dse.run``, where the time
goes, start-up, memory, and the same driver on a pure-numpy pymoo problem as the baseline.

Configurations (NSGA-II, population 100, 5,000 proposals, seed 0):

* ``nb201-3eval``: NAS-Bench-201 with the analytic proxy, the GPU simulator (A100) and the FPGA
  simulator (ZC706); objectives hook_flops (max), gpu_latency_ms, fpga_latency_ms;
* ``nb201-gpu``: the same space with the GPU simulator alone (gpu_latency_ms, gpu_memory_gb);
* ``mbconv-fpga``: EDD's 20-block MBConv chain with the FPGA simulator (fpga_latency_ms,
  fpga_dsp).

Each runs in a fresh subprocess (its own start-up and peak RSS). The search overhead per
architecture is the unprofiled run's search time less the seconds its records give the providers
(``time_<provider>_s``), per row; "of it driver" is the part outside ``SearchProblem.evaluate``
(pymoo's own work). Each config runs ``--repeats`` times and the fastest run counts (runs on this
machine differ by about +-15%). Stage shares come from a further, profiled run (cumulative time
of the pipeline's entry points); the profiler inflates pure-Python stages more than numpy ones,
so the shares lean towards graph building and the driver. Memory: peak RSS after 10k and after
100k proposals of random search on the MBConv config (every proposal a new architecture, a new
row). The baseline is pymoo's NSGA-II, with the same operators, on a numpy problem with the same
genes, objectives and constraints.

    python benchmarks/search_throughput.py [--evaluations 5000] [--repeats 3] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time

CONFIGS = {
    "nb201-3eval": {
        "space": {"name": "nasbench201"},
        "proxies": {"analytic": {}},
        "simulators": {"gpu": {"device": "A100-80GB-PCIe"}, "fpga": {"board": "ZC706"}},
        "objectives": [
            {"metric": "hook_flops", "direction": "max"},
            {"metric": "gpu_latency_ms", "direction": "min"},
            {"metric": "fpga_latency_ms", "direction": "min"},
        ],
    },
    "nb201-gpu": {
        "space": {"name": "nasbench201"},
        "simulators": {"gpu": {"device": "A100-80GB-PCIe"}},
        "objectives": [
            {"metric": "gpu_latency_ms", "direction": "min"},
            {"metric": "gpu_memory_gb", "direction": "min"},
        ],
    },
    "mbconv-fpga": {
        "space": {"name": "mbconv"},
        "simulators": {"fpga": {"board": "ZCU102"}},
        "objectives": [
            {"metric": "fpga_latency_ms", "direction": "min"},
            {"metric": "fpga_dsp", "direction": "min"},
        ],
    },
}

#: pipeline entry points -> stage (cumulative time of the outermost call per stage)
STAGES = {
    ("space.py", "identify"): "identify (decode, hash)",  # graph building is split out below
    ("evaluate.py", "evaluate_batch"): "evaluators",
    ("store.py", "write_batch"): "store",
    ("tracker.py", "update"): "hypervolume",
}

CHILD = textwrap.dedent(
    """
    import cProfile, json, pstats, resource, sys, time
    t0 = time.perf_counter()
    import dse
    cfg, out, profile = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    from dse.config import parse_config
    from dse.experiment import build
    import dse.runner  # what dse.run imports before it searches
    build(parse_config(cfg))
    startup = time.perf_counter() - t0
    prof = cProfile.Profile() if profile else None
    # the driver's own time: the search less the time inside SearchProblem.evaluate (50 calls)
    from dse.search.problem import SearchProblem
    inside = [0.0]
    evaluate = SearchProblem.evaluate
    def timed(self, *a, **k):
        t = time.perf_counter()
        try:
            return evaluate(self, *a, **k)
        finally:
            inside[0] += time.perf_counter() - t
    SearchProblem.evaluate = timed
    t1 = time.perf_counter()
    if prof:
        prof.enable()
    r = dse.run(cfg, output=out, progress=False)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t1
    stages = {}
    if prof:
        st = pstats.Stats(prof).stats
        for (file, line, fn), (cc, nc, tt, ct, callers) in st.items():
            key = f"{file.rsplit('/', 1)[-1]}:{fn}"
            stages[key] = stages.get(key, 0) + ct
            if fn == "to_graph":  # graph building, wherever it is called from
                stages["graph"] = stages.get("graph", 0) + ct
                for (cfile, cline, cfn), (_, _, _, cct) in callers.items():
                    where = "graph_in_" + cfn
                    stages[where] = stages.get(where, 0) + cct
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import pyarrow.parquet as pq, glob
    # seconds inside the providers, as the records time them (graph building excluded)
    evaluator_s = 0.0
    for part in glob.glob(str(r.path / "evals" / "part-*.parquet")):
        t = pq.read_table(part)
        evaluator_s += sum(t[c].to_numpy(zero_copy_only=False).sum() for c in t.column_names
                           if c.startswith("time_") and c.endswith("_s"))
    print(json.dumps({"rows": r.rows, "proposals": r.proposals, "startup_s": startup,
                      "search_s": wall, "rss_mb": rss, "stages": stages,
                      "evaluator_s": float(evaluator_s), "driver_s": wall - inside[0],
                      "torch": "torch" in sys.modules}))
    """
)


def child(cfg: dict, out: str, profile: bool = False) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg), out, "1" if profile else "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def config(name: str, evaluations: int, seed: int = 0, driver: str = "pymoo") -> dict:
    search = (
        {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 100}
        if driver == "pymoo"
        else {"driver": "random", "batch_size": 100}
    )
    return {
        "run": {"name": name, "seed": seed},
        **CONFIGS[name],
        "search": {**search, "max_evaluations": evaluations},
    }


def baseline(n_var: int, card: int, n_obj: int, evaluations: int) -> float:
    """Proposals/s of the same pymoo NSGA-II on a vectorised numpy problem of the same shape."""
    import numpy as np
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.ux import UX
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    from dse.search.pymoo_driver import CategoricalMutation, GeneDuplicateElimination

    class Numpy(Problem):
        def __init__(self):
            super().__init__(n_var=n_var, n_obj=n_obj, n_ieq_constr=1, xl=0, xu=card - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            X = np.rint(X)
            out["F"] = np.stack([np.sin(X * (k + 1)).sum(axis=1) for k in range(n_obj)], axis=1)
            out["G"] = (X.sum(axis=1, keepdims=True) - n_var * card) * 1.0

    from pymoo.algorithms.moo.nsga2 import NSGA2

    algo = NSGA2(
        pop_size=100,
        sampling=IntegerRandomSampling(),
        crossover=UX(prob=0.9),
        mutation=CategoricalMutation(prob_var=None),
        eliminate_duplicates=GeneDuplicateElimination(),
    )
    t = time.perf_counter()
    res = minimize(Numpy(), algo, ("n_evals", evaluations), seed=0, verbose=False)
    return res.algorithm.evaluator.n_eval / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=5000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="runs per config; the fastest counts")
    args = ap.parse_args()
    shapes = {"nb201-3eval": (6, 5, 3), "nb201-gpu": (6, 5, 2), "mbconv-fpga": (40, 10, 2)}
    with tempfile.TemporaryDirectory() as out:
        print(
            f"{'config':12s} {'archs/s':>9s} {'rows':>6s} {'search s':>9s} {'start-up s':>10s} "
            f"{'RSS MB':>7s} {'ms/arch':>8s} {'overhead ms/arch':>16s} {'of it driver':>12s} "
            f"{'baseline/s':>10s} "
            f"{'ratio':>6s}  torch"
        )
        shares = {}
        for name in CONFIGS:
            cfg = config(name, args.evaluations)
            # the fastest of a few fresh runs: this machine's runs differ by about +-15%
            plain = min((child(cfg, out) for _ in range(args.repeats)), key=lambda r: r["search_s"])
            prof = child(cfg, out, profile=True)
            total = sum(v for k, v in prof["stages"].items() if k.endswith("runner.py:_execute"))
            stage = {
                label: sum(v for k, v in prof["stages"].items() if k == f"{f}:{fn}")
                for (f, fn), label in STAGES.items()
            }
            # graph building is its own stage, whether identify or the evaluator asks for it
            st = prof["stages"]
            stage["identify (decode, hash)"] -= st.get("graph_in_identify", 0.0)
            stage["evaluators"] -= st.get("graph_in_evaluate_batch", 0.0)
            stage = {"graph build": st.get("graph", 0.0), **stage}
            stage["driver and records"] = max(0.0, total - sum(stage.values()))
            shares[name] = {k: v / total for k, v in stage.items()} if total else {}
            rate = plain["rows"] / plain["search_s"]
            # everything but the providers, from the unprofiled run's own provider timings
            overhead = (plain["search_s"] - plain["evaluator_s"]) / plain["rows"] * 1e3
            n_var, card, n_obj = shapes[name]
            if name == "mbconv-fpga":
                from dse.registry import SPACES

                space = SPACES.create("mbconv")
                n_var, card = len(space.variables), int(space.cardinalities.max())
            base = max(baseline(n_var, card, n_obj, args.evaluations) for _ in range(args.repeats))
            print(
                f"{name:12s} {rate:9.0f} {plain['rows']:6d} {plain['search_s']:9.2f} "
                f"{plain['startup_s']:10.2f} {plain['rss_mb']:7.0f} "
                f"{plain['search_s'] / plain['rows'] * 1e3:8.3f} {overhead:16.3f} "
                f"{plain['driver_s'] / plain['rows'] * 1e3:12.3f} "
                f"{base:10.0f} {base / rate:5.1f}x  {plain['torch']}"
            )
        print("\nshare of search time per stage (profiled run):")
        for name, sh in shares.items():
            print(f"  {name:12s} " + ", ".join(f"{k} {v:.0%}" for k, v in sh.items()))
        if not args.skip_memory:
            small = child(config("mbconv-fpga", 10_000, driver="random"), out)
            big = child(config("mbconv-fpga", 100_000, driver="random"), out)
            print(
                f"\nrandom search, mbconv-fpga: peak RSS {small['rss_mb']:.0f} MB after 10k "
                f"proposals ({small['rows']} rows), {big['rss_mb']:.0f} MB after 100k "
                f"({big['rows']} rows): growth {big['rss_mb'] - small['rss_mb']:+.0f} MB "
                f"(target < 50 MB); {big['rows'] / big['search_s']:.0f} archs/s"
            )


if __name__ == "__main__":
    main()
