"""House rules that keep the package maintainable, checked on the source itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parents[1]
#: installed package name -> source folder (pyproject's package-dir)
ROOTS = {
    "dse": REPO / "dse",
    "dse.spaces": REPO / "spaces",
    "dse.proxies": REPO / "proxies",
    "dse.simulators": REPO / "simulators",
    "dse.drivers": REPO / "drivers",
    "dse.training": REPO / "training",
    "dse.catalogs": REPO / "catalogs",
    "dse.commands": REPO / "commands",
}
#: the rooms of the house (README, "Layout"): plugins by role, each importing only the core,
#: itself and the shared places; commands are front doors above them (like the CLI)
PLUGIN_ROOMS = ("dse.spaces", "dse.proxies", "dse.simulators", "dse.drivers")
SHARED = ("dse.training", "dse.catalogs")
COMMANDS = "dse.commands"


def _room(module: str) -> str:
    """The room a module lives in: a plugin room, a shared place, commands, or the core."""
    for room in (*PLUGIN_ROOMS, *SHARED, COMMANDS):
        if module == room or module.startswith(room + "."):
            return room
    return "dse"


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, root in ROOTS.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Modules of this package that ``path`` imports anywhere (module level or in a function),
    except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    is_pkg = path.name == "__init__.py"
    base = name if is_pkg else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                up = base.split(".")
                up = up[: len(up) - node.level + 1]
                mod = ".".join(up + ([mod] if mod else []))
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for target in _imports(path, name, set(modules)):
            # importing a submodule runs its package's __init__ first, which is not a cycle
            if not name.startswith(target + "."):
                g.add_edge(name, target)
    return g


def test_the_package_has_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:5])


def test_the_core_never_imports_a_plugin():
    g = import_graph()
    bad = [(u, v) for u, v in g.edges if _room(u) == "dse" and _room(v) != "dse"]
    assert not bad, f"core modules import plugins or shared places: {bad}"


def test_plugins_import_only_the_core_and_the_shared_places():
    """A space, proxy, simulator or driver never imports another room's module: what two rooms
    share lives in dse.training or dse.catalogs (which import no room), and only commands,
    the front doors, reach into rooms."""
    g = import_graph()
    allowed = {room: {"dse", room, *SHARED} for room in PLUGIN_ROOMS}
    allowed.update({room: {"dse", *SHARED} for room in SHARED})
    allowed[COMMANDS] = {"dse", COMMANDS, *PLUGIN_ROOMS, *SHARED}
    bad = [
        f"{u} -> {v}" for u, v in g.edges if _room(u) != "dse" and _room(v) not in allowed[_room(u)]
    ]
    assert not bad, "imports across rooms: " + "; ".join(sorted(bad))


def test_each_plugin_lives_in_the_folder_of_its_role():
    """A space registers from spaces/, a proxy or measure from proxies/, a simulator from
    simulators/, a driver from the core's drivers or drivers/, a command from commands/, a
    catalog listing (dse list devices) where its catalog lives."""
    import tomllib

    points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    home = {
        "dse.spaces": ("dse.spaces.",),
        "dse.proxies": ("dse.proxies.",),
        "dse.measures": ("dse.proxies.",),
        "dse.simulators": ("dse.simulators.",),
        "dse.drivers": ("dse.search.", "dse.drivers."),
        "dse.commands": ("dse.commands.",),
        "dse.listings": ("dse.catalogs.", "dse.simulators."),
    }
    assert set(points) == set(home)
    bad = [
        f"{group}: {name} = {target}"
        for group, entries in points.items()
        for name, target in entries.items()
        if not target.startswith(home[group])
    ]
    assert not bad, bad


def test_the_penalty_constant_is_written_once():
    literal = re.compile(r"\b1e3\d\d\b|\b1\.0e3\d\d\b")
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for p in _modules().values()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert len(hits) == 1 and "dse/results/record.py" in hits[0], hits


def test_a_torch_free_run_never_imports_torch(tmp_path):
    """Resolving plugins imports only those a config names (entry points load lazily); nor
    does a search import scipy.stats (0.45 s of start-up, needed only to score a fidelity)."""
    import subprocess
    import sys

    code = (
        "import sys, dse\n"
        "dse.run({'run': {'name': 'nt'}, 'space': {'name': 'nasbench201'},"
        " 'proxies': {'analytic': {}}, 'simulators': {'gpu': {}, 'fpga': {'board': 'ZC706'}},"
        " 'objectives': [{'metric': 'hook_flops', 'direction': 'max'},"
        " {'metric': 'gpu_latency_ms'}, {'metric': 'fpga_latency_ms'}],"
        " 'search': {'driver': 'pymoo', 'pop_size': 10, 'max_evaluations': 20}},"
        f" output={str(tmp_path)!r}, progress=False)\n"
        "print('torch' in sys.modules, 'scipy.stats' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_the_command_line_imports_plugin_commands_only_when_asked(tmp_path):
    """``dse run`` of a torch-free config never imports torch (dse dps, a plugin command,
    needs it); ``dse --help`` still lists every command."""
    import subprocess
    import sys

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[run]\nname = "c"\n[space]\nname = "nasbench201"\n[proxies.analytic]\n'
        '[[objectives]]\nmetric = "params"\n[search]\ndriver = "random"\nmax_evaluations = 5\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "dse.cli",
            "run",
            str(cfg),
            "--quiet",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "dse.proxies.dps" not in imported
    helped = subprocess.run(
        [sys.executable, "-m", "dse.cli", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and all(c in helped.stdout for c in ("dps", "roofline"))
