"""A table of bad inputs to every command: each must be one line naming the field, exit 2, and
nothing written.

Each case runs ``dse ...`` as a user would (a real subprocess) in a fresh folder holding only the
files the case needs; printed per case: the exit code, whether the refusal was one line without
a traceback, what it wrote, and the message. ``fault_injection.py`` prints the summary with its
other scenarios; alone:

    python benchmarks/bad_inputs.py [--only WORD]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dse.config import DEMO_CONFIG

DSE = [sys.executable, "-m", "dse.cli"]
TRUTH = Path(__file__).resolve().parents[1] / "data" / "nasbench201_naslib.csv"

#: the built-in demo's config with a small budget: every case below breaks one thing of it
GOOD = (
    DEMO_CONFIG.split("[search]")[0]
    .replace('name = "demo"', 'name = "bad"')
    .replace("seed = 0", "seed = 1")
    .replace("max = 1.2e6", "max = 1.0e6")
    + '[search]\ndriver = "pymoo"\npop_size = 10\nmax_evaluations = 20\n'
)

SWEEP = """[run]
name = "bad-sweep"

[space]
name = "nasbench201"

[proxies.analytic]

[sweep]
method = "random"
points = 10
workers = 0

[sweep.parameters]
arch = "all"
"""


def edit(old: str, new: str, base: str = GOOD) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


@dataclass
class Case:
    """``dse ARGS`` in a folder holding ``files`` (name -> text or bytes)."""

    name: str
    args: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)


def run_cases() -> list[Case]:
    deep = "[" * 2000 + "]" * 2000
    cases = [
        ("config: not UTF-8", {"c.toml": b"\xff\xfe[run]\n"}),
        ("config: NUL in run.name", {"c.toml": edit('name = "bad"', 'name = "a\\u0000b"')}),
        ("config: a 2,000-deep array", {"c.toml": GOOD + f"[extra]\nx = {deep}\n"}),
        ("config: invalid TOML", {"c.toml": "[run\nname = 1"}),
        ("config: empty file", {"c.toml": ""}),
        ("config: 5 MB", {"c.toml": GOOD + "# " + "x" * 5_000_000 + "\n"}),
        ("config: unknown section", {"c.toml": GOOD + "[colour]\nx = 1\n"}),
        ("run: unknown key", {"c.toml": edit("seed = 1", "seed = 1\ncolour = 1")}),
        ("run: seed -1", {"c.toml": edit("seed = 1", "seed = -1")}),
        ("run: seed a string", {"c.toml": edit("seed = 1", 'seed = "one"')}),
        ("run: name ../x", {"c.toml": edit('name = "bad"', 'name = "../x"')}),
        ("run: plugins unknown", {"c.toml": edit("seed = 1", 'seed = 1\nplugins = ["nope"]')}),
        ("space: missing", {"c.toml": edit('[space]\nname = "nasbench201"\n', "")}),
        ("space: no name", {"c.toml": edit('name = "nasbench201"', "size = 1")}),
        ("space: unknown", {"c.toml": edit('name = "nasbench201"', 'name = "nope"')}),
        ("space: unknown param", {"c.toml": edit('dataset = "cifar10"', "width = 3")}),
        ("space: dataset svhn", {"c.toml": edit('dataset = "cifar10"', 'dataset = "svhn"')}),
        ("proxies: unknown", {"c.toml": edit("[proxies.analytic]", "[proxies.nope]")}),
        ("proxies: bad param", {"c.toml": edit("[proxies.analytic]", "[proxies.analytic]\nx=1")}),
        ("objectives: missing", {"c.toml": GOOD.split("[[objectives]]")[0] + "[search]\n"}),
        ("objectives: empty", {"c.toml": GOOD.split("[[objectives]]")[0] + "objectives = []\n"}),
        ("objectives: unknown metric", {"c.toml": edit('"hook_flops"', '"accuracy"')}),
        ("objectives: direction down", {"c.toml": edit('direction = "max"', 'direction = "down"')}),
        (
            "objectives: declared twice",
            {"c.toml": edit('metric = "hook_flops"', 'metric = "params"')},
        ),
        (
            "objectives: ref nan",
            {"c.toml": edit('direction = "min"', 'direction = "min"\nref = nan')},
        ),
        ("constraints: no bound", {"c.toml": edit("max = 1.0e6", "")}),
        ("constraints: max nan", {"c.toml": edit("max = 1.0e6", "max = nan")}),
        ("constraints: min inf", {"c.toml": edit("max = 1.0e6", "min = -inf")}),
        ("constraints: min > max", {"c.toml": edit("max = 1.0e6", "max = 1.0\nmin = 2.0")}),
        ("search: unknown driver", {"c.toml": edit('driver = "pymoo"', 'driver = "nope"')}),
        ("search: budget 0", {"c.toml": edit("max_evaluations = 20", "max_evaluations = 0")}),
        ("search: budget text", {"c.toml": edit("max_evaluations = 20", 'max_evaluations = "x"')}),
        (
            "search: max_seconds nan",
            {"c.toml": edit("pop_size = 10", "pop_size = 10\nmax_seconds = nan")},
        ),
        ("search: workers 0", {"c.toml": edit("pop_size = 10", "pop_size = 10\nworkers = 0")}),
        (
            "search: workers and scheduler",
            {
                "c.toml": edit(
                    "pop_size = 10", 'pop_size = 10\nworkers = 2\nscheduler = "tcp://a:1"'
                )
            },
        ),
        (
            "search: unreachable scheduler",
            {"c.toml": edit("pop_size = 10", 'pop_size = 10\nscheduler = "tcp://127.0.0.1:1"')},
        ),
        ("pymoo: unknown algorithm", {"c.toml": edit("pop_size = 10", 'algorithm = "moead"')}),
        ("pymoo: pop_size text", {"c.toml": edit("pop_size = 10", 'pop_size = "ten"')}),
        (
            "optuna: storage in a missing folder",
            {
                "c.toml": edit(
                    'driver = "pymoo"\npop_size = 10',
                    'driver = "optuna"\nstorage = "sqlite:///no/dir/s.db"',
                )
            },
        ),
    ]
    out = [Case(name, ["run", "c.toml"], files) for name, files in cases]
    good = {"c.toml": GOOD, "afile": "x"}
    out += [
        Case("run: config missing", ["run", "missing.toml"]),
        Case("run: config is a folder", ["run", "."]),
        Case(
            "run: --run-id ../../escaped_run",
            ["run", "c.toml", "--run-id", "../../escaped_run"],
            good,
        ),
        Case("run: --run-id absolute", ["run", "c.toml", "--run-id", "/tmp/abs_run"], good),
        Case("run: --run-id .", ["run", "c.toml", "--run-id", "."], good),
        Case("run: --run-id empty", ["run", "c.toml", "--run-id", ""], good),
        Case("run: --output a file", ["run", "c.toml", "--output", "afile"], good),
        Case("run: --output 300 characters", ["run", "c.toml", "--output", "o" * 300], good),
        Case("run: --resume of nothing", ["run", "--resume", "nope"], good),
        Case("run: --max-evaluations 0", ["run", "c.toml", "--max-evaluations", "0"], good),
        Case("run: no config, no resume", ["run"]),
    ]
    sweeps = [
        ("sweep: points 1e12", edit("points = 10", "points = 1000000000000", SWEEP)),
        ("sweep: unknown key", edit("points = 10", "points = 10\ncolour = 1", SWEEP)),
        ("sweep: unknown method", edit('method = "random"', 'method = "nope"', SWEEP)),
        ("sweep: no parameters", SWEEP.split("[sweep.parameters]")[0]),
        ("sweep: chunk_size 0", edit("points = 10", "points = 10\nchunk_size = 0", SWEEP)),
        ("sweep: workers -1", edit("workers = 0", "workers = -1", SWEEP)),
        ("sweep: unknown parameter", SWEEP + '"simulators.tpu.cores" = [1, 2]\n'),
        (
            "sweep: sobol without points",
            edit('method = "random"\npoints = 10', 'method = "sobol"', SWEEP),
        ),
    ]
    out += [Case(name, ["sweep", "s.toml"], {"s.toml": text}) for name, text in sweeps]
    t = str(TRUTH)
    eval_cases = [
        ("proxy-eval: empty --truth", ["--truth", "empty.csv"]),
        ("proxy-eval: binary --truth", ["--truth", "binary.csv"]),
        ("proxy-eval: missing --truth", ["--truth", "missing.csv"]),
        ("proxy-eval: unknown --target", ["--truth", t, "--target", "nope"]),
        ("proxy-eval: unknown --proxies", ["--truth", t, "--proxies", "nope"]),
        ("proxy-eval: unknown --arch-column", ["--truth", t, "--arch-column", "nope"]),
        ("proxy-eval: unknown --space-param", ["--truth", t, "--space-param", "nope=1"]),
        ("proxy-eval: unknown --space", ["--truth", t, "--space", "nope"]),
        ("proxy-eval: --limit -1", ["--truth", t, "--limit", "-1"]),
        ("proxy-eval: --workers -1", ["--truth", t, "--workers", "-1"]),
        ("proxy-eval: --plugins unknown", ["--truth", t, "--plugins", "nope"]),
    ]
    tables = {"empty.csv": "", "binary.csv": bytes(range(128, 256)) * 4}
    out += [Case(n, ["proxy-eval", *a, "--out", "card"], tables) for n, a in eval_cases]
    measured = {
        "m.csv": "arch,latency_ms\n|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,1.0\n"
    }
    out += [
        Case(
            "calibrate: unknown --space",
            [
                "calibrate",
                "--device",
                "A100-80GB-PCIe",
                "--measured",
                "m.csv",
                "--space",
                "nope",
                "--out",
                "c.toml",
            ],
            measured,
        ),
        Case(
            "calibrate: missing --measured",
            ["calibrate", "--device", "A100-80GB-PCIe", "--measured", "no.csv", "--out", "c.toml"],
        ),
        Case(
            "calibrate: --out not .toml",
            ["calibrate", "--device", "A100-80GB-PCIe", "--measured", "m.csv", "--out", "c.txt"],
            measured,
        ),
        Case(
            "calibrate: unknown device",
            ["calibrate", "--device", "Voodoo-5", "--measured", "m.csv", "--out", "c.toml"],
            measured,
        ),
        Case(
            "calibrate: --prior for a board",
            ["calibrate", "--board", "ZC706", "--measured", "m.csv", "--out", "c.toml"]
            + ["--prior", "Titan-RTX"],
            measured,
        ),
        Case(
            "cost: another device's calibration",
            ["cost", "--network", "resnet18", "--device", "Pixel-3"]
            + ["--calibration", "Samsung-A50", "--out", "p.csv"],
        ),
        Case(
            "cost: a GPU calibration's unknown regime factor",
            ["cost", "--network", "resnet18", "--device", "Titan-RTX"]
            + ["--calibration", "g.toml", "--out", "p.csv"],
            {"g.toml": 'name = "g"\n[regime_scales]\n"conv.fast" = 2\n'},
        ),
        Case(
            "calibrate: an empty arch cell",
            ["calibrate", "--device", "Pixel-3", "--measured", "e.csv", "--out", "c.toml"],
            {"e.csv": measured["m.csv"] + ",2.0\n"},
        ),
        Case(
            "cost: an arch cell of NA",
            ["cost", "--space", "nasbench201", "--archs", "e.csv", "--device", "Pixel-3"]
            + ["--out", "p.csv"],
            {"e.csv": "arch\nNA\n"},
        ),
        Case(
            "cost: --model a file path",
            ["cost", "--model", "lab/net.py:make", "--input-shape", "3,8,8", "--device", "Pixel-3"]
            + ["--out", "p.csv"],
        ),
        Case(
            "cost: --space zoo, a name it lacks",
            ["cost", "--space", "zoo", "--archs", "z.csv", "--device", "Pixel-3", "--out", "p.csv"],
            {"z.csv": "arch\nresnet19\n"},
        ),
        Case(
            "cost: --board-calibration without --board",
            ["cost", "--network", "resnet18", "--device", "Pixel-3"]
            + ["--board-calibration", "none", "--out", "p.csv"],
        ),
        Case("proxy-fit: --archs 1", ["proxy-fit", "--truth", t, "--archs", "1", "--name", "n"]),
        Case(
            "proxy-fit: a null arch cell",
            ["proxy-fit", "--truth", "n.csv", "--target", "acc", "--name", "n"],
            {"n.csv": "arch_str,acc\nnull,0.5\n"},
        ),
        Case(
            "proxy-fit: empty --truth", ["proxy-fit", "--truth", "empty.csv", "--name", "n"], tables
        ),
        Case("dps: unknown --target", ["dps", "--truth", t, "--target", "nope"]),
        Case("dps: --archs 1", ["dps", "--truth", t, "--archs", "1"]),
        Case("report: a run that is not there", ["report", "nope"]),
        Case("show: a run that is not there", ["show", "nope"]),
        Case("show: --limit -2", ["show", "nope", "--limit", "-2"]),
        Case("roofline: unknown device", ["roofline", "--device", "Voodoo-5", "--out", "r.png"]),
        Case(
            "roofline: text in --measured",
            ["roofline", "--device", "A100-80GB-PCIe", "--measured", "m.csv", "--out", "r.png"],
            {"m.csv": "tflops,operational_intensity\nabc,1\n"},
        ),
        Case("list: an extra word", ["list", "nope"]),
        Case(
            "medusa tree: missing --accuracy",
            ["medusa", "tree", "--accuracy", "no.csv", "--out", "t.json"],
        ),
        Case(
            "medusa tree: empty --accuracy",
            ["medusa", "tree", "--accuracy", "empty.csv", "--out", "t.json"],
            tables,
        ),
        Case(
            "medusa tree: --nodes -3",
            ["medusa", "tree", "--accuracy", "empty.csv", "--nodes", "-3", "--out", "t.json"],
            tables,
        ),
        Case(
            "medusa decode: missing --tree",
            ["medusa", "decode", "--model", "m.pt", "--tree", "no.json"],
        ),
        Case(
            "medusa calibrate: missing --model",
            ["medusa", "calibrate", "--model", "m.pt", "--out", "a.csv"],
        ),
        Case("medusa train: --steps -1", ["medusa", "train", "--out", "m", "--steps", "-1"]),
    ]
    return out


@dataclass
class Outcome:
    case: Case
    code: int
    one_line: bool
    traceback: bool
    written: list[str]
    message: str

    @property
    def ok(self) -> bool:
        return self.code == 2 and not self.traceback and not self.written


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_case(case: Case, base: Path) -> Outcome:
    folder = base / f"case{abs(hash(case.name)) % 10**8}"
    folder.mkdir()
    for name, content in case.files.items():
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    before = _tree(folder)
    proc = subprocess.run(DSE + case.args, cwd=folder, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if ": error:" in ln]
    message = (error_lines or lines or ["(no message)"])[-1]
    return Outcome(
        case,
        proc.returncode,
        len(error_lines) == 1,
        "Traceback" in proc.stderr,
        sorted(_tree(folder) - before) + [p for p in ("/tmp/abs_run",) if Path(p).exists()],
        message,
    )


def report(outcomes: list[Outcome]) -> str:
    rows = [f"{'case':40s} exit  line  tb  written  message"]
    for o in outcomes:
        rows.append(
            f"{o.case.name:40s} {o.code:4d}  {'yes' if o.one_line else 'NO ':4s} "
            f"{'YES' if o.traceback else 'no':3s} {len(o.written):7d}  {o.message[:110]}"
        )
    bad = [o for o in outcomes if not o.ok]
    rows.append(
        f"\n{len(outcomes)} bad inputs: {sum(o.code == 2 for o in outcomes)} exit 2, "
        f"{sum(o.traceback for o in outcomes)} tracebacks, "
        f"{sum(bool(o.written) for o in outcomes)} wrote files"
        + ("" if not bad else "; FAILED: " + ", ".join(o.case.name for o in bad))
    )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="cases whose name holds this word")
    args = ap.parse_args()
    cases = [c for c in run_cases() if args.only is None or args.only in c.name]
    with tempfile.TemporaryDirectory(prefix="dse-bad-") as tmp:
        print(report([run_case(c, Path(tmp)) for c in cases]))


if __name__ == "__main__":
    main()
