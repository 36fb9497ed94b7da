"""The architecture graph IR: a ``networkx.DiGraph`` whose nodes hold typed :class:`OpNode` data.

Every proxy and simulator reads this one representation. See :mod:`dse.graph.ops` for the
operator nodes and their cost units, :mod:`dse.graph.tensor_ops` for the operator kinds.
"""

from dse.graph import (  # noqa: F401 - they register their op kinds
    resize_ops,
    sequence_ops,
    shuffle_ops,
    tensor_ops,
)
from dse.graph.analysis import (
    GraphTotals,
    canonical_hash,
    infer_shapes,
    peak_activation_bytes,
    totals,
    validate,
)
from dse.graph.builder import GraphBuilder
from dse.graph.onnx_import import ONNX_IMPORTS, from_onnx
from dse.graph.ops import OP_KINDS, GraphError, OpCost, OpNode, make_op, numel, register_op_kind
from dse.graph.serialize import from_dict, from_json, to_dict, to_json
from dse.graph.torch_import import TORCH_IMPORTS, from_torch

__all__ = [
    "GraphBuilder",
    "GraphError",
    "GraphTotals",
    "ONNX_IMPORTS",
    "OP_KINDS",
    "TORCH_IMPORTS",
    "OpCost",
    "OpNode",
    "canonical_hash",
    "from_dict",
    "from_json",
    "from_onnx",
    "from_torch",
    "infer_shapes",
    "make_op",
    "numel",
    "peak_activation_bytes",
    "register_op_kind",
    "to_dict",
    "to_json",
    "totals",
    "validate",
]
