"""The Python API in a few lines: build a graph, cost it, run a search, read the front."""

import tempfile

import dse
from dse.graph import totals
from dse.registry import SPACES

space = SPACES.create("nasbench201", dataset="cifar10")
arch = space.parse(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
print(totals(space.to_graph(arch)))

config = {
    "run": {"name": "api", "seed": 0},
    "space": {"name": "nasbench201"},
    "proxies": {"analytic": {}},
    "objectives": [
        {"metric": "hook_flops", "direction": "max"},
        {"metric": "params", "direction": "min"},
    ],
    "search": {"driver": "pymoo", "pop_size": 16, "max_evaluations": 96},
}
result = dse.run(config, output=tempfile.mkdtemp(), progress=False)
df = dse.results.load(result.path)
print(df[df.is_pareto][["arch_id", "hook_flops", "params"]].head())
