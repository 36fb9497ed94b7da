"""Sequence networks of the IR: token stem, SGConv and attention blocks, heads (dissertation 5.4).

A network reads ``length`` token ids and is ``embedding -> [position] -> blocks -> head``. Both
blocks are pre-norm residual blocks with the Transformer's layout, differing in the mixer
(fig. 5.5 shows the SGConv block "similar to the Attention block in Transformer"; the figure
itself is not in the text, so the layout below is the S4/SGConv code base's):

* SGConv block: ``x + Linear(GELU(SGConv(LN(x))))``, then ``x + FFN(LN(x))``;
* attention block: ``x + Linear(Attention(Linear_3C(LN(x))))``, then ``x + FFN(LN(x))``;
* FFN: ``Linear_2C -> GELU -> Linear_C`` (expansion 2, small enough for CPU training);
* head: classification ``LN -> mean over positions -> Linear_classes``; language model
  ``LN -> Linear_vocab`` at every position.

Assumed where the text is silent: the SGConv code base's output projection is a GLU over 2C
channels; here it is one C x C linear (the IR has no GLU op), and a learned position embedding is
added only when a network has attention (SGConv is position-aware by its kernel).
"""

from __future__ import annotations

from dse.graph import GraphBuilder
from dse.space import SpaceError
from dse.training.tasks import SequenceTask

#: FFN expansion of every block
FFN_EXPANSION = 2


def stem(b: GraphBuilder, task: SequenceTask, channels: int, positions: bool) -> int:
    x = b.input((task.length,), "tokens")
    h = b.embedding(x, task.vocab, channels)
    return b.position(h) if positions else h


def _ffn(b: GraphBuilder, h: int, channels: int) -> int:
    y = b.linear(b.act(b.linear(b.norm(h, "layer"), FFN_EXPANSION * channels), "gelu"), channels)
    return b.sum(h, y)


def sgconv_mixer(
    b: GraphBuilder,
    h: int,
    channels: int,
    d: int,
    mode: str,
    decay: str,
    rate: float,
    prune: float = 0.0,
) -> int:
    """``x + Linear(GELU(SGConv(LN(x))))``: the SGConv block's first half, S4's LRA block."""
    y = b.sgconv(b.norm(h, "layer"), d, mode, decay=decay, rate=rate, prune=prune)
    return b.sum(h, b.linear(b.act(y, "gelu"), channels))


def sgconv_block(
    b: GraphBuilder,
    h: int,
    channels: int,
    d: int,
    mode: str,
    decay: str,
    rate: float,
    prune: float = 0.0,
) -> int:
    h = sgconv_mixer(b, h, channels, d, mode, decay, rate, prune)
    return _ffn(b, h, channels)


def attention_block(
    b: GraphBuilder, h: int, channels: int, heads: int, mode: str, window: int = 0
) -> int:
    qkv = b.linear(b.norm(h, "layer"), 3 * channels)
    h = b.sum(h, b.linear(b.attention(qkv, heads, window, mode), channels))
    return _ffn(b, h, channels)


def head(b: GraphBuilder, h: int, task: SequenceTask) -> int:
    h = b.norm(h, "layer")
    if task.classes == 0:
        return b.linear(h, task.vocab)
    return b.linear(b.seq_pool(h, "avg"), task.classes)


def parse_decay(value: str) -> tuple[str, float]:
    """``"alpha=0.5"`` (eq. 5.1) or ``"t=1"`` (eq. 5.2) as (decay, rate)."""
    name, _, number = value.partition("=")
    kinds = {"alpha": "alpha", "t": "power"}
    try:
        return kinds[name], float(number)
    except (KeyError, ValueError):
        raise SpaceError(
            f"decay: {value!r} is not allowed; write alpha=<float> (eq. 5.1) or t=<float> (5.2)"
        ) from None
