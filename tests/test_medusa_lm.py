"""A real small LM with Medusa heads: tree decoding is exact, typical acceptance at zero
temperature is greedy, and measured head accuracies feed the simulator."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dse.catalogs.medusa_heads import load_head_accuracy  # noqa: E402
from dse.catalogs.medusa_trees import Tree, dense_tree, sparse_tree  # noqa: E402
from dse.training.lm import (  # noqa: E402
    LMConfig,
    MedusaLM,
    accuracy_csv,
    corpus,
    head_accuracy,
    split,
    train_backbone,
    train_heads,
)
from dse.training.tree_decode import greedy, medusa_decode  # noqa: E402

PROMPTS = [b"def ", b"The ", b"class A:\n    ", b"import "]


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train, val = split(corpus())
    model = MedusaLM(LMConfig(layers=1, dim=48, heads=4, context=128, medusa_heads=3))
    train_backbone(model, train, steps=120, batch=16, length=48)
    train_heads(model, train, steps=120, batch=16, length=48)
    acc = head_accuracy(model, val, length=48, batches=4)
    return model.double().eval(), acc


@pytest.mark.slow
def test_greedy_medusa_decoding_emits_exactly_the_vanilla_greedy_tokens(trained):
    model, acc = trained
    trees = [sparse_tree(acc, 15), dense_tree((3, 2, 2)), Tree.from_paths([[0], [0, 0], [1]])]
    longest = 1
    for prompt in PROMPTS:
        want = greedy(model, list(prompt), 30).tokens
        for tree in trees:
            got = medusa_decode(model, list(prompt), 30, tree)
            assert got.tokens == want, (prompt, tree.paths[:4])
            longest = max(longest, max(got.accepted))
    assert longest >= 3  # the tree's deeper candidates really were accepted


def test_typical_acceptance_at_zero_temperature_is_greedy(trained):
    model, acc = trained
    tree = sparse_tree(acc, 15)
    for prompt in PROMPTS[:2]:
        g = medusa_decode(model, list(prompt), 30, tree)
        t = medusa_decode(model, list(prompt), 30, tree, rule="typical", temperature=1e-6)
        assert t.tokens == g.tokens and t.accepted == g.accepted


def test_measured_head_accuracies_are_what_the_simulator_reads(trained, tmp_path):
    model, acc = trained
    assert acc.heads == 3 and acc.ranks == 5 and (acc.a.sum(axis=1) <= 1).all()
    path = tmp_path / "heads.csv"
    path.write_text(accuracy_csv(acc))
    loaded = load_head_accuracy("medusa-lm", path)
    assert abs(loaded.a - acc.a).max() < 1e-6
    assert len(sparse_tree(loaded, 10)) == 10


def test_dse_medusa_train_calibrate_tree_decode(tmp_path, capsys):
    """The CLI path: each step's output the next one's input."""
    from dse.cli import main

    lm, csv, tree = tmp_path / "lm.pt", tmp_path / "heads.csv", tmp_path / "tree.json"
    small = [
        "--steps",
        "30",
        "--head-steps",
        "30",
        "--layers",
        "1",
        "--dim",
        "32",
        "--heads",
        "3",
        "--batch",
        "8",
        "--length",
        "32",
    ]
    assert main(["medusa", "train", "--out", str(lm), *small]) == 0
    assert main(["medusa", "calibrate", "--model", str(lm), "--out", str(csv)]) == 0
    assert load_head_accuracy("medusa-lm", csv).heads == 3
    assert (
        main(["medusa", "tree", "--accuracy", str(csv), "--nodes", "15", "--out", str(tree)]) == 0
    )
    assert len(Tree.from_paths(tree.read_text())) == 15
    capsys.readouterr()
    # each step's file is kept: run again, it is one line naming --out, the file as it was
    before = lm.read_bytes()
    assert main(["medusa", "train", "--out", str(lm), *small]) == 2 and lm.read_bytes() == before
    assert "--out: " in capsys.readouterr().err
    tree_again = ["medusa", "tree", "--accuracy", str(csv), "--nodes", "7", "--out", str(tree)]
    assert main(tree_again) == 2 and len(Tree.from_paths(tree.read_text())) == 15
    assert main([*tree_again, "--force"]) == 0 and len(Tree.from_paths(tree.read_text())) == 7
    assert main([*tree_again[:-4], "--nodes", "15", "--out", str(tree), "--force"]) == 0
    capsys.readouterr()
    assert (
        main(["medusa", "decode", "--model", str(lm), "--tree", str(tree), "--tokens", "24"]) == 0
    )
    assert "equal to vanilla greedy decoding: True" in capsys.readouterr().out
    assert main(["medusa", "decode", "--model", str(tmp_path / "no.pt"), "--tree", str(tree)]) == 2
