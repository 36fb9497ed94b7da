"""Medusa from training to real decoding on a CPU (dissertation 6.3): train, calibrate, tree,
decode, and how real decoding compares with the simulator's closed form.

1. train a byte-level decoder LM (4 layers, d = 128) on Python's own ``pydoc_data`` text, to
   convergence (1,200 steps, warmup-cosine);
2. Medusa-1 heads on the frozen backbone (eq. 6.1) and, on a copy, Medusa-2 (eq. 6.2:
   ``L_LM + 0.2 L_Medusa-1``, backbone at 5e-4 and heads at 4x, Medusa's settings), and a third
   copy fine-tuned the same way without the ``L_LM`` term: head top-1 accuracy and the
   backbone's validation loss of each, beside a control that trains the backbone on alone;
3. calibrate: measured per-head, per-rank accuracies on held-out text (the simulator's CSV);
4. trees: greedy sparse trees from the measured accuracies and dense trees, 8 to 128 nodes;
5. decode held-out prompts greedily with each tree: measured tokens per step against the closed
   form ``1 + sum prod a[k, i]`` from the measured accuracies (the gap measures the heads'
   independence assumption), and a check that every output equals vanilla greedy decoding.

    python benchmarks/medusa_real.py [--steps 1200] [--head-steps 300] [--out results/medusa_real]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from dse.catalogs.medusa_trees import (
    dense_tree,
    dense_tree_nodes,
    expected_acceptance,
    sparse_tree,
)
from dse.training.lm import (
    LMConfig,
    MedusaLM,
    accuracy_csv,
    corpus,
    head_accuracy,
    split,
    train_backbone,
    train_heads,
    validation_loss,
)
from dse.training.tree_decode import greedy, medusa_decode


def top1(acc) -> str:
    return " ".join(f"{v:.3f}" for v in acc.a[:, 0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1200, help="backbone training steps")
    ap.add_argument("--head-steps", type=int, default=300, help="steps of each head stage")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64, help="tokens decoded per prompt")
    ap.add_argument("--out", default="results/medusa_real")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train, val = split(corpus())
    cfg = LMConfig(layers=4, dim=128, heads=4, context=256, medusa_heads=4)
    base = MedusaLM(cfg)
    losses = train_backbone(base, train, steps=args.steps)
    v0 = validation_loss(base, val)
    print(
        f"1. backbone: train loss {losses[0]:.3f} -> {losses[-1]:.3f}, validation {v0:.4f} "
        f"nats/byte ({time.perf_counter() - start:.0f} s)"
    )

    m1 = copy.deepcopy(base)
    train_heads(m1, train, steps=args.head_steps)
    acc1 = head_accuracy(m1, val)
    m2 = copy.deepcopy(m1)  # Medusa-2 starts from the Medusa-1 heads (the heads warmup)
    train_heads(m2, train, steps=args.head_steps, joint=True, lambda0=0.2, lr=5e-4)
    acc2, v2 = head_accuracy(m2, val), validation_loss(m2, val)
    m0 = copy.deepcopy(m1)
    train_heads(m0, train, steps=args.head_steps, joint=True, lm_term=False, lr=5e-4)
    v_no_lm = validation_loss(m0, val)
    # the control: the backbone trained on alone, as long and at the same learning rate (what
    # any further LM training does to it; a converged backbone barely moves)
    lm_only = copy.deepcopy(base)
    train_backbone(lm_only, train, steps=args.head_steps, lr=5e-4, seed=2, warmup=40)
    v_lm = validation_loss(lm_only, val)
    print("2. heads (top-1 accuracy per head, on held-out text):")
    print(f"   Medusa-1 (frozen backbone): {top1(acc1)}")
    print(
        f"   Medusa-2 (L_LM + 0.2 L_Medusa-1): {top1(acc2)}; backbone validation "
        f"{v0:.4f} -> {v2:.4f} ({v2 / v0 - 1:+.2%})"
    )
    print(
        f"   joint without the L_LM term: backbone validation {v0:.4f} -> "
        f"{v_no_lm:.4f} ({v_no_lm / v0 - 1:+.2%})"
    )
    print(
        f"   control, the backbone trained on alone as long: {v0:.4f} -> {v_lm:.4f} "
        f"({v_lm / v0 - 1:+.2%})"
    )

    model, acc = m2.double().eval(), acc2
    (out / "head_accuracy.csv").write_text(accuracy_csv(acc))
    print(f"3. calibrated: {out / 'head_accuracy.csv'} (load_head_accuracy('medusa-lm', path))")

    trees = [(f"sparse {n}", sparse_tree(acc, n)) for n in (8, 16, 32, 64, 128)]
    for sizes in ((2, 2, 2), (3, 3, 2), (4, 3, 2, 1), (5, 4, 3)):
        trees.append((f"dense {sizes} ({dense_tree_nodes(sizes)})", dense_tree(sizes)))
    print("4-5. decoding held-out prompts, greedy acceptance: tokens per step")
    print(f"   {'tree':24s} {'nodes':>5s} {'measured':>9s} {'closed form':>11s} {'gap':>7s} exact")
    prompts = [val[i * 997 : i * 997 + 48].tolist() for i in range(args.prompts)]
    vanilla = [greedy(model, p, args.tokens).tokens for p in prompts]
    for name, tree in trees:
        runs = [medusa_decode(model, p, args.tokens, tree) for p in prompts]
        steps = sum(len(r.accepted) for r in runs)
        measured = sum(sum(r.accepted) for r in runs) / steps
        closed = expected_acceptance(tree, acc)
        exact = all(r.tokens == v for r, v in zip(runs, vanilla))
        print(
            f"   {name:24s} {len(tree):5d} {measured:9.3f} {closed:11.3f} "
            f"{measured / closed - 1:+7.1%} {exact}"
        )
    print(f"whole pipeline: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
