"""Compare search drivers at equal budget on NAS-Bench-201's 362 tabulated cells (CIFAR-10
accuracy against recursive-ZC706 latency), three seeds each, and write one HTML report.

    python examples/compare_drivers.py [--budget 100] [--seeds 3] [--out results/compare]

Prints each driver's final hypervolume as a fraction of the best front the 362 cells allow
(every cell evaluated once, same reference point), mean and spread over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import dse
from dse.configfile import read_config_file
from dse.results import default_reference, hypervolume, minimisation_matrix

EXAMPLE = Path(__file__).with_name("nb201_tabular_fpga.toml")
OBJECTIVES = [("accuracy", "max"), ("fpga_latency_ms", "min")]
DRIVERS = {
    "random": {"driver": "random", "batch_size": 10},
    "rea": {"driver": "rea", "population_size": 50, "sample_size": 10},
    "pymoo-nsga2": {"driver": "pymoo", "algorithm": "nsga2", "pop_size": 20},
    "optuna-tpe": {"driver": "optuna", "sampler": "tpe"},
    "optuna-nsga2": {"driver": "optuna", "sampler": "nsga2", "population_size": 20},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="results/compare")
    args = ap.parse_args()
    base = read_config_file(EXAMPLE)  # its relative paths resolved against examples/

    # every listed cell once: the best front there is, and a common reference point
    everything = dict(base, search={"driver": "random", "batch_size": 400, "max_evaluations": 4000})
    table = dse.results.load(dse.run(everything, output=args.out, progress=False).path)
    worst = default_reference(minimisation_matrix(table, OBJECTIVES))
    ref = [-worst[0], worst[1]]
    best = hypervolume(table, OBJECTIVES, ref)

    runs, scores = [], {}
    for name, search in DRIVERS.items():
        for seed in range(args.seeds):
            cfg = dict(
                base,
                run={**base["run"], "name": name, "seed": seed},
                search={**search, "max_evaluations": args.budget},
            )
            result = dse.run(cfg, output=args.out, progress=False)
            runs.append(result.path)
            scores.setdefault(name, []).append(
                hypervolume(dse.results.load(result.path), OBJECTIVES, ref) / best
            )
    print(
        f"NAS-Bench-201 (362 cells), CIFAR-10 accuracy vs ZC706 latency, budget {args.budget}, "
        f"{args.seeds} seeds; hypervolume / best possible:"
    )
    for name, values in sorted(scores.items(), key=lambda kv: -np.mean(kv[1])):
        print(
            f"  {name:13s} {np.mean(values):.4f} +- {np.std(values):.4f}   "
            f"({', '.join(f'{v:.4f}' for v in values)})"
        )
    page = dse.report(runs, out=Path(args.out) / "report", title=f"drivers at budget {args.budget}")
    print(f"report: {page}")


if __name__ == "__main__":
    main()
