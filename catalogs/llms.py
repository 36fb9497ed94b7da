"""LLM presets: decoder-only transformer shapes (llm_models.toml), extended by a user's file.

Read by the GPU and Medusa simulators, the Medusa space and the roofline command.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from dse.catalog import check_fields, load_catalog
from dse.registry import LISTINGS


@dataclass(frozen=True)
class LlmConfig:
    """Shape and precision of a decoder-only transformer (bits per weight, activation, KV entry)."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    weight_bits: int = 16
    act_bits: int = 16
    kv_bits: int = 16
    source: str = ""

    def __post_init__(self):
        for f in (
            "layers",
            "hidden",
            "intermediate",
            "heads",
            "kv_heads",
            "head_dim",
            "vocab",
            "weight_bits",
            "act_bits",
            "kv_bits",
        ):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"llm {self.name!r}: {f}: expected a positive integer, got {v!r}")
        if self.heads % self.kv_heads:
            raise ValueError(
                f"llm {self.name!r}: heads ({self.heads}) must be a multiple of "
                f"kv_heads ({self.kv_heads})"
            )

    @property
    def params(self) -> int:
        """Parameters: embeddings, per-layer projections, MLP and norms, final norm, lm_head."""
        h, i, qd, kd = (
            self.hidden,
            self.intermediate,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        )
        per_layer = h * qd + 2 * h * kd + qd * h + 3 * h * i + 2 * h
        return self.vocab * h + self.layers * per_layer + h + h * self.vocab

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bits / 8

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per token of context (keys and values of every layer)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bits / 8


def _parse_llm(name: str, table: dict, where: str) -> LlmConfig:
    allowed = {f.name for f in fields(LlmConfig)} - {"name"}
    check_fields(name, table, where, allowed)
    return LlmConfig(name=name, **table)


def load_llms(path: str | Path | None = None) -> dict[str, LlmConfig]:
    """The shipped presets (llm_models.toml), extended and overridden by the TOML file ``path``."""
    return load_catalog("dse.catalogs", "llm_models.toml", path, "models_file", _parse_llm)


def get_llm(name: str | LlmConfig, models_file: str | Path | None = None) -> LlmConfig:
    if isinstance(name, LlmConfig):
        return name
    models = load_llms(models_file)
    if name not in models:
        raise ValueError(f"model: {name!r} is not allowed; allowed values: {sorted(models)}")
    return models[name]


@LISTINGS.register("llms")
def llm_listing() -> list[tuple[str, str]]:
    """The shipped LLM presets (``[space] models`` of the medusa space, ``dse roofline``)."""
    return [
        (
            m.name,
            f"{m.params / 1e9:.1f} B params, {m.layers} layers, hidden {m.hidden}, "
            f"{m.heads} heads ({m.kv_heads} KV), {m.weight_bits}-bit weights",
        )
        for m in load_llms().values()
    ]
