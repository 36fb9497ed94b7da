"""Small long-range tasks that run on a CPU, from nothing but Python and scikit-learn.

* :func:`listops`: synthetic ListOps (Nangia & Bowman 2018, Long Range Arena's first task):
  nested ``[MAX``, ``[MIN``, ``[MED``, ``[SM`` (sum modulo 10) over digits, one token per digit,
  operator and closing bracket, seeded, padded to ``length``; the label is the value (10
  classes). ``MED`` of an even count takes the upper median (an integer; LRA rounds numpy's).
* :func:`seqdigits`: scikit-learn's 8x8 digits as 64-token pixel sequences (17 grey levels),
  optionally in one fixed random pixel order (permuted, as sMNIST's pMNIST variant).
* :func:`chars`: next-byte prediction on Python's own help text (``pydoc_data.topics``).

Each gives a :class:`SequenceData` whose train and test splits never share an example; the
``dse.spaces.sequence_blocks.TASKS`` presets describe their vocab, length and classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dse.training.tasks import TASKS, SequenceTask

PAD, DIGIT0, CLOSE = 0, 1, 15
OPERATORS = {"MAX": 11, "MIN": 12, "MED": 13, "SM": 14}


@dataclass(frozen=True)
class SequenceData:
    """Token ids (n, L) and labels: (n,) classes, or (n, L) next tokens for a language model."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    task: SequenceTask


def _apply(op: str, args: list[int]) -> int:
    if op == "MAX":
        return max(args)
    if op == "MIN":
        return min(args)
    if op == "MED":
        return sorted(args)[len(args) // 2]
    return sum(args) % 10


def _expression(rng: np.random.Generator, depth: int, max_depth: int, max_args: int):
    """(tokens, value) of a random expression."""
    if depth >= max_depth or (depth > 0 and rng.random() < 0.25):
        v = int(rng.integers(10))
        return [DIGIT0 + v], v
    op = str(rng.choice(list(OPERATORS)))
    tokens, values = [OPERATORS[op]], []
    for _ in range(int(rng.integers(2, max_args + 1))):
        t, v = _expression(rng, depth + 1, max_depth, max_args)
        tokens += t
        values.append(v)
    return tokens + [CLOSE], _apply(op, values)


def listops(
    n: int = 2000,
    length: int = 512,
    seed: int = 0,
    max_depth: int = 4,
    max_args: int = 5,
    test_fraction: float = 0.2,
    min_length: int = 0,
) -> SequenceData:
    """``n`` seeded ListOps expressions of ``min_length`` to ``length`` tokens, padded to
    ``length``. LRA keeps only expressions of 500 to 2,000 tokens, so that the task is long
    range; without a ``min_length`` most expressions are a few dozen tokens of padding's
    prefix."""
    if not 0 <= min_length <= length:
        raise ValueError(f"min_length: must be in [0, length = {length}], got {min_length}")
    rng = np.random.default_rng(seed)
    x = np.zeros((n, length), dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    i = 0
    while i < n:
        tokens, value = _expression(rng, 0, max_depth, max_args)
        if not min_length <= len(tokens) <= length or tuple(tokens) in seen:
            continue  # too short or long, or a repeat that could sit in both splits
        seen.add(tuple(tokens))
        x[i, : len(tokens)], y[i] = tokens, value
        i += 1
    task = SequenceTask(vocab=TASKS["listops"].vocab, length=length, classes=10)
    return _split(torch.from_numpy(x), torch.from_numpy(y), test_fraction, seed, task)


def seqdigits(seed: int = 0, permuted: bool = False, test_fraction: float = 0.2) -> SequenceData:
    """The 1,797 digits as 64 grey-level tokens each (row by row, or one fixed permutation)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images.reshape(len(data.images), 64), dtype=torch.long)
    if permuted:
        x = x[:, torch.from_numpy(np.random.default_rng(12345).permutation(64))]
    y = torch.tensor(data.target, dtype=torch.long)
    return _split(x, y, test_fraction, seed, TASKS["seqdigits"])


def chars(
    length: int = 256, n: int = 2000, seed: int = 0, test_fraction: float = 0.1
) -> SequenceData:
    """``n`` windows of ``length + 1`` bytes of ``pydoc_data.topics``: tokens and the next ones.
    Test windows come from the text's last ``test_fraction``, train windows from the rest."""
    from pydoc_data import topics

    text = "\n".join(topics.topics[k] for k in sorted(topics.topics)).encode("utf-8")
    data = torch.tensor(list(text), dtype=torch.long)
    cut = int(len(data) * (1 - test_fraction))
    rng = np.random.default_rng(seed)

    def windows(lo: int, hi: int, count: int):
        starts = torch.from_numpy(rng.integers(lo, hi - length - 1, size=count))
        seq = data[starts[:, None] + torch.arange(length + 1)[None]]
        return seq[:, :-1], seq[:, 1:]

    n_test = max(1, int(n * test_fraction))
    train_x, train_y = windows(0, cut, n - n_test)
    test_x, test_y = windows(cut, len(data), n_test)
    task = SequenceTask(vocab=256, length=length, classes=0)
    return SequenceData(train_x, train_y, test_x, test_y, task)


def _split(x, y, test_fraction: float, seed: int, task: SequenceTask) -> SequenceData:
    order = torch.from_numpy(np.random.default_rng(seed + 1).permutation(len(y)))
    n_test = max(1, int(round(test_fraction * len(y))))
    test, train = order[:n_test], order[n_test:]
    return SequenceData(x[train], y[train], x[test], y[test], task)


def _digits(permuted: bool):
    def load(length: int, seed: int) -> SequenceData:
        if length != 64:
            raise ValueError(f"length: seqdigits sequences are 64 tokens, got {length}")
        return seqdigits(seed, permuted=permuted)

    return load


#: task name -> loader(length, seed)
LOADERS = {
    "listops": lambda length, seed: listops(length=length, seed=seed),
    "seqdigits": _digits(False),
    "seqdigits_p": _digits(True),
    "chars": lambda length, seed: chars(length=length, seed=seed),
}


def load_task(name: str, length: int, seed: int = 0) -> SequenceData:
    """A task by name at ``length`` (``seqdigits_p``: the permuted digits)."""
    if name not in LOADERS:
        raise ValueError(f"task: {name!r} is not allowed; allowed values: {list(LOADERS)}")
    return LOADERS[name](length, seed)
