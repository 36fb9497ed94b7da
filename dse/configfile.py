"""Reading a config file: TOML, with its relative paths taken from the file's own folder.

A config names files (benchmark tables, board and device catalogs, calibrations, an optuna
SQLite study, the output folder). Relative to what? To the config file's folder, so
``dse run experiments/a.toml`` means the same from any working directory, and a plugin module
(or a ``[space] factory`` module) that sits beside the config is importable (its folder is
recorded as ``run.plugin_dirs``). Paths given on the command line (``--output``,
``--resume``) stay relative to the current directory, as every shell user expects. A config
given as a dict is taken as it is.

Which values are paths is declared once, here: :data:`PATH_KEYS` in ``[space]``,
``[space.restrict]``, ``[proxies.*]``, ``[simulators.*]`` and an ``arch = {file, column}`` sweep
parameter; ``run.output``; ``search.storage`` when it is a ``sqlite:///`` URL;
``search.warm_start`` when it is a path rather than a run id; ``calibration`` when it names a
``.toml`` file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dse.params import ConfigError

#: parameter names whose string values are file paths, in any space, proxy or simulator table
PATH_KEYS = frozenset(
    {"file", "truth", "boards_file", "devices_file", "models_file", "accuracy_file"}
)
SQLITE = "sqlite:///"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The TOML at ``path`` as plain data, its relative paths resolved against its folder."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(p)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p}: {len(raw)} bytes is not a config (at most {MAX_CONFIG_BYTES} bytes)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); TOML is UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid TOML: arrays or tables nested too deep") from None
    check_depth(data, str(p))
    return resolve_paths(data, p.resolve().parent)


#: a config file larger than this is refused before parsing (configs are a few kilobytes)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: tables and arrays nested deeper than this are refused (a config needs about five)
MAX_DEPTH = 32


def check_depth(data: Any, where: str) -> None:
    """Refuse values nested deeper than :data:`MAX_DEPTH` (a config as a dict, too): deeper
    data would only reach a RecursionError in JSON or the manifest."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: values nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _resolved(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def _resolve_table(table: Any, base: Path) -> None:
    if not isinstance(table, dict):
        return
    for key, value in table.items():
        if key in PATH_KEYS:
            table[key] = _resolved(value, base)
        elif key == "calibration" and isinstance(value, str) and value.endswith(".toml"):
            table[key] = _resolved(value, base)
        elif key == "restrict" and isinstance(value, dict):
            _resolve_table(value, base)


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` with every relative path of :data:`PATH_KEYS` (and the others the module
    docstring lists) made absolute against ``base``; modifies and returns ``data``."""
    run = data.get("run")
    space = data.get("space")
    factory = isinstance(space, dict) and isinstance(space.get("factory"), str)
    if isinstance(run, dict):
        if "output" in run:
            run["output"] = _resolved(run["output"], base)
        if run.get("plugins") or factory:  # a space's factory module may sit beside it too
            dirs = run.get("plugin_dirs", [])
            if isinstance(dirs, list):
                run["plugin_dirs"] = [str(base)] + [_resolved(d, base) for d in dirs]
    _resolve_table(data.get("space"), base)
    for section in ("proxies", "simulators"):
        tables = data.get(section)
        if isinstance(tables, dict):
            for table in tables.values():
                _resolve_table(table, base)
    search = data.get("search")
    if isinstance(search, dict):
        storage = search.get("storage")
        if isinstance(storage, str) and storage.startswith(SQLITE):
            rest = storage[len(SQLITE) :]
            if rest and not rest.startswith("/") and rest != ":memory:":
                search["storage"] = SQLITE + str(base / rest)
        warm = search.get("warm_start")
        if isinstance(warm, str) and ("/" in warm or warm.startswith(".")):
            search["warm_start"] = _resolved(warm, base)
    sweep = data.get("sweep")
    if isinstance(sweep, dict) and isinstance(sweep.get("parameters"), dict):
        arch = sweep["parameters"].get("arch")
        if isinstance(arch, dict):
            _resolve_table(arch, base)
    return data
