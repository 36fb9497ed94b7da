"""Command line: ``dse run``, ``dse demo``, ``dse sweep``, ``dse report``, ``dse list``, ``dse
show``,
plus plugins' commands
(:data:`dse.registry.COMMANDS`, e.g. ``dse roofline``).

Exit codes: 0 success, 1 the run itself failed, 2 bad input (config, arguments, unknown run),
130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import tomllib

from dse.cluster import ClusterError, add_cluster_arguments, cluster_table
from dse.config import DEMO_CONFIG, parse_config
from dse.inputs import at_least, writable_folder
from dse.params import ConfigError
from dse.provider import MetricProvider
from dse.registry import COMMANDS, DRIVERS, LISTINGS, PROXIES, SIMULATORS, SPACES, Command


def _cmd_run(args: argparse.Namespace) -> int:
    from dse.runner import run

    if args.config is None and args.resume is None:
        raise ConfigError("dse run: give a CONFIG.toml, or --resume RUN")
    config = args.config
    if args.seed is not None:
        if args.resume is not None:
            raise ConfigError("--seed: a resumed run keeps its own seed (run.seed)")
        from dataclasses import replace

        from dse.config import load_config

        config = replace(load_config(args.config), seed=args.seed)
    result = run(
        config,
        resume=args.resume,
        run_id=args.run_id,
        output=args.output,
        progress=not args.quiet,
        max_evaluations=args.max_evaluations,
        drop_corrupt=args.drop_corrupt,
        trust_plugins=args.trust_plugins,
        cluster=cluster_table(args),
    )
    if result.all_failed:
        _print_failures(result, f"every one of the {result.rows} evaluations failed")
        return 1
    _report(result, args.quiet)
    failed = sum(n for n, _ in result.failures)
    if result.rows and failed / result.rows > FAILED_SHARE_WARNING:
        _print_failures(result, f"warning: {failed} of {result.rows} evaluations failed")
    if result.status == "interrupted":
        from dse.search.interrupt import exit_code

        by = "SIGTERM" if result.stop_signal == signal.SIGTERM else "Ctrl-C"
        print(
            f"dse: stopped by {by} after a finished batch; continue with dse run --resume "
            f"{result.path}",
            file=sys.stderr,
        )
        return exit_code(result.stop_signal)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from dse.sweeps import sweep

    if args.config is None and args.resume is None:
        raise ConfigError("dse sweep: give a CONFIG.toml, or --resume SWEEP")
    result = sweep(
        args.config,
        resume=args.resume,
        output=args.output,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        drop_corrupt=args.drop_corrupt,
        trust_plugins=args.trust_plugins,
        cluster=cluster_table(args),
    )
    print(
        f"sweep {result.sweep_id}: {result.points} points in {result.chunks} chunks "
        f"({result.chunks_run} run now) in {result.seconds:.1f} s"
    )
    print(f"results: {result.path}/evals/*.parquet   report: dse report {result.path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dse.reports import report

    if args.out is not None:
        writable_folder(args.out, "--out")
    try:
        path = report(
            args.runs,
            out=args.out,
            output=args.output,
            objectives=args.objectives,
            title=args.title,
        )
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    print(f"report: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dse.runner import run

    data = tomllib.loads(DEMO_CONFIG)
    if args.max_evaluations is not None:
        data["search"]["max_evaluations"] = args.max_evaluations
    if args.output:
        data["run"]["output"] = args.output
    result = run(parse_config(data), progress=not args.quiet)
    _report(result, args.quiet)
    return 0


#: above this share of failed evaluations a finished run prints a warning with the errors
FAILED_SHARE_WARNING = 0.5


def _print_failures(result, headline: str) -> None:
    print(f"dse: run {result.run_id}: {headline}; the errors:", file=sys.stderr)
    for n, error in result.failures:
        print(f"  {n:6d} x {error}", file=sys.stderr)
    print(f"dse: every row is in {result.path} (status, error columns)", file=sys.stderr)


def _report(result, quiet: bool) -> None:
    print(
        f"run {result.run_id}: {result.rows} architectures evaluated "
        f"({result.proposals} proposals, {result.cached} repeats served from cache) "
        f"in {result.seconds:.1f} s"
    )
    print(f"results: {result.path}/evals/*.parquet   manifest: {result.path}/manifest.json")
    print(f"summary: dse show {result.path}")
    if not quiet:
        from dse.reports.text import print_summary

        print()
        print_summary(result.path, limit=20)


def _cmd_show(args: argparse.Namespace) -> int:
    from dse.reports.text import print_summary

    try:
        print_summary(args.run, args.limit, args.output, args.all)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def _calibration_listing() -> list[tuple[str, str]]:
    """Every simulator's shipped calibrations with their validated error."""
    rows = []
    for entry in SIMULATORS.entries():
        factory = entry.factory
        if isinstance(factory, type) and issubclass(factory, MetricProvider):
            for name, fidelity in factory.calibrations().items():
                covers = f" [covers: {', '.join(fidelity.covers)}]" if fidelity.covers else ""
                rows.append((name, f"[{entry.name}] {fidelity.line('latency')}{covers}"))
    return rows


def _table_listing() -> list[tuple[str, str]]:
    """Every simulator's shipped measured operator tables, one line each."""
    rows = []
    for entry in SIMULATORS.entries():
        factory = entry.factory
        if isinstance(factory, type) and issubclass(factory, MetricProvider):
            rows += [(n, f"[{entry.name}] {line}") for n, line in factory.measured_tables().items()]
    return rows


#: listings made from every simulator's class (the others are LISTINGS plugins)
SIMULATOR_LISTINGS = {"calibrations": _calibration_listing, "tables": _table_listing}


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what != "plugins":
        listing = SIMULATOR_LISTINGS.get(args.what) or LISTINGS[args.what]
        rows = listing()
        width = max((len(n) for n, _ in rows), default=0)
        for name, line in rows:
            print(f"{name:{width}s}  {line}")
        return 0
    for title, registry in (
        ("spaces", SPACES),
        ("proxies", PROXIES),
        ("simulators", SIMULATORS),
        ("search drivers", DRIVERS),
    ):
        print(f"{title}:")
        entries = registry.entries()
        if not entries:
            print("  (none installed)")
        for e in entries:
            print(f"  {e.name:18s} {e.summary}")
            if registry in (PROXIES, SIMULATORS):
                print(f"  {'':18s} {_metrics_line(e.factory)}")
    return 0


def _metrics_line(factory) -> str:
    """A provider's metrics with their units, from an instance with default parameters."""
    try:
        provider = factory()
    except Exception:  # noqa: BLE001 - a provider that needs parameters (a table, a truth file)
        return "metrics: depend on its parameters"
    if not isinstance(provider, MetricProvider):
        return "(not a metric provider: subclass dse.plugin.MetricProvider)"
    units = provider.metric_units()
    line = "metrics: " + ", ".join(f"{m} [{u}]" if u else m for m, u in units.items())
    timing = [
        f.line(m)
        for m, f in provider.metric_fidelity().items()
        if (f.known or f.note.startswith("uncalibrated")) and not f.derived_from
    ]
    calibrations = [f.line("shipped") for f in provider.calibrations().values()]
    return "\n".join(
        [line]
        + [f"{'':21s}default settings: {t}" for t in timing]
        + [f"{'':21s}{c}" for c in calibrations]
    )


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dse")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Plugin commands (``dse.commands``) are imported only when ``command``
    is theirs or help is asked for (``None``); otherwise they are listed by name, so ``dse run``
    never imports a plugin command's dependencies (torch, for ``dse dps``)."""
    p = argparse.ArgumentParser(
        prog="dse", description="Design-space exploration of neural networks and hardware."
    )
    p.add_argument("--version", action="version", version=f"dse {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a search from a TOML config")
    r.add_argument("config", nargs="?", help="TOML config file")
    r.add_argument("--resume", metavar="RUN", help="continue a run (directory or run id)")
    r.add_argument("--run-id", help="name the run directory (default: <name>-<time>-s<seed>)")
    r.add_argument(
        "--seed", type=at_least(0), help="override the config's run.seed (a new run only)"
    )
    r.add_argument("--output", help="results directory (default: the config's run.output)")
    r.add_argument(
        "--max-evaluations",
        type=int,
        metavar="N",
        help="override the budget (with --resume: extend a finished run to N proposals)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    r.add_argument(
        "--drop-corrupt",
        action="store_true",
        help="with --resume: set unreadable parts aside and continue without missing ones "
        "(their architectures are evaluated again)",
    )
    r.set_defaults(func=_cmd_run)
    d = sub.add_parser("demo", help="run the built-in NAS-Bench-201 demo search (no config needed)")
    d.add_argument("--output", help="results directory (default: results)")
    d.add_argument("--max-evaluations", type=int, help="budget (default 240)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)
    ls = sub.add_parser(
        "list",
        help="list installed plugins, or the devices, boards, LLMs, calibrations or measured "
        "tables",
    )
    ls.add_argument(
        "what",
        nargs="?",
        default="plugins",
        choices=["plugins", *SIMULATOR_LISTINGS, *LISTINGS.available()],
        help="what to list (default: the plugins)",
    )
    ls.set_defaults(func=_cmd_list)
    s = sub.add_parser("show", help="summary and Pareto table of a run")
    s.add_argument("run", help="run directory or run id")
    s.add_argument("--output", default="results", help="where run ids are looked up")
    s.add_argument("--all", action="store_true", help="every evaluation, not just the Pareto front")
    s.add_argument("--limit", type=at_least(0), default=50, help="rows to print (0: all)")
    s.set_defaults(func=_cmd_show)
    w = sub.add_parser(
        "sweep", help="evaluate a grid/random/LHS/Sobol sweep of config values on Dask"
    )
    w.add_argument("config", nargs="?", help="TOML config with a [sweep] section")
    w.add_argument(
        "--resume",
        metavar="SWEEP",
        help="finish a sweep (directory or id): runs only missing chunks",
    )
    w.add_argument(
        "--workers", type=int, help="LocalCluster workers (default: one per core; 0: this process)"
    )
    w.add_argument(
        "--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786"
    )
    w.add_argument("--output", help="results directory (default: the config's run.output)")
    w.add_argument("--quiet", action="store_true")
    w.add_argument(
        "--drop-corrupt",
        action="store_true",
        help="with --resume: set unreadable parts aside and run their chunks again",
    )
    w.set_defaults(func=_cmd_sweep)
    for clustered in (r, w):
        add_cluster_arguments(clustered)
    for resumable in (r, w):
        resumable.add_argument(
            "--trust-plugins",
            action="store_true",
            help="with --resume: import the plugin modules the manifest names from folders "
            "outside the run folder (importing a module runs its code)",
        )
    rp = sub.add_parser("report", help="a self-contained HTML report of one or more runs or sweeps")
    rp.add_argument(
        "runs", nargs="+", metavar="RUN", help="run or sweep directories or ids (several: compare)"
    )
    rp.add_argument(
        "--out", help="report directory (default: <first run>/report, or results/report-<time>)"
    )
    rp.add_argument("--output", default="results", help="where run ids are looked up")
    rp.add_argument(
        "--objectives",
        nargs="+",
        metavar="METRIC:DIR",
        help="objectives to plot, e.g. accuracy:max fpga_latency_ms:min (default: the runs')",
    )
    rp.add_argument("--title", help="page title")
    rp.set_defaults(func=_cmd_report)
    for name in COMMANDS.available():  # plugins' subcommands (e.g. ``dse roofline``)
        if command is not None and command != name:
            sub.add_parser(name, help=f"(plugin command; dse {name} --help)")
            continue
        entry = COMMANDS.get(name)
        plugin = entry.factory()
        if not isinstance(plugin, Command):
            raise TypeError(f"command {name!r}: {entry.factory} is not a dse.plugin.Command")
        # argparse %-formats help strings: a literal "%" (as in "top-10%") must be doubled
        c = sub.add_parser(name, help=entry.summary.replace("%", "%%"), description=entry.summary)
        plugin.add_arguments(c)
        c.set_defaults(func=plugin.run)
    return p


#: what a full disk needs (the only OSError that --resume after making room cures)
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError that stopped a command: what could not be read or written, and
    why, told apart (a full disk, a missing file, no permission, a name too long, a file where
    a folder should be, a network peer)."""
    where = f"{exc.filename}: " if exc.filename else ""
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _DISK_FULL:
        return (
            f"{where}{why} (the disk is full); every finished batch is saved: make room and "
            "continue with --resume"
        )
    if isinstance(exc, FileNotFoundError):
        return f"{where}{why} (a file or folder went away while the command ran)"
    if isinstance(exc, PermissionError):
        return f"{where}{why} (no permission to read or write it)"
    if isinstance(exc, (NotADirectoryError, IsADirectoryError, FileExistsError)):
        return f"{where}{why} (a file where a folder should be, or the reverse)"
    if exc.errno == errno.ENAMETOOLONG:
        return f"{where}{why} (shorten the path)"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{why} (a Dask scheduler or worker did not answer)"
    return f"{where}{why}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    words = [a for a in argv if not a.startswith("-")]
    helping = any(a in ("-h", "--help") for a in argv[:1])
    args = parser(None if helping or not words else words[0]).parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"dse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from dse.search.interrupt import Terminated

        print(
            "dse: interrupted; finished batches are saved (continue with --resume)", file=sys.stderr
        )
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # the reader left (dse show ... | head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
        return 0
    except OSError as exc:  # the disk is full, the folder went away: a run failed, not a bug
        print(f"dse: error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except ClusterError as exc:  # no worker started, every job died: finished chunks are kept
        print(f"dse: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
