"""``dse proxy-fit``: fit the few-shot proxy ensemble (:mod:`dse.proxies.ensemble`) on the
labelled architectures DPS would see and save it under a name, like ``dse dps --name``.

    dse proxy-fit --truth data/nasbench201_naslib.csv --target val_acc_cifar10 \\
        --components nwot synflow jacob_cov params flops meco --archs 20 --name nb201-ens
    dse proxy-eval --truth data/nasbench201_naslib.csv --proxies proxy_ensemble@nb201-ens

The fitting architectures are the seeded draw of :func:`dse.proxies.dps.fitness_rows` (the same
``--archs`` and ``--sample-seed`` give DPS's cells), scored here, or read from the
``scores.parquet`` / ``scored.parquet`` of earlier ``dse proxy-eval --out DIR`` passes
(``--scores DIR [DIR ...]``, joined by architecture) that scored them with the components. The
saved record names those architectures, so ``proxy-eval`` leaves them out when it scores the
ensemble.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dse.commands.dps import add_labelled_arguments
from dse.commands.proxy_eval import space_param_values
from dse.inputs import import_requested_plugins, space_from
from dse.params import ConfigError
from dse.proxies.ensemble import DEFAULT_COMPONENTS
from dse.proxies.saved import save_proxy
from dse.registry import COMMANDS
from dse.space import Parsable


def _read_folder(root: Path) -> pd.DataFrame:
    for name in ("scores.parquet", "scored.parquet"):
        if (root / name).exists():
            return pd.read_parquet(root / name).drop_duplicates("arch_id").set_index("arch_id")
    raise ConfigError(f"--scores: {root} has no scores.parquet or scored.parquet")


def read_scores(folders: Sequence[str | Path], components: list[str]) -> pd.DataFrame:
    """Scores by ``arch_id`` from ``dse proxy-eval --out`` folders (a proxy and its ``_s``
    seconds from the first folder that has it), with every component."""
    joined: pd.DataFrame | None = None
    for folder in folders:
        df = _read_folder(Path(folder))
        if joined is None:
            joined = df
            continue
        new = [c for c in df.columns if c.endswith("_s") and c[:-2] not in joined.columns]
        new += [c[:-2] for c in new if c[:-2] in df.columns]
        joined = joined.join(df[new], how="inner")
    assert joined is not None  # argparse gives at least one folder
    missing = [c for c in components if c not in joined.columns]
    if missing:
        raise ConfigError(
            f"--scores: {' '.join(map(str, folders))} lack components {missing}; they have "
            f"{sorted(c for c in joined.columns if f'{c}_s' in joined.columns)}"
        )
    return joined


@COMMANDS.register("proxy-fit")
class ProxyFitCommand:
    """Fit a few-shot ensemble of cheap proxies on a few labelled architectures and save it."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_labelled_arguments(p)
        p.add_argument("--dataset", default=None, help="space dataset, e.g. cifar100")
        p.add_argument(
            "--components",
            nargs="+",
            default=list(DEFAULT_COMPONENTS),
            help="proxies combined (any dse proxy-eval name, e.g. eproxy@nb201-dps)",
        )
        p.add_argument("--l2", type=float, default=None, help="rank-loss L2 (default: by LOO)")
        p.add_argument(
            "--scores", nargs="+", default=None, help="dse proxy-eval --out folders to reuse"
        )
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--data", default="images")
        p.add_argument("--name", default=None, help="save the ensemble under this name")

    def run(self, args: argparse.Namespace) -> int:
        # torch and the proxies: imported when the command runs, so `dse --help` stays fast
        from dse.proxies.dps import fitness_rows, read_truth
        from dse.proxies.ensemble import fit_ensemble
        from dse.proxies.report_card import ProxyScorer, fitted_on

        if "proxy_ensemble" in {c.partition("@")[0] for c in args.components}:
            raise ConfigError("--components: an ensemble cannot contain an ensemble")
        if args.l2 is not None and args.l2 < 0:
            raise ConfigError(f"--l2: must be >= 0, got {args.l2}")
        import_requested_plugins(args)
        key = args.arch_column if not args.ops_column else [args.arch_column, args.ops_column]
        table = read_truth(args.truth, args.target, key, "--truth", "--target/--arch-column")
        try:
            rows = table.iloc[fitness_rows(len(table), args.archs, args.sample_seed)]
        except ValueError as exc:
            raise ConfigError(f"--{exc}") from None
        space_params = {
            **({"dataset": args.dataset} if args.dataset else {}),
            **space_param_values(args.space_param),
        }
        space = space_from(args, space_params)
        if not isinstance(space, Parsable):
            raise ConfigError(f"--space: {args.space!r} cannot parse architecture strings")
        try:
            archs = [space.parse(t) for t in rows.arch_text]
        except ValueError as exc:
            raise ConfigError(f"--arch-column: {exc}") from None
        ids = [space.arch_id(a) for a in archs]
        if args.scores:
            scored = read_scores(args.scores, args.components)
            lacking = [i for i in ids if i not in scored.index]
            if lacking:
                raise ConfigError(
                    f"--scores: {' '.join(args.scores)} lack {len(lacking)} of the fitting "
                    f"architectures, e.g. {lacking[0]!r}"
                )
            values = scored.loc[ids, args.components].to_numpy(dtype=float)
            seconds = float(
                sum(scored.loc[ids, f"{c}_s"].mean() for c in args.components if f"{c}_s" in scored)
            )
        else:
            scorer = ProxyScorer(space, args.components, args.batch_size, args.seed, args.data)
            scored_rows = [scorer.score(a) for a in archs]
            values = np.array([[r[c] for c in args.components] for r in scored_rows], dtype=float)
            seconds = float(
                np.mean([sum(r[f"{c}_s"] for c in args.components) for r in scored_rows])
            )
        truth = rows.truth.to_numpy(dtype=float)
        fitted = fit_ensemble(args.components, values, truth, args.l2)
        score = fitted.combine(values)
        rho = float(pd.Series(score).corr(pd.Series(truth), method="spearman"))
        print(
            f"ensemble of {len(args.components)} proxies fitted on {len(truth)} architectures: "
            f"rho {rho:.4f} on them (l2 {fitted.l2:g}, {seconds:.2f} s per architecture)"
        )
        for c, w, lg in zip(fitted.components, fitted.weights, fitted.log):
            print(f"  {c:>24s}  weight {w:+.4f}{'  (log)' if lg else ''}")
        if args.name:
            params = {
                **fitted.to_params(),
                "batch_size": args.batch_size,
                "seed": args.seed,
                "data": args.data,
            }
            path = save_proxy(
                args.name,
                "proxy_ensemble",
                params,
                {
                    "command": shlex.join(["dse", *sys.argv[1:]]),
                    "scores": args.scores,
                    "rho": rho,
                    "truth": args.truth,
                    "target": args.target,
                    "space": args.space,
                    "space_params": space_params,
                    "key": key,
                    "sample_seed": args.sample_seed,
                    # its own cells and any its saved components were searched on
                    "archs": sorted(set(rows.arch_text) | fitted_on(args.components)),
                    "seconds_per_arch": seconds,
                },
            )
            print(
                f'saved: {path}  (use [proxies.proxy_ensemble] saved = "{args.name}", '
                f"or dse proxy-eval --proxies proxy_ensemble@{args.name})"
            )
        return 0
