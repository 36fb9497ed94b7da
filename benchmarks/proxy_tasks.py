"""Proxies across tasks and spaces: report cards, the few-shot ensemble and regularised SWAP.

Three sections, each reading the scores of a ``dse proxy-eval --out DIR`` pass (the command is
run first when DIR has no scores; it is checkpointed, so a killed run continues with the same
command):

* ``nb201``: NAS-Bench-201's 362 cells. Per data set, the ensemble (:mod:`dse.proxies.ensemble`)
  and SWAP's size prior (:func:`dse.proxies.swap_reg.fit_size_prior`) are fitted on the 20 cells
  DPS sees (``fitness_rows(362, 20, 0)``) and scored on the other 342, beside each component
  alone on the same cells, with the CPU seconds per cell the components cost.
* ``nb301``: NAS-Bench-301's DARTS cells (``--limit`` of the 362, seeded), the same card as
  ``nb201`` against the surrogate CIFAR-10 accuracy: the ensemble fitted on 20 of the scored
  cells, scored on the rest, beside each component, NASLib's best zero-cost column and any
  ``--extra`` proxy (Eproxy) on the same held-out cells.
* ``transnas``: TransNAS-Bench-101 micro, one scoring pass of the class_scene network at a
  reduced resolution ranked against all seven tasks; per task the card of every proxy on the
  cells, NASLib's best zero-cost column on the same cells, the ensemble fitted per task on DPS's
  20 of them (scored on the rest), with ``--extra DIR`` Eproxy and the per-task DPS
  configurations ``eproxy@tnb-<task>-dps`` (on the cells DPS never saw), and table 4.4's
  published Eproxy and Eproxy + DPS figures. ``--decoder-scores DIR`` adds a pass of the
  autoencoder network (the generative decoder) whose scores the autoencoder and normal cards use.

    python benchmarks/proxy_tasks.py nb201 --scores results/nb201_zc
    python benchmarks/proxy_tasks.py nb201 --scores results/nb201_zc7 --extra results/nb201_az
    python benchmarks/proxy_tasks.py nb301 --scores results/nb301_zc --limit 120 \
        --extra results/nb301_eproxy
    python benchmarks/proxy_tasks.py transnas --scores results/tnb_zc --limit 0 \
        --extra results/tnb_az results/tnb_eproxy --decoder-scores results/tnb_zc_decoder

``--components`` names the ensemble's components (default :data:`DEFAULT_COMPONENTS` for
``nb201``); the scores of each come from the ``--scores`` pass, or from an ``--extra`` folder that
holds them (another pass, e.g. AZ-NAS's measures scored later), and the ``--scores`` pass is run
with the components no ``--extra`` folder provides.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dse.proxies.az_nas import AZ_NAS, BLOCK_MEASURES, rank_aggregate
from dse.proxies.dps import fitness_rows
from dse.proxies.ensemble import DEFAULT_COMPONENTS, fit_ensemble
from dse.proxies.report_card import ProxyScorer, top_retrieval
from dse.proxies.swap_reg import fit_size_prior, regularised
from dse.registry import SPACES

DATA = Path(__file__).resolve().parent.parent / "data"
COMPONENTS = list(DEFAULT_COMPONENTS)
#: the TransNAS cards' components (meco ranks TransNAS cells backwards at 32 px)
TNB_COMPONENTS = ["swap", "nwot", "synflow", "jacob_cov", "params", "flops", *BLOCK_MEASURES]
NB201_TARGETS = {
    "cifar10": "val_acc_cifar10",
    "cifar100": "val_acc_cifar100",
    "imagenet16_120": "val_acc_imagenet16_120",
}
TNB_TASKS = [
    "class_scene",
    "class_object",
    "room_layout",
    "jigsaw",
    "segmentsemantic",
    "normal",
    "autoencoder",
]
#: NASLib's zero-cost columns (their names in the tables, after ``naslib_``)
NASLIB_ZC = ["grasp", "fisher", "grad_norm", "l2_norm", "plain", "nwot", "epe_nas", "jacov", "snip"]


def card_row(name: str, score, truth, seconds: float | None = None) -> dict:
    s, t = pd.Series(np.asarray(score, dtype=float)), pd.Series(np.asarray(truth, dtype=float))
    return {
        "proxy": name,
        "spearman": s.corr(t, method="spearman"),
        "kendall": s.corr(t, method="kendall"),
        "top10": top_retrieval(s.to_numpy(), t.to_numpy()),
        "cpu_s": seconds,
        "n": int(len(s)),
    }


def ensure_scores(out: Path, command: list[str]) -> pd.DataFrame:
    """``out``'s scores, running ``dse proxy-eval`` (checkpointed, ``--resume``) if needed."""
    if not (out / "scores.parquet").exists():
        resume = ["--resume"] if (out / "scored.parquet").exists() else []
        print("running:", " ".join(["dse", "proxy-eval", *command, *resume]), flush=True)
        subprocess.run(["dse", "proxy-eval", *command, *resume], check=True)
    return pd.read_parquet(out / "scores.parquet")


def proxy_frame(scores: pd.DataFrame, proxies=None) -> pd.DataFrame:
    """``arch_id`` and each proxy with its ``_s`` seconds: ``proxies`` where ``scores`` has
    them, else every column that has its seconds beside it (not the ground truth)."""
    if proxies is None:
        proxies = [c for c in scores if f"{c}_s" in scores]
    found = [c for c in proxies if c in scores]
    return scores[["arch_id", *found, *[f"{c}_s" for c in found]]]


def read_extra(folders) -> list[pd.DataFrame]:
    """The proxies of each ``--extra`` folder (:func:`proxy_frame` of its scores), read once."""
    return [proxy_frame(pd.read_parquet(Path(f) / "scores.parquet")) for f in folders]


def extra_proxies(extras: list[pd.DataFrame]) -> list[str]:
    """The proxies the ``--extra`` folders hold, first seen first."""
    names: list[str] = []
    for extra in extras:
        names += [c for c in extra if f"{c}_s" in extra and c not in names]
    return names


def with_extra(scores: pd.DataFrame, extras: list[pd.DataFrame]) -> pd.DataFrame:
    """``scores`` joined by ``arch_id`` with the proxies of the ``--extra`` folders it lacks."""
    for extra in extras:
        lacking = [c for c in extra_proxies([extra]) if c not in scores]
        scores = scores.merge(proxy_frame(extra, lacking), "left")
    return scores


def few_shot(scores: pd.DataFrame, truth: np.ndarray, fit: np.ndarray, components) -> list[dict]:
    """The ensemble, SWAP-reg, AZ-NAS's rank sum and each component alone on the rows outside
    ``fit``."""
    held = np.setdiff1d(np.arange(len(scores)), fit)
    values = scores[components].to_numpy(dtype=float)
    ens = fit_ensemble(components, values[fit], truth[fit])
    seconds = {c: float(scores[f"{c}_s"].mean()) for c in components}
    rows = [card_row("ensemble", ens.combine(values[held]), truth[held], sum(seconds.values()))]
    if "swap" in scores and "params" in scores:
        mu, sigma, _ = fit_size_prior(scores.swap[fit], scores.params[fit], truth[fit])
        reg = regularised(scores.swap.to_numpy(), scores.params.to_numpy(), mu, sigma)
        rows.append(card_row("swap_reg", reg[held], truth[held], seconds.get("swap")))
        rows[-1]["note"] = f"mu {mu:.0f}K, sigma {sigma:.3g}"
    if all(c in scores for c in AZ_NAS):  # the authors' combination: no labels, a population
        aggregate = rank_aggregate(scores.loc[held, list(AZ_NAS)].to_numpy(dtype=float))
        cost = sum(float(scores[f"{c}_s"].mean()) for c in AZ_NAS)
        rows.append(card_row("AZ-NAS rank sum", aggregate, truth[held], cost))
        rows[-1]["note"] = "eq. 7 over the held-out cells: " + ", ".join(AZ_NAS)
    alone = [*components, *(["swap"] if "swap" in scores and "swap" not in components else [])]
    for c in alone:
        seconds_c = seconds.get(c, float(scores[f"{c}_s"].mean()))
        rows.append(card_row(c, scores[c].to_numpy()[held], truth[held], seconds_c))
    weights = ", ".join(f"{c} {w:+.2f}" for c, w in zip(ens.components, ens.weights))
    rows[0]["note"] = f"l2 {ens.l2:g}: {weights}"
    return rows


def show(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))


def nb201(args) -> None:
    table = pd.read_csv(DATA / "nasbench201_naslib.csv")
    out = Path(args.scores)
    components = list(args.components)
    extras = read_extra(args.extra)
    provided = extra_proxies(extras)  # e.g. eproxy@nb201-dps, AZ-NAS's measures
    command = [
        "--truth", str(DATA / "nasbench201_naslib.csv"), "--dataset", "cifar10",
        "--target", *NB201_TARGETS.values(),
        "--proxies", *[c for c in components if c not in provided],
        "--batch-size", "64", "--workers", "1", "--chunk-size", "10", "--out", str(out),
    ]  # fmt: skip
    scores = ensure_scores(out, command)
    space = SPACES.create("nasbench201")
    order = [space.arch_id(space.parse(a)) for a in table.arch_str]
    scores = scores.set_index("arch_id").loc[order].reset_index()
    fit = fitness_rows(len(table), args.archs, args.sample_seed)
    scores = with_extra(scores, extras)
    lacking = [c for c in components if scores.loc[fit, c].isna().any()]
    if lacking:  # a saved proxy's own cells, which proxy-eval leaves out: scored here
        scorer = ProxyScorer(space, lacking, 64, 0, "images")
        for i in fit:
            row = scorer.score(space.parse(table.arch_str[i]))
            for c in lacking:
                scores.loc[i, [c, f"{c}_s"]] = row[c], row[f"{c}_s"]
    draws = np.random.default_rng(args.sample_seed + 1)
    others = [draws.permutation(len(table))[: args.archs] for _ in range(args.draws)]
    for dataset, column in NB201_TARGETS.items():
        truth = table[column].to_numpy(dtype=float)
        rows = few_shot(scores, truth, fit, components)
        if others:  # how much the figure depends on which 20 cells are labelled
            rhos = [few_shot(scores, truth, f, components)[0]["spearman"] for f in others]
            rows[0]["note"] += (
                f"; {len(rhos)} other draws: {np.mean(rhos):.3f} +- {np.std(rhos):.3f}"
            )
        show(
            f"NAS-Bench-201 {dataset}: fitted on {len(fit)} cells, scored on the other "
            f"{len(table) - len(fit)}",
            rows,
        )


def transnas_pass(
    args, table: pd.DataFrame, out: Path, network: str, proxies: list[str]
) -> pd.DataFrame:
    """One zero-cost pass of ``network``'s graphs (a task's) over the table, joined to it."""
    command = [
        "--space", "transnas101_micro", "--space-param", f"task={network}",
        "--space-param", f"resolution={args.resolution}",
        "--truth", str(DATA / "transnas101_micro_naslib.csv"),
        "--arch-column", "naslib_op_indices", "--target", *[f"val_{t}" for t in TNB_TASKS],
        "--proxies", *proxies, "--batch-size", str(args.batch_size),
        "--limit", str(args.limit), "--workers", "1", "--chunk-size", "5", "--out", str(out),
    ]  # fmt: skip
    scores = ensure_scores(out, command)
    return proxy_frame(scores, proxies).merge(table, on="arch_id")


def transnas(args) -> None:
    table = pd.read_csv(DATA / "transnas101_micro_naslib.csv", dtype={"naslib_op_indices": str})
    space = SPACES.create("transnas101_micro")
    table["arch_id"] = [space.arch_id(space.parse(a)) for a in table.naslib_op_indices]
    extras = read_extra(args.extra)
    provided = extra_proxies(extras)  # Eproxy, per-task DPS, AZ-NAS's measures, GenNAS
    proxies = [c for c in args.components if c not in provided]
    merged = transnas_pass(args, table, Path(args.scores), "class_scene", proxies)
    # the pixel tasks' own networks (the generative decoder) for autoencoder and normal
    decoded = (
        transnas_pass(args, table, Path(args.decoder_scores), "autoencoder", proxies)
        .set_index("arch_id")
        .loc[merged.arch_id]
        .reset_index()
        if args.decoder_scores
        else None
    )
    merged = with_extra(merged, extras)
    components = args.components
    # AZ-NAS's measures read only the marked blocks, which sit in the encoder every TransNAS task
    # network shares, so one pass serves the decoder networks' cards too (tests/test_az_nas.py)
    if decoded is not None:
        for c in [c for c in BLOCK_MEASURES if c in components and c not in decoded]:
            decoded[[c, f"{c}_s"]] = merged[[c, f"{c}_s"]].to_numpy()
    published = pd.read_csv(DATA / "eproxy_table4_4.csv")
    dps_cells = set(table.arch_id.iloc[fitness_rows(len(table), args.archs, args.sample_seed)])
    fit = np.flatnonzero(merged.arch_id.isin(dps_cells).to_numpy())  # the cells DPS fits on
    held = np.setdiff1d(np.arange(len(merged)), fit)
    summary = []
    for task in TNB_TASKS:
        truth = merged[f"val_{task}"].to_numpy(dtype=float)
        own = decoded if decoded is not None and task in ("autoencoder", "normal") else merged
        mine = [c for c in components if c in own]  # the decoder pass has the first pass's only
        rows = [card_row(c, own[c], truth, float(own[f"{c}_s"].mean())) for c in mine]
        naslib = [
            card_row(f"naslib {z}", merged[f"naslib_{z}_{task}"], truth)
            for z in NASLIB_ZC
            if f"naslib_{z}_{task}" in merged
        ]
        best = max(naslib, key=lambda r: r["spearman"])
        rows.append(best)
        ens = few_shot(own, truth, fit, mine)[0]
        ens["proxy"] = f"ensemble (on {len(held)} held out)"
        rows.append(ens)
        searched = {}
        for name in ("eproxy", f"eproxy@tnb-{task}-dps", "gennas"):
            if name in merged:
                known = merged[name].notna().to_numpy() & ~merged.arch_id.isin(dps_cells)
                seconds = float(merged[f"{name}_s"].mean())
                searched[name] = card_row(name, merged[name][known], truth[known], seconds)
                rows.append(searched[name])
        pub = published[published.task == task].set_index("method")
        for method in ("eproxy", "eproxy_dps"):
            rows.append(
                {
                    "proxy": f"{method} (table 4.4)",
                    "spearman": pub.spearman[method],
                    "top10": pub.top10_retrieval[method],
                }
            )
        network = "autoencoder" if own is decoded else "class_scene"
        show(f"TransNAS-Bench-101 micro, {task} ({len(merged)} cells, {network} network)", rows)
        summary.append(
            {
                "task": task,
                "best ours": max(rows[: len(mine)], key=lambda r: r["spearman"])["spearman"],
                "ensemble": ens["spearman"],
                "eproxy": searched.get("eproxy", {}).get("spearman", np.nan),
                "eproxy+dps": searched.get(f"eproxy@tnb-{task}-dps", {}).get("spearman", np.nan),
                "gennas": searched.get("gennas", {}).get("spearman", np.nan),
                "naslib best": best["spearman"],
                "eproxy (4.4)": pub.spearman["eproxy"],
                "eproxy+dps (4.4)": pub.spearman["eproxy_dps"],
            }
        )
    df = pd.DataFrame(summary)
    print("\nSpearman rho per task (average last):")
    df.loc[len(df)] = {"task": "average", **df.drop(columns="task").mean().to_dict()}
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def nb301(args) -> None:
    table = pd.read_csv(DATA / "nasbench301_naslib.csv")
    space = SPACES.create("darts")
    table["arch_id"] = [space.arch_id(space.parse(g)) for g in table.genotype]
    extras = read_extra(args.extra)
    provided = extra_proxies(extras)  # e.g. eproxy on some of the cells
    command = [
        "--space", "darts", "--truth", str(DATA / "nasbench301_naslib.csv"),
        "--arch-column", "genotype", "--target", "val_acc_cifar10",
        "--proxies", *[c for c in args.components if c not in provided],
        "--batch-size", "64", "--limit", str(args.limit), "--workers", "1", "--chunk-size", "5",
        "--out", str(args.scores),
    ]  # fmt: skip
    scores = ensure_scores(Path(args.scores), command)
    merged = with_extra(proxy_frame(scores), extras)
    merged = merged.merge(table, on="arch_id")
    truth = merged.val_acc_cifar10.to_numpy(dtype=float)
    fit = fitness_rows(len(merged), args.archs, args.sample_seed)  # labelled: 20 of the scored
    held = np.setdiff1d(np.arange(len(merged)), fit)
    rows = few_shot(merged, truth, fit, args.components)
    naslib = [
        card_row(f"naslib {z}", merged[f"naslib_{z}_cifar10"].to_numpy()[held], truth[held])
        for z in NASLIB_ZC
        if f"naslib_{z}_cifar10" in merged
    ]
    rows.append(max(naslib, key=lambda r: r["spearman"]))
    for name in [p for p in provided if p not in args.components]:
        known = merged[name].notna().to_numpy().copy()
        known[fit] = False
        seconds = float(merged[f"{name}_s"].mean())
        rows.append(card_row(name, merged[name][known], truth[known], seconds))
    show(
        f"NAS-Bench-301 (DARTS, CIFAR-10 surrogate accuracy): {len(merged)} cells scored, "
        f"fitted on {len(fit)}, scored on the other {len(held)}",
        rows,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("section", choices=["nb201", "transnas", "nb301"])
    p.add_argument("--scores", required=True, help="a dse proxy-eval --out folder")
    p.add_argument(
        "--components",
        nargs="+",
        default=None,
        help=f"default nb201 and nb301 {COMPONENTS}, transnas {TNB_COMPONENTS}",
    )
    p.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="proxy-eval folders with more scores (eproxy, a component's own pass)",
    )
    p.add_argument(
        "--decoder-scores",
        default=None,
        help="transnas: a pass of the autoencoder network, used for autoencoder and normal",
    )
    p.add_argument("--archs", type=int, default=20, help="labelled cells the fits see")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=10, help="nb201: other random labelled sets")
    p.add_argument("--limit", type=int, default=0, help="transnas, nb301: cells scored (0: all)")
    p.add_argument("--resolution", type=int, default=32, help="transnas: input side")
    p.add_argument("--batch-size", type=int, default=32, help="transnas: proxy batch")
    args = p.parse_args(argv)
    if args.components is None:
        args.components = TNB_COMPONENTS if args.section == "transnas" else COMPONENTS
    warnings.filterwarnings("ignore", message=".*constant.*")  # a constant NASLib column
    {"nb201": nb201, "transnas": transnas, "nb301": nb301}[args.section](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
