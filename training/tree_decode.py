"""Real tree decoding with Medusa heads (dissertation 6.3.2-6.3.3), on :class:`~.lm.MedusaLM`.

Each step: the backbone's greedy (or sampled) next token is the tree's root; a node on path
``(i_1, ..., i_k)`` carries head ``k``'s rank-``i_k`` prediction from the last accepted position.
All ``q`` candidates go through the model in one forward pass, at positions ``s + depth`` and
with a mask that lets each attend to the cache and to its own ancestors (the tree attention of
6.3.2, the same :func:`~dse.catalogs.medusa_trees.attention_mask` semantics). A candidate is
accepted when its parent is and it is the greedy token after its parent (greedy acceptance), or
when its probability there beats ``min(epsilon, delta * exp(-entropy))`` at ``temperature``
(typical acceptance, 6.3.3.1). The deepest accepted node wins; the KV cache keeps the entries of
its path and drops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dse.catalogs.medusa_trees import Tree
from dse.training.lm import MedusaLM


@dataclass
class Decoded:
    tokens: list[int]
    accepted: list[int] = field(default_factory=list)  # tokens per step (the root included)

    @property
    def tokens_per_step(self) -> float:
        return sum(self.accepted) / max(1, len(self.accepted))


@torch.no_grad()
def greedy(model: MedusaLM, prompt: list[int], new_tokens: int) -> Decoded:
    """Vanilla greedy decoding with a KV cache: one token per step."""
    logits, _, _, cache = model(torch.tensor([prompt]))
    out: list[int] = []
    while len(out) < new_tokens:
        token = int(logits[0, -1].argmax())
        out.append(token)
        logits, _, _, cache = model(torch.tensor([[token]]), cache=cache)
    return Decoded(out, [1] * len(out))


def _accepts(
    logits: torch.Tensor, token: int, rule: str, temperature: float, epsilon: float, delta: float
) -> bool:
    if rule == "greedy":
        return int(logits.argmax()) == token
    p = torch.softmax(logits / temperature, dim=-1)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return bool(p[token] > min(epsilon, delta * float(torch.exp(-entropy))))


def _next_token(logits: torch.Tensor, rule: str, temperature: float, g: torch.Generator) -> int:
    if rule == "greedy":
        return int(logits.argmax())
    p = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(p, 1, generator=g))


@torch.no_grad()
def medusa_decode(
    model: MedusaLM,
    prompt: list[int],
    new_tokens: int,
    tree: Tree,
    rule: str = "greedy",
    temperature: float = 0.7,
    epsilon: float = 0.09,
    delta: float = 0.3,
    seed: int = 0,
) -> Decoded:
    """Decode ``new_tokens`` tokens verifying ``tree`` each step (the module docstring)."""
    if rule not in ("greedy", "typical"):
        raise ValueError(f"rule: {rule!r} is not allowed; allowed values: ['greedy', 'typical']")
    depth = min(tree.depth, len(model.medusa))
    paths = [p for p in tree.paths if len(p) <= depth]
    ranks = 1 + max((max(p) for p in paths), default=0)
    parent = [0] + [1 + paths.index(p[:-1]) if len(p) > 1 else 0 for p in paths]
    g = torch.Generator().manual_seed(seed)
    logits, heads, _, cache = model(torch.tensor([prompt]))
    last_logits, last_heads = logits[0, -1], heads[0, -1]
    out: list[int] = []
    accepted: list[int] = []
    q = len(paths) + 1
    while len(out) < new_tokens:
        s = cache[0][0].shape[2]
        top = last_heads.topk(ranks, dim=-1).indices  # (heads, ranks)
        tokens = [_next_token(last_logits, rule, temperature, g)]
        tokens += [int(top[len(p) - 1, p[-1]]) for p in paths]
        mask = torch.zeros(q, s + q, dtype=torch.bool)
        mask[:, :s] = True
        for i in range(q):  # each node sees itself and its ancestors
            j = i
            while True:
                mask[i, s + j] = True
                if j == 0:
                    break
                j = parent[j]
        positions = torch.tensor([s] + [s + len(p) for p in paths])
        t_logits, t_heads, _, t_cache = model(torch.tensor([tokens]), positions, mask, cache)
        ok = [True] + [False] * (q - 1)
        for i in range(1, q):  # parents come first (paths are sorted by depth)
            ok[i] = ok[parent[i]] and _accepts(
                t_logits[0, parent[i]], tokens[i], rule, temperature, epsilon, delta
            )
        best = max((i for i in range(q) if ok[i]), key=lambda i: (len(_chain(i, parent)), -i))
        chain = _chain(best, parent)
        out.extend(tokens[i] for i in chain)
        accepted.append(len(chain))
        keep = torch.tensor(list(range(s)) + [s + i for i in chain])
        cache = [(k[:, :, keep], v[:, :, keep]) for k, v in t_cache]
        last_logits, last_heads = t_logits[0, best], t_heads[0, best]
    return Decoded(out[:new_tokens], accepted)


def _chain(i: int, parent: list[int]) -> list[int]:
    """Node indices from the root to ``i``."""
    chain = [i]
    while chain[-1] != 0:
        chain.append(parent[chain[-1]])
    return chain[::-1]
