"""The input checks every command shares: a table file read into a frame, its columns, a plugin
by name with its parameters, ``KEY=VALUE`` options, counts. Each refusal is a
:class:`~dse.params.ConfigError` naming the option (one line, exit 2, nothing written), so
``dse run``, ``dse proxy-eval``, ``dse calibrate`` and the others refuse bad input alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dse.params import ConfigError, create
from dse.registry import Registry, UnknownPluginError


def read_table(path: str | Path, option: str, dtype: Any = None) -> pd.DataFrame:
    """The CSV (or Parquet) table at ``path``; what cannot be read is one line naming
    ``option`` and why (missing, a folder, empty, not a table)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{option}: {str(path)!r} does not exist")
    if not p.is_file():
        raise ConfigError(f"{option}: {str(path)!r} is not a file")
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p, dtype=dtype)  # a type for every column, or a column -> type map
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{option}: {str(path)!r} is empty (a table with a header row)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{option}: {str(path)!r} is not a CSV table ({first})") from None
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {str(path)!r}: {exc.strerror or exc}") from None


def require_columns(df: pd.DataFrame, columns: Iterable[tuple[str, str]], path: str) -> None:
    """Each ``(option, column)`` names a column of ``df`` (read from ``path``)."""
    for option, column in columns:
        if column not in df.columns:
            raise ConfigError(
                f"{option}: {column!r} is not a column of {path}; allowed values: "
                f"{list(df.columns)}"
            )


def require_filled(df: pd.DataFrame, columns: Iterable[str], option: str, path: str) -> None:
    """Every cell of each of ``columns`` (architecture keys, read as text) holds text: an empty
    one, or one pandas reads as missing (``NA``, ``null``), is one line naming ``option``, the
    column and the row (the first data row is 1)."""
    for column in columns:
        text = df[column].astype("string")
        empty = (text.isna() | (text.str.strip() == "")).fillna(True).to_numpy(dtype=bool)
        if empty.any():
            row = int(empty.argmax()) + 1
            raise ConfigError(f"{option}: row {row} of {path} has no {column!r} (an empty cell)")


def require_numbers(
    df: pd.DataFrame,
    column: str,
    option: str,
    path: str,
    low: float = 0.0,
    strict: bool = False,
    whole: bool = False,
) -> np.ndarray:
    """``df[column]`` as floats, each finite and at least ``low`` (``strict``: above it;
    ``whole``: a whole number); the first row that is not (text, empty, out of range) is one
    line naming ``option``, the column and the row (the first data row is 1)."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values <= low if strict else values < low)
    if whole:
        bad |= values % 1 != 0
    if bad.any():
        what = f"{'a whole number' if whole else 'a number'} {'>' if strict else '>='} {low:g}"
        what = "a positive number" if what == "a number > 0" else what
        row = int(bad.argmax()) + 1
        raise ConfigError(f"{option}: {column}: row {row} of {path} is not {what}")
    return values


#: the architecture column a table of architectures is read by when none is named: the first of
#: these it has (``dse calibrate`` and ``dse cost`` read the same CSV: HELP's and HW-NAS-Bench's
#: FBNet tables call it ``arch``, NAS-Bench-201's ``arch_str``)
ARCH_COLUMNS = ("arch", "arch_str")


def read_arch_table(path: str, option: str, given: str | None) -> tuple[pd.DataFrame, str]:
    """The table at ``path`` (:func:`read_table`, ``option`` naming it) and the column that holds
    its architectures, read as text: ``given`` (``--arch-column``), else the first of
    :data:`ARCH_COLUMNS` it has; one line naming ``--arch-column`` where there is none."""
    named = ARCH_COLUMNS if given is None else (given,)
    df = read_table(path, option, dtype={c: str for c in named})
    if given is not None:
        require_columns(df, [("--arch-column", given)], path)
        column = given
    else:
        found = [c for c in ARCH_COLUMNS if c in df.columns]
        if not found:
            raise ConfigError(
                f"--arch-column: {path} has none of {list(ARCH_COLUMNS)}; name its architecture "
                f"column; allowed values: {list(df.columns)}"
            )
        column = found[0]
    require_filled(df, [column], option, path)
    return df, column


def arch_from_text(space: Any, text: str) -> dict[str, Any]:
    """The architecture a table cell holds: a JSON object of ``space``'s variables, or the
    space's string form (its ``parse``), checked against the variables; a ``ValueError`` (or
    ``KeyError``) says why not. ``dse calibrate`` and ``dse cost`` read one CSV alike."""
    if text.lstrip().startswith("{"):
        arch = json.loads(text)
    elif hasattr(space, "parse"):
        arch = space.parse(text)
    else:
        raise ValueError(
            f"space {space.name!r} has no string form; give a JSON object of its variables"
        )
    space.encode(arch)  # every variable known and in range
    return arch


def key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["resolution=32", "task=jigsaw"]`` -> ``{"resolution": 32, "task": "jigsaw"}``: each
    value read as JSON, else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def plugin(
    registry: Registry,
    name: str,
    params: Mapping[str, Any],
    option: str,
    params_option: str,
    section: str,
) -> Any:
    """The plugin ``name`` of ``registry`` made with ``params`` (checked against its signature,
    as the config's ``section`` would be); an unknown name names ``option``, a bad parameter
    ``params_option`` and the field (``--space-param: space.task: ...``)."""
    try:
        entry = registry.get(name)
    except UnknownPluginError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    try:
        return create(entry.factory, params, section)
    except ConfigError as exc:
        raise ConfigError(f"{params_option}: {exc}") from None


def add_plugin_arguments(p: argparse.ArgumentParser) -> None:
    """``--plugins`` and ``--plugin-dir``, wherever a command names a space or provider: a
    user's plugin module is found as a config's ``run.plugins`` would find it."""
    p.add_argument(
        "--plugins",
        nargs="+",
        default=[],
        metavar="MODULE",
        help="modules to import first, so their spaces and providers register (importing a "
        "module runs its code, like any Python import)",
    )
    p.add_argument(
        "--plugin-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder put on the import path for --plugins (repeatable)",
    )


def add_space_arguments(
    p: argparse.ArgumentParser, default: str | None = "nasbench201", what: str = "architectures"
) -> None:
    """``--space``, its ``--space-param KEY=VALUE`` options and the plugin options, wherever a
    command names a space (read back by :func:`space_from`)."""
    p.add_argument("--space", default=default, help=f"the {what}' space (default {default})")
    p.add_argument(
        "--space-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the space, e.g. dataset=cifar100 or task=jigsaw (repeatable; "
        "values read as JSON, else as text)",
    )
    add_plugin_arguments(p)


def space_from(args: argparse.Namespace, extra: Mapping[str, Any] | None = None) -> Any:
    """The space ``--space`` names with its ``--space-param`` values (and ``extra``), after
    ``--plugins``; every refusal names its option."""
    from dse.registry import SPACES

    import_requested_plugins(args)
    params = {**(extra or {}), **key_values(args.space_param, "--space-param")}
    return plugin(SPACES, args.space, params, "--space", "--space-param", "space")


def import_plugins(
    modules: tuple[str, ...], folders: tuple[str, ...] = (), where: str = "run.plugins"
) -> None:
    """Import user plugin modules so their ``@register`` decorators run; ``folders`` (a config
    file's own) go on the import path first, so a module beside the config is found. A module
    that cannot be imported is a ConfigError naming ``where``."""
    for folder in folders:
        if folder not in sys.path:
            sys.path.insert(0, folder)
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
            raise ConfigError(
                f"{where}[{i}]: cannot import {module!r}: {type(exc).__name__}: {exc}"
            ) from None


def import_requested_plugins(args: argparse.Namespace) -> None:
    """Import what ``--plugins`` names (from ``--plugin-dir`` first)."""
    folders = tuple(str(Path(d).resolve()) for d in args.plugin_dir)
    import_plugins(tuple(args.plugins), folders, where="--plugins")


def writable_folder(path: str | Path, option: str) -> Path:
    """``path`` if a run can be written there (it, or the nearest folder above it that exists,
    is a folder this process may write in, and its names fit the file system); checked before
    anything is created, so a bad ``--output`` writes nothing."""
    p = Path(path)
    for part in p.parts:
        if len(part.encode()) > 255:
            raise ConfigError(f"{option}: the name {part[:40]!r}... is longer than 255 bytes")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write in {str(probe)!r} (permission denied)")
    return p


def at_least(low: int):
    """An argparse type: a whole number >= ``low`` (argparse names the option and exits 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def check_plugin_trust(config: Mapping[str, Any], folder: Path, trusted: bool) -> None:
    """A resumed run or sweep re-imports the plugin modules its manifest names, from the
    folders it names (and a ``[space] factory``'s module): code from wherever the folder came
    from. Unless ``trusted`` (``--trust-plugins``), refuse when any of those folders lies
    outside the run ``folder``."""
    run = config.get("run") or {}
    space = config.get("space") or {}
    modules = list(run.get("plugins") or [])
    if isinstance(space.get("factory"), str):  # a space written as PyTorch imports its module
        modules.append(space["factory"].partition(":")[0])
    if trusted or not modules:
        return
    inside = folder.resolve()
    outside = [
        d for d in run.get("plugin_dirs") or [] if not Path(d).resolve().is_relative_to(inside)
    ]
    if outside:
        raise ConfigError(
            f"--trust-plugins: {folder} imports plugin modules {modules} from "
            f"{outside}, outside the run folder; importing them runs their code. Pass "
            "--trust-plugins if you trust them, or the config file you ran it with"
        )
