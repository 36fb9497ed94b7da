"""The sequence tasks' shapes (what a network reads and predicts), shared by the sequence spaces,
which size their networks by them, and :mod:`dse.training.sequence_tasks`, which generates them.
Torch-free: a space imports it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.space import SpaceError


@dataclass(frozen=True)
class SequenceTask:
    """What a network reads and predicts: token ids below ``vocab``, ``length`` of them, and
    ``classes`` labels (0: a language model, next-token logits at every position)."""

    vocab: int
    length: int
    classes: int

    def __post_init__(self):
        for name in ("vocab", "length"):
            if getattr(self, name) < 1:
                raise SpaceError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.classes < 0:
            raise SpaceError(f"classes: must be >= 0 (0: a language model), got {self.classes}")


#: the tasks :mod:`dse.training.sequence_tasks` generates (listops: padding, 10 digits, 4 operators
#: and the closing bracket; seqdigits: scikit-learn's 8x8 digits, 17 grey levels as 64 tokens,
#: seqdigits_p in a fixed random pixel order; chars: bytes of Python's help text)
TASKS = {
    "listops": SequenceTask(vocab=16, length=512, classes=10),
    "seqdigits": SequenceTask(vocab=17, length=64, classes=10),
    "seqdigits_p": SequenceTask(vocab=17, length=64, classes=10),
    "chars": SequenceTask(vocab=256, length=256, classes=0),
}


def task_of(task: str, vocab: int | None, length: int | None, classes: int | None) -> SequenceTask:
    """A preset of :data:`TASKS` with any of its fields overridden."""
    if task not in TASKS:
        raise SpaceError(f"task: {task!r} is not allowed; allowed values: {list(TASKS)}")
    base = TASKS[task]
    return SequenceTask(
        base.vocab if vocab is None else vocab,
        base.length if length is None else length,
        base.classes if classes is None else classes,
    )
