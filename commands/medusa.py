"""``dse medusa train | calibrate | tree | decode``: Medusa from training to real decoding on a
CPU (dissertation 6.3), each step's output the next one's input.

    dse medusa train --out lm.pt [--steps 300] [--head-steps 300] [--medusa 2]
    dse medusa calibrate --model lm.pt --out heads.csv       # the simulator's CSV format
    dse medusa tree --accuracy heads.csv --nodes 63 --out tree.json [--ranks 10]
    dse medusa decode --model lm.pt --tree tree.json --prompt "def " [--rule typical]

``heads.csv`` is what ``[simulators.medusa] accuracy_file`` and ``load_head_accuracy`` read;
``tree.json`` is Medusa's list-of-paths format. torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
from pathlib import Path

from dse import outputs
from dse.inputs import read_table
from dse.params import ConfigError
from dse.registry import COMMANDS


def _load_model(path: str):
    import torch

    from dse.training.lm import LMConfig, MedusaLM

    try:
        saved = torch.load(path, weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"--model: cannot read {path!r}: {exc}") from None
    model = MedusaLM(LMConfig(**saved["config"]))
    model.load_state_dict(saved["state"])
    return model.eval()


@COMMANDS.register("medusa")
class MedusaCommand:
    """Medusa on a small LM: train | calibrate | tree | decode (the training-to-decoding path)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        steps = p.add_subparsers(dest="medusa_step", required=True)
        t = steps.add_parser("train", help="train the LM on pydoc_data, then its Medusa heads")
        t.add_argument("--out", required=True, help="model file to write (.pt)")
        t.add_argument("--force", action="store_true", help="replace an existing --out")
        t.add_argument(
            "--steps", type=int, default=1200, help="backbone training steps (1,200: converged)"
        )
        t.add_argument("--head-steps", type=int, default=300, help="head training steps")
        t.add_argument(
            "--medusa",
            type=int,
            choices=(1, 2),
            default=2,
            help="1: heads on the frozen backbone (eq. 6.1); 2: joint (eq. 6.2)",
        )
        t.add_argument("--layers", type=int, default=4)
        t.add_argument("--dim", type=int, default=128)
        t.add_argument("--heads", type=int, default=4, help="Medusa heads")
        t.add_argument("--batch", type=int, default=32, help="sequences per training step")
        t.add_argument("--length", type=int, default=128, help="bytes per training sequence")
        t.add_argument("--seed", type=int, default=0)
        c = steps.add_parser("calibrate", help="measured head accuracies on held-out text (CSV)")
        c.add_argument("--model", required=True)
        c.add_argument("--out", required=True, help="CSV in load_head_accuracy's format")
        c.add_argument("--force", action="store_true", help="replace an existing --out")
        tr = steps.add_parser("tree", help="the greedy sparse tree for measured accuracies")
        tr.add_argument("--accuracy", required=True, help="CSV from dse medusa calibrate")
        tr.add_argument("--nodes", type=int, default=63)
        tr.add_argument("--ranks", type=int, default=None, help="candidates per head (tail)")
        tr.add_argument("--out", required=True, help="tree JSON (list of paths)")
        tr.add_argument("--force", action="store_true", help="replace an existing --out")
        d = steps.add_parser("decode", help="decode a prompt with the tree, and check it")
        d.add_argument("--model", required=True)
        d.add_argument("--tree", required=True, help="tree JSON (list of paths)")
        d.add_argument("--prompt", default="def ")
        d.add_argument("--tokens", type=int, default=64)
        d.add_argument("--rule", choices=("greedy", "typical"), default="greedy")
        d.add_argument("--temperature", type=float, default=0.7)

    def run(self, args: argparse.Namespace) -> int:
        if args.medusa_step != "decode":  # before any training or reading: nothing written
            outputs.claim(args.out, "--out", args.force)
        return {"train": _train, "calibrate": _calibrate, "tree": _tree, "decode": _decode}[
            args.medusa_step
        ](args)


def _train(args) -> int:
    import torch

    from dse.training.lm import (
        LMConfig,
        MedusaLM,
        corpus,
        split,
        train_backbone,
        train_heads,
        validation_loss,
    )

    for name in ("steps", "head_steps", "layers", "dim", "heads", "batch", "length"):
        if getattr(args, name) < 1:
            raise ConfigError(
                f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}"
            )
    torch.manual_seed(args.seed)
    train, val = split(corpus())
    config = LMConfig(layers=args.layers, dim=args.dim, medusa_heads=args.heads)
    model = MedusaLM(config)
    shape = {"batch": args.batch, "length": args.length}
    train_backbone(model, train, steps=args.steps, seed=args.seed, **shape)
    before = validation_loss(model, val)
    train_heads(model, train, steps=args.head_steps, seed=args.seed + 1, **shape)  # Medusa-1
    if args.medusa == 2:
        train_heads(  # eq. 6.2 at Medusa's settings: backbone 5e-4, heads 4x, lambda_0 0.2
            model, train, steps=args.head_steps, joint=True, lr=5e-4, seed=args.seed + 2, **shape
        )
    after = validation_loss(model, val)
    saved = io.BytesIO()
    torch.save({"config": dataclasses.asdict(config), "state": model.state_dict()}, saved)
    outputs.write(args.out, saved.getvalue())
    print(
        f"wrote {args.out}: validation {before:.4f} -> {after:.4f} nats/byte (Medusa-{args.medusa})"
    )
    return 0


def _calibrate(args) -> int:
    from dse.training.lm import accuracy_csv, corpus, head_accuracy, split

    _, val = split(corpus())
    acc = head_accuracy(_load_model(args.model), val)
    outputs.write(args.out, accuracy_csv(acc))
    print(f"wrote {args.out}: top-1 accuracy per head {[round(float(v), 3) for v in acc.a[:, 0]]}")
    return 0


def _tree(args) -> int:
    from dse.catalogs.medusa_heads import load_head_accuracy
    from dse.catalogs.medusa_trees import expected_acceptance, sparse_tree

    if args.nodes < 1:
        raise ConfigError(f"--nodes: must be >= 1, got {args.nodes}")
    read_table(args.accuracy, "--accuracy")  # missing, empty or not a table: one line
    try:
        acc = load_head_accuracy("medusa-lm", args.accuracy)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--accuracy: {exc}") from None
    try:
        tree = sparse_tree(acc, args.nodes, ranks=args.ranks)
    except ValueError as exc:
        raise ConfigError(f"--nodes/--ranks: {exc}") from None
    outputs.write(args.out, json.dumps([list(p) for p in tree.paths]))
    print(
        f"wrote {args.out}: {len(tree)} nodes, {expected_acceptance(tree, acc):.3f} expected "
        "tokens per step"
    )
    return 0


def _decode(args) -> int:
    from dse.catalogs.medusa_trees import Tree
    from dse.training.tree_decode import greedy, medusa_decode

    try:
        tree = Tree.from_paths(Path(args.tree).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--tree: {exc}") from None
    model = _load_model(args.model).double()
    prompt = list(args.prompt.encode("utf-8"))
    got = medusa_decode(
        model, prompt, args.tokens, tree, rule=args.rule, temperature=args.temperature
    )
    print(bytes(got.tokens).decode("utf-8", errors="replace"))
    line = f"{got.tokens_per_step:.3f} tokens per step over {len(got.accepted)} steps"
    if args.rule == "greedy":
        same = got.tokens == greedy(model, prompt, args.tokens).tokens
        line += f"; equal to vanilla greedy decoding: {same}"
    print(line)
    return 0
