"""``dse proxy-eval``: a proxy report card over a benchmark table, for proxies that take
milliseconds (synflow) and for those that take a minute per architecture (GenNAS).

Long evaluations need what a search has: the architectures are scored in chunks, each finished
chunk is checkpointed to ``OUT/scored.parquet`` (with the evaluation's settings in
``OUT/setup.json``), ``--resume`` scores only what is missing, and ``--workers N``,
``--scheduler`` or ``--cluster slurm`` (jobs of a batch system, :mod:`dse.cluster`) spread the
chunks over a Dask cluster (each worker builds the space and proxies once from plain data).
Several ``--target`` columns give one card row per proxy and target, from one scoring pass: a
task-agnostic proxy scores each architecture once for every data set.

    dse proxy-eval --truth data/nasbench201_naslib.csv --proxies gennas \\
        --target val_acc_cifar10 val_acc_cifar100 val_acc_imagenet16_120 --workers 2 --out
        results/gennas_card
    dse proxy-eval --truth data/nasbench201_naslib.csv --proxies synflow --target \\
        val_acc_cifar10 --cluster slurm --cluster-param jobs=4 --out results/synflow_card
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dse.cluster import (
    ClusterSpec,
    add_cluster_arguments,
    cluster_spec,
    cluster_table,
    completed,
    open_cluster,
)
from dse.inputs import (
    add_space_arguments,
    at_least,
    key_values,
    read_table,
    require_columns,
    require_filled,
    space_from,
)
from dse.params import ConfigError
from dse.proxies.report_card import ProxyScorer, card_from_rows, fitted_on
from dse.registry import COMMANDS, SPACES
from dse.results.store import atomic_write_bytes
from dse.space import Parsable


@functools.lru_cache(maxsize=8)
def scorer_for(setup_json: str) -> ProxyScorer:
    """The scorer a setup (JSON) describes, built once per process."""
    setup = json.loads(setup_json)
    space = SPACES.create(setup["space"], **setup["space_params"])
    return ProxyScorer(space, setup["proxies"], setup["batch_size"], setup["seed"], setup["data"])


def score_chunk(setup_json: str, chunk: list[tuple[int, dict]]) -> list[dict]:
    """Task body: score ``(position, arch)`` pairs; each row keeps its position."""
    scorer = scorer_for(setup_json)
    return [{"position": i, **scorer.score(arch)} for i, arch in chunk]


def _chunks(todo: list[tuple[int, dict]], size: int) -> list[list[tuple[int, dict]]]:
    return [todo[i : i + size] for i in range(0, len(todo), size)]


def scored_chunks(
    setup_json: str,
    todo: list[tuple[int, dict]],
    chunk_size: int,
    cluster: ClusterSpec | None,
    announce=None,
) -> Iterator[list[dict]]:
    """Scored rows, one finished chunk at a time: in-process (``cluster`` None), or on the
    cluster as chunks complete (a cancelled job's chunks run on the other workers)."""
    chunks = _chunks(todo, chunk_size)
    if cluster is None:
        for chunk in chunks:
            yield score_chunk(setup_json, chunk)
        return
    if not chunks:
        return
    with open_cluster(cluster, announce) as client:
        futures = client.map(score_chunk, [setup_json] * len(chunks), chunks, pure=False)
        for future in completed(client, futures, cluster.worker_timeout_s, announce):
            yield future.result()


def score_table(
    setup: dict[str, Any],
    archs: Sequence[dict],
    out: Path | None,
    resume: bool,
    chunk_size: int,
    cluster: ClusterSpec | None,
    progress=print,
) -> pd.DataFrame:
    """Rows for every architecture, in order; with ``out``, checkpointed after every chunk."""
    setup_json = json.dumps(setup, sort_keys=True)
    done: list[dict] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint, saved_setup = out / "scored.parquet", out / "setup.json"
        if resume and checkpoint.exists():
            previous = json.loads(saved_setup.read_text()) if saved_setup.exists() else None
            if previous != setup:
                changed = sorted(
                    k for k in setup if previous is None or previous.get(k) != setup[k]
                )
                raise ValueError(
                    f"--resume: {out} was scored with other settings ({', '.join(changed)}); "
                    f"use another --out, or drop --resume to start again"
                )
            done = pd.read_parquet(checkpoint).to_dict("records")
            progress(f"resuming: {len(done)} of {len(archs)} architectures already scored")
        saved_setup.write_text(json.dumps(setup, indent=1, sort_keys=True))
    finished = {int(r["position"]) for r in done}
    todo = [(i, dict(a)) for i, a in enumerate(archs) if i not in finished]
    for rows in scored_chunks(setup_json, todo, chunk_size, cluster, progress):
        done.extend(rows)
        if out is not None:
            atomic_write_bytes(out / "scored.parquet", pd.DataFrame(done).to_parquet(index=False))
        progress(f"  {len(done)}/{len(archs)} architectures scored")
    return (
        pd.DataFrame(done).sort_values("position").drop(columns="position").reset_index(drop=True)
    )


def space_param_values(items: Sequence[str]) -> dict[str, Any]:
    """``["resolution=32", "task=jigsaw"]`` -> ``{"resolution": 32, "task": "jigsaw"}``."""
    return key_values(items, "--space-param")


@COMMANDS.register("proxy-eval")
class ProxyEvalCommand:
    """Proxy report card: Spearman, Kendall, top-10% retrieval and seconds per architecture."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_space_arguments(p)
        p.add_argument(
            "--dataset", default=None, help="space dataset, e.g. cifar10, cifar100, imagenet16_120"
        )
        p.add_argument(
            "--truth",
            required=True,
            help="CSV with an architecture column and ground-truth columns",
        )
        p.add_argument(
            "--arch-column",
            default="arch_str",
            help="column parsed by the space (default arch_str)",
        )
        p.add_argument(
            "--ops-column",
            default=None,
            help="second column joined as 'ARCH|OPS' (nasbench101: --arch-column "
            "adjacency_7x7 --ops-column ops)",
        )
        p.add_argument(
            "--target",
            nargs="+",
            default=["val_acc_cifar10"],
            help="ground-truth column(s) (default val_acc_cifar10); one card row per proxy "
            "and target",
        )
        p.add_argument(
            "--proxies",
            nargs="+",
            default=[
                "params",
                "flops",
                "synflow",
                "nwot",
                "jacob_cov",
                "snip",
                "grad_norm",
                "ensemble",
            ],
        )
        p.add_argument(
            "--limit",
            type=at_least(0),
            default=0,
            help="score only this many rows (random, seeded; 0: all)",
        )
        p.add_argument("--batch-size", type=at_least(1), default=64)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--data", default="images", help="images (shipped photographs) or synthetic")
        p.add_argument(
            "--out",
            default=None,
            help="folder for scores.parquet and report_card.parquet (and the checkpoint)",
        )
        p.add_argument(
            "--resume", action="store_true", help="score only the architectures --out still lacks"
        )
        p.add_argument(
            "--workers", type=at_least(1), default=None, help="Dask LocalCluster worker processes"
        )
        p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
        add_cluster_arguments(p)
        p.add_argument(
            "--chunk-size",
            type=at_least(1),
            default=8,
            help="architectures per task and checkpoint",
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.resume and not args.out:
            raise ConfigError("--resume: needs --out (the folder to continue)")
        # the arch column as text: keeps leading zeros of bit strings
        df = read_table(args.truth, "--truth", dtype={args.arch_column: str})
        require_columns(
            df,
            [
                ("--arch-column", args.arch_column),
                *(("--target", t) for t in args.target),
                *([("--ops-column", args.ops_column)] if args.ops_column else []),
            ],
            args.truth,
        )
        keys = [args.arch_column, *([args.ops_column] if args.ops_column else [])]
        require_filled(df, keys, "--truth", args.truth)
        if args.limit:
            df = df.sample(n=min(args.limit, len(df)), random_state=args.seed)
        space_params = {
            **({"dataset": args.dataset} if args.dataset else {}),
            **space_param_values(args.space_param),
        }
        space = space_from(args, space_params)
        if not isinstance(space, Parsable):
            raise ConfigError(f"--space: {args.space!r} cannot parse architecture strings")
        texts = (
            df[args.arch_column]
            if not args.ops_column
            else df[args.arch_column] + "|" + df[args.ops_column]
        )
        fitted = fitted_on(args.proxies)
        if fitted:  # score every proxy on the architectures the searched ones never saw
            keep = ~texts.isin(fitted)
            print(f"excluding {int((~keep).sum())} architectures a saved proxy was searched on")
            df, texts = df[keep.to_numpy()], texts[keep]
        try:
            archs = [space.parse(a) for a in texts]
        except ValueError as exc:
            raise ConfigError(f"--arch-column: {exc}") from None
        setup = {
            "space": args.space,
            "space_params": space_params,
            "proxies": list(args.proxies),
            "batch_size": args.batch_size,
            "seed": args.seed,
            "data": args.data,
            "truth": str(args.truth),
            "archs": [space.arch_id(a) for a in archs],
        }
        try:  # names checked before any worker starts; reused in-process
            scorer_for(json.dumps(setup, sort_keys=True))
        except ValueError as exc:
            raise ConfigError(f"--{exc}" if str(exc).startswith("proxies:") else str(exc)) from None
        out = Path(args.out) if args.out else None
        cluster = cluster_spec(cluster_table(args), workers=args.workers, scheduler=args.scheduler)
        rows = score_table(setup, archs, out, args.resume, args.chunk_size, cluster)
        card = card_from_rows(rows, df[args.target].astype(float), args.proxies)
        print(f"{len(archs)} architectures of {args.space}, ground truth {', '.join(args.target)}")
        print(card.summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if out is not None:
            card.scores.to_parquet(out / "scores.parquet", index=False)
            card.summary.to_parquet(out / "report_card.parquet", index=False)
            print(f"written: {out / 'scores.parquet'}, {out / 'report_card.parquet'}")
        return 0
