"""Compare proxies scored by separate ``dse proxy-eval --out`` runs on the cells they share.

Expensive proxies are scored in separate runs (GenNAS on 40 cells, a saved DPS configuration on
the cells its search never saw), so the honest comparison is on the intersection. This joins the
runs' ``scores.parquet`` on ``arch_id``, optionally adds columns of the benchmark table (NASLib's
precomputed ``naslib_*`` scores, matched through the space's own ``arch_id``), and prints the
report card (``proxies.report_card.summarise``: Spearman, Kendall, top-10% retrieval) on the
common cells. ``--against COLUMN`` also prints each proxy's rank correlation with that column,
to see whether a proxy only restates it (e.g. FLOPs).

    python benchmarks/compare_scored.py results/nb101_dps_eval results/nb101_eproxy \\
        --truth data/nasbench101_naslib.csv --space nasbench101 \\
        --arch-column adjacency_7x7 --ops-column ops \\
        --columns naslib_flops_cifar10 naslib_params_cifar10 naslib_synflow_cifar10 \\
        --against naslib_flops_cifar10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dse.proxies.report_card import summarise
from dse.registry import SPACES


def joined_scores(runs: list[Path], target: str) -> tuple[pd.DataFrame, list[str]]:
    """The runs' scores on the cells all of them scored, and the proxy columns they hold."""
    frames, proxies = [], []
    for i, run in enumerate(runs):
        df = pd.read_parquet(run / "scores.parquet")
        if target not in df.columns:
            raise ValueError(
                f"--target: {target!r} is not in {run / 'scores.parquet'}; columns: "
                f"{list(df.columns)}"
            )
        names = [c for c in df.columns if c not in ("arch_id", target) and not c.endswith("_s")]
        proxies += names
        frames.append(
            df[["arch_id", *names, *[f"{p}_s" for p in names], *([target] if i == 0 else [])]]
        )
    joined = frames[0]
    for df in frames[1:]:
        joined = joined.merge(df, on="arch_id", how="inner", validate="one_to_one")
    return joined, proxies


def table_columns(args: argparse.Namespace) -> pd.DataFrame:
    """``arch_id`` and the requested columns of the benchmark table, keyed as proxy-eval keys it."""
    table = pd.read_csv(args.truth, dtype={args.arch_column: str})
    missing = [c for c in args.columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"--columns: {missing} are not columns of {args.truth}; columns: {list(table.columns)}"
        )
    space = SPACES.create(args.space)
    texts = (
        table[args.arch_column]
        if not args.ops_column
        else table[args.arch_column] + "|" + table[args.ops_column]
    )
    return table[args.columns].assign(arch_id=[space.arch_id(space.parse(t)) for t in texts])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="proxy-eval --out folders")
    ap.add_argument(
        "--target", default="val_acc_cifar10", help="ground-truth column of the first run"
    )
    ap.add_argument("--truth", default=None, help="benchmark CSV to take --columns from")
    ap.add_argument("--space", default="nasbench201")
    ap.add_argument("--arch-column", default="arch_str")
    ap.add_argument("--ops-column", default=None)
    ap.add_argument("--columns", nargs="*", default=[], help="table columns to rank as proxies")
    ap.add_argument("--against", default=None, help="column to rank-correlate every proxy with")
    args = ap.parse_args()
    if args.columns and not args.truth:
        raise ValueError("--columns needs --truth (the table they come from)")
    scores, proxies = joined_scores(args.runs, args.target)
    if args.columns:
        scores = scores.merge(table_columns(args), on="arch_id", how="inner", validate="one_to_one")
        proxies += args.columns
    print(f"{len(scores)} cells scored by all of {', '.join(str(r) for r in args.runs)}")
    card = summarise(scores, proxies, [args.target])
    print(card.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.against:
        if args.against not in scores.columns:
            raise ValueError(f"--against: {args.against!r} is not one of {proxies}")
        for p in proxies:
            print(
                f"rank correlation of {p} with {args.against}: "
                f"{scores[p].corr(scores[args.against], method='spearman'):.3f}"
            )


if __name__ == "__main__":
    main()
