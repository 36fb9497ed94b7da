"""SGConv (dissertation chapter 5) on this CPU: speed, small long-range tasks, decay, pruning,
the order of attention and SGConv layers, and an NSGA-II search of the hybrid space.

Sections (``--only`` picks some; all by default):

* ``speed``: the torch SGConv layer (128 channels, d = 8, causal) and a one-head attention layer
  over the same (batch, L, C) input, inference ms per batch for L = 256..16384 on this CPU,
  beside the GPU simulator's prediction of the same single op on an A100 at the same batch,
  with the growth per doubling of L against table 5.3 (SGConv, about 2x) and table 5.6
  (attention, 3-4x). Attention stops where its scores would pass ``--attention-gb``. Last, the
  simulator's A100 ms for SGConv's block at table 5.3's batch of 64 beside that table's GPU row.
* ``tasks``: a 4-layer SGConv network against a Transformer of the same depth and width (the
  hybrid space with every slot attention), on sequential digits (64 tokens) and ListOps, three
  seeds, mean and spread of test accuracy.
* ``decay``: eq. 5.2's decay t = 1 against t = 0 (no decay) on ListOps, three seeds (fig. 5.4).
* ``pruning``: one trained SGConv model's test accuracy with 10-90% of every kernel pruned by
  magnitude and by tail (fig. 5.10), printed and plotted (``pruning.png``).
* ``orders``: 8-slot hybrid stacks with 4 SGConv blocks, at least 20 seeded orders trained as a
  character-level LM on ``pydoc_data``, attention short-range as 5.4.3's SAttention (a window of
  ``--window`` tokens; SGConv sees the whole input); Spearman of the SGConv blocks' average
  depth against validation loss (fig. 5.6b: negative, deeper SGConv is better), per training seed
  (``--seeds``), for the mean loss, and between two seeds' losses (how far the seed moves the
  ranking of the orders).
* ``nsga``: NSGA-II over the 8-slot hybrid space with any number of SGConv blocks (with a fixed
  count every order costs the same), validation loss (trained at the training length) against
  A100 latency at L = 4096 (the GPU simulator's ``sequence_length``), its Pareto table.

    python benchmarks/sgconv.py [--only speed tasks ...] [--seeds 3] [--out results/sgconv]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dse.graph import GraphBuilder
from dse.registry import PROXIES, SIMULATORS, SPACES
from dse.spaces.sequence_blocks import sgconv_mixer
from dse.training.sequence import Attention, SGConv, prune_sgconv
from dse.training.sequence_tasks import listops, seqdigits
from dse.training.sequence_train import fit_sequence, score_sequence, train_sequence

TABLE_5_3_CPU = dict(
    zip((256, 512, 1024, 2048, 4096, 8192, 16384), (23.8, 56.2, 108.7, 211.3, 409.3, 789.5, 1559.3))
)
TABLE_5_3_GPU = dict(
    zip((256, 512, 1024, 2048, 4096, 8192, 16384), (1.2, 1.3, 2.3, 4.4, 8.5, 19.8, 39.4))
)
TABLE_5_6_ATTENTION = dict(zip((256, 512, 1024, 2048), (2.6, 7.3, 23.2, 91.7)))
# long expressions, as LRA keeps only 500-2,000 tokens (unfiltered, the mean is a few dozen)
LISTOPS = dict(n=30000, length=256, min_length=64, max_depth=3, max_args=8)
TRAIN = dict(lr=3e-3, batch_size=32)
TRAIN_STEPS = {"seqdigits": 600, "listops": 3000}  # ListOps learns slowly (LRA: 40+ epochs)
DECAY_D = 8  # fig. 5.4 fixes d = 8 while it varies t
HYBRID_LENGTH = 128  # the hybrid LM's training length (its latency is costed at 4096)


def _best_ms(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _gpu_ms(kind: str, length: int, channels: int, batch: int) -> float:
    """The GPU simulator's A100 ms for one op (``sgconv``, ``attention``) or, for ``block``,
    S4's and SGConv's LRA block as table 5.3 times it: ``x + Linear(GELU(SGConv(LN(x))))``."""
    b = GraphBuilder(kind)
    if kind == "attention":
        b.attention(b.input((length, 3 * channels)), heads=1, mode="causal")
    elif kind == "sgconv":
        b.sgconv(b.input((length, channels)), 8, "causal")
    else:
        sgconv_mixer(b, b.input((length, channels)), channels, 8, "causal", "alpha", 0.5)
    sim = SIMULATORS.create("gpu", device="A100-80GB-PCIe", batch_size=batch)
    return float(sim.evaluate(b.build(), {}, None)["gpu_latency_ms"])  # type: ignore[arg-type]


def speed(args) -> None:
    c, batch = 128, args.batch
    print(
        f"speed: inference ms per batch of {batch}, 128 channels (SGConv d = 8, causal; "
        "attention one head, causal)"
    )
    print(
        f"  {'L':>6s} {'SGConv CPU':>11s} {'x':>5s} {'table 5.3':>9s} {'attn CPU':>9s} {'x':>5s} "
        f"{'A100 SGConv':>11s} {'x':>5s} {'A100 attn':>10s} {'x':>5s} {'table 5.6':>9s} "
        f"{'A100 block b64':>14s} {'x':>5s} {'table 5.3 GPU':>13s} {'x':>5s}"
    )
    prev: dict[str, float] = {}
    attention_alive = True
    for length in (256, 512, 1024, 2048, 4096, 8192, 16384):
        x = torch.randn(batch, length, c)
        layer = SGConv(c, length, 8)
        with torch.no_grad():
            sg = _best_ms(lambda layer=layer, x=x: layer(x))
            att = float("nan")
            scores_gb = 2 * batch * length**2 * 4 / 1e9
            if attention_alive and scores_gb <= args.attention_gb:
                qkv = torch.randn(batch, length, 3 * c)
                mixer = Attention(1)
                att = _best_ms(
                    lambda mixer=mixer, qkv=qkv: mixer(qkv), repeats=2 if length >= 4096 else 3
                )
            else:
                attention_alive = False
        g_sg, g_att = _gpu_ms("sgconv", length, c, batch), _gpu_ms("attention", length, c, batch)
        block = _gpu_ms("block", length, c, 64)
        row = {"sg": sg, "att": att, "gsg": g_sg, "gatt": g_att, "block": block}
        row["t53"] = TABLE_5_3_GPU[length]
        grow = {
            k: (v / prev[k] if k in prev and prev[k] == prev[k] else float("nan"))
            for k, v in row.items()
        }
        prev = row
        print(
            f"  {length:6d} {sg:11.1f} {grow['sg']:5.2f} {TABLE_5_3_CPU[length]:9.1f} "
            f"{att:9.1f} {grow['att']:5.2f} {g_sg:11.3f} {grow['gsg']:5.2f} {g_att:10.3f} "
            f"{grow['gatt']:5.2f} {TABLE_5_6_ATTENTION.get(length, float('nan')):9.1f} "
            f"{block:14.3f} {grow['block']:5.2f} {row['t53']:13.1f} {grow['t53']:5.2f}"
        )


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {sd:.3f}"


def _sgconv_graph(task: str, length: int, decay: str = "alpha=0.5", prune: float = 0.0, d: int = 4):
    space = SPACES["sgconv"](task=task, length=length, decay=(decay,), prune=(prune,), d=(d,))
    arch = {
        "layers": 4,
        "channels": 64,
        "d": d,
        "decay": decay,
        "bidirectional": True,
        "prune": prune,
    }
    return space.to_graph(arch)


def _transformer_graph(task: str, length: int):
    space = SPACES["hybrid"](
        task=task, length=length, slots=4, channels=64, heads=4, bidirectional=True
    )
    return space.to_graph({f"slot{i}": "A" for i in range(4)})


def _listops(seed: int):
    return listops(seed=seed, **LISTOPS)


def _train(task: str) -> dict:
    return dict(TRAIN, steps=TRAIN_STEPS[task])


def _loaders():
    """task -> (data of a seed, sequence length)"""
    return {
        "seqdigits": (lambda seed: seqdigits(seed=seed), 64),
        "listops": (_listops, LISTOPS["length"]),
    }


def tasks(args) -> None:
    print(
        f"tasks: 4 layers x 64 channels, AdamW steps {TRAIN_STEPS}, test accuracy over "
        f"{args.seeds} seeds (ListOps: {LISTOPS})"
    )
    for name, (load, length) in _loaders().items():
        for label, graph in (
            ("SGConv", _sgconv_graph(name, length)),
            ("Transformer", _transformer_graph(name, length)),
        ):
            accs, secs = [], []
            for seed in range(args.seeds):
                s = train_sequence(graph, load(seed), seed=seed, **_train(name))
                accs.append(s.accuracy)
                secs.append(s.seconds)
            print(
                f"  {name:10s} {label:12s} {_mean_sd(accs)}   ({statistics.mean(secs):.0f} s "
                f"per model; {' '.join(f'{a:.3f}' for a in accs)})"
            )


def decay(args) -> None:
    print(
        f"decay (eq. 5.2, fig. 5.4's d = {DECAY_D}): SGConv 4 x 64, t = 1 against t = 0 (no "
        f"decay), test accuracy over {args.seeds} seeds:"
    )
    for name, (load, length) in _loaders().items():
        for t in ("t=1", "t=0"):
            graph = _sgconv_graph(name, length, t, d=DECAY_D)
            accs = [
                train_sequence(graph, load(seed), seed=seed, **_train(name)).accuracy
                for seed in range(args.seeds)
            ]
            print(f"  {name:10s} {t}: {_mean_sd(accs)} ({' '.join(f'{a:.3f}' for a in accs)})")


def pruning(args) -> None:
    data = seqdigits(seed=0)
    net = fit_sequence(_sgconv_graph("seqdigits", 64), data, seed=0, **_train("seqdigits"))
    base = score_sequence(net, data)[0]
    ratios = [round(0.1 * i, 1) for i in range(1, 10)]
    curves = {
        m: [score_sequence(prune_sgconv(net, r, m), data)[0] for r in ratios]
        for m in ("magnitude", "tail")
    }
    print(f"pruning: SGConv 4 x 64 on sequential digits, test accuracy {base:.3f} unpruned")
    print("  ratio      " + " ".join(f"{r:6.1f}" for r in ratios))
    for m, accs in curves.items():
        print(f"  {m:10s} " + " ".join(f"{a:6.3f}" for a in accs))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for m, accs in curves.items():
        ax.plot([0.0] + ratios, [base] + accs, marker="o", label=m)
    ax.set_xlabel("pruning ratio of every SGConv kernel")
    ax.set_ylabel("test accuracy")
    ax.set_title("SGConv kernel pruning (sequential digits)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "pruning.png", dpi=120)
    print(f"  plot: {args.out / 'pruning.png'}")


def _hybrid(window: int):
    return SPACES["hybrid"](
        task="chars", length=HYBRID_LENGTH, sgconv_count=4, channels=64, heads=4, window=window
    )


def orders(args) -> None:
    space = _hybrid(args.window)
    rng = np.random.default_rng(0)
    seen, archs = set(), []
    for order in ("AAAACCCC", "CCCCAAAA"):
        seen.add(order)
        archs.append({f"slot{i}": order[i] for i in range(8)})
    while len(archs) < args.orders:
        arch = space.decode(space.sample_encodings(rng, 1)[0])
        if space.order(arch) not in seen:
            seen.add(space.order(arch))
            archs.append(arch)
    providers = [
        PROXIES.create("trained_accuracy", steps=args.lm_steps, sequence_lr=TRAIN["lr"], seed=s)
        for s in range(args.seeds)
    ]  # one training seed each: how far the ranking of orders moves with the seed
    mix = PROXIES.create("layer_mix")
    rows = []
    for arch in archs:
        g = space.to_graph(arch)
        losses = [p.evaluate(g, arch, space)["trained_loss"] for p in providers]
        rows.append((space.order(arch), mix.evaluate(g, arch, space)["sgconv_depth"], losses))
    from scipy.stats import spearmanr

    depth = [r[1] for r in rows]
    per_seed = np.array([r[2] for r in rows])  # orders x seeds
    mean = per_seed.mean(axis=1)
    print(
        f"orders: {len(rows)} hybrid stacks (4 A + 4 C, 64 channels, L = {HYBRID_LENGTH}, "
        f"attention window {args.window or 'none'}), character LM on pydoc_data, "
        f"{args.lm_steps} steps, {args.seeds} training seed(s)"
    )
    for (order, d, losses), m in sorted(zip(rows, mean), key=lambda r: r[0][1]):
        each = " ".join(f"{v:.4f}" for v in losses)
        print(f"  {order}  SGConv depth {d:5.3f}  validation loss {m:.4f} nats/byte ({each})")
    for s in range(args.seeds):
        rho = float(spearmanr(depth, per_seed[:, s])[0])
        print(f"  seed {s}: Spearman(average SGConv depth, validation loss) = {rho:+.3f}")
    rho = float(spearmanr(depth, mean)[0])
    print(f"  mean over seeds: Spearman = {rho:+.3f} (fig. 5.6b: negative)")
    if args.seeds > 1:  # does a second seed rank the orders alike?
        agree = float(spearmanr(per_seed[:, 0], per_seed[:, 1])[0])
        print(f"  Spearman between seed 0's and seed 1's losses over the orders = {agree:+.3f}")
    (args.out / "orders.json").write_text(json.dumps(rows))


def nsga(args) -> None:
    import dse

    cfg = {
        "run": {"name": "hybrid-nsga", "seed": 0},
        "space": {
            "name": "hybrid",
            "task": "chars",
            "length": HYBRID_LENGTH,
            "channels": 64,
            "heads": 4,
        },
        "proxies": {
            "trained_accuracy": {"steps": args.lm_steps, "sequence_lr": TRAIN["lr"]},
            "layer_mix": {},
        },
        "simulators": {
            "gpu": {"device": "A100-80GB-PCIe", "batch_size": 1, "sequence_length": 4096}
        },
        "objectives": [
            {"metric": "trained_loss", "direction": "min"},
            {"metric": "gpu_latency_ms", "direction": "min"},
        ],
        "search": {
            "driver": "pymoo",
            "algorithm": "nsga2",
            "pop_size": 8,
            "max_evaluations": args.nsga_evaluations,
        },
    }
    result = dse.run(cfg, output=args.out / "nsga", progress=False)
    df = result.load()
    df = df[df.status == "ok"]
    pts = df[["trained_loss", "gpu_latency_ms"]].to_numpy()
    front = [i for i, p in enumerate(pts) if not any((q <= p).all() and (q < p).any() for q in pts)]
    print(
        f"nsga: {len(df)} architectures evaluated ({result.proposals} proposals), Pareto front "
        "of validation loss against A100 latency at L = 4096 (batch 1):"
    )
    print(f"  {'order':10s} {'loss':>7s} {'A100 ms':>8s} {'SGConv layers':>13s} {'depth':>6s}")
    for i in sorted(front, key=lambda i: pts[i][1]):
        r = df.iloc[i]
        print(
            f"  {r.arch_id:10s} {r.trained_loss:7.4f} {r.gpu_latency_ms:8.3f} "
            f"{r.sgconv_layers:13.0f} {r.sgconv_depth:6.3f}"
        )


SECTIONS = {
    "speed": speed,
    "tasks": tasks,
    "decay": decay,
    "pruning": pruning,
    "orders": orders,
    "nsga": nsga,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(SECTIONS), default=list(SECTIONS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="speed: batch size (table 5.3: 64)")
    ap.add_argument(
        "--attention-gb",
        type=float,
        default=4.0,
        help="speed: largest attention score memory to run on this CPU",
    )
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument(
        "--window",
        type=int,
        default=HYBRID_LENGTH // 8,
        help="orders: attention window in tokens (5.4.3's SAttention sees 384 of 3,092; 0: all)",
    )
    ap.add_argument("--lm-steps", type=int, default=600, help="orders, nsga: LM training steps")
    ap.add_argument("--nsga-evaluations", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/sgconv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in args.only:
        t = time.perf_counter()
        SECTIONS[name](args)
        print(f"  ({name}: {time.perf_counter() - t:.0f} s)\n", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
