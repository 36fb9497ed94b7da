"""The code on docs/plugins.md runs as it stands: a newcomer can copy it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_plugin_page_runs_its_space_proxy_and_op_kind(tmp_path):
    """Its blocks, in order and in a fresh interpreter (they register plugins): a proxy, a
    whole space searched end to end, the same written as PyTorch, an op kind with its torch
    lowering."""
    blocks = python_blocks(DOCS / "plugins.md")
    assert len(blocks) >= 3
    checks = (
        "\nfrom dse.plugin import PROXIES, SPACES\n"
        "from dse.testing import check_provider, check_space\n"
        "space = SPACES.create('tiny_cnn')\n"
        "check_space(space)\n"
        "rng = np.random.default_rng(0)\n"
        "archs = [space.sample(rng) for _ in range(3)]\n"
        "check_provider(PROXIES.create('node_count'), space, archs)\n"
        "df = dse.results.load(result.path)\n"
        "assert len(df) >= 2 and df.is_pareto.any() and (df.node_count > 0).all()\n"
        "tdf = dse.results.load(torch_result.path)\n"
        "assert len(tdf) >= 2 and (tdf.gpu_latency_ms > 0).all() and tdf.is_pareto.any()\n"
        "import torch\n"
        "from dse.graph import GraphBuilder\n"
        "from dse.training.network import build_network\n"
        "b = GraphBuilder(); b.add('hard_tanh', [b.input((2,))])\n"
        "net = build_network(b.build())\n"
        "assert torch.equal(net(torch.tensor([[-3.0, 0.5]])), torch.tensor([[-1.0, 0.5]]))\n"
        "print('docs ok')\n"
    )
    script = f"OUTPUT = {str(tmp_path / 'runs')!r}\n" + "\n".join(blocks) + checks
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "docs ok" in proc.stdout


def test_every_example_the_docs_name_exists():
    """The package docstring named examples/nb201.toml, which did not exist."""
    root = DOCS.parent
    texts = [root / "README.md", root / "dse" / "__init__.py", *DOCS.glob("*.md")]
    named = {m for t in texts for m in re.findall(r"examples/[\w./-]+\.(?:toml|py)", t.read_text())}
    assert named and not [n for n in sorted(named) if not (root / n).is_file()]


def test_the_model_page_imports_its_network():
    """docs/models.md's first example, run as it stands, prints what the page says."""
    import contextlib
    import io

    block = python_blocks(DOCS / "models.md")[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(block, {})
    first = out.getvalue().splitlines()[0]
    assert first == "1258 43352384"
    assert "1,258 and 43.4 M" in block
