"""Catalogs as data: a TOML file shipped inside a plugin package, extended by a user's file.

FPGA boards, GPUs and LLM presets are all tables keyed by name; a user's file of the same shape
adds entries and overrides shipped ones by name. Errors name the file and the offending field.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_catalog(
    package: str,
    resource: str,
    user_file: str | Path | None,
    file_field: str,
    parse: Callable[[str, dict, str], T],
) -> dict[str, T]:
    """``parse(name, table, where)`` over the shipped ``package/resource`` and then ``user_file``
    (the config field that named it is ``file_field``, for error messages)."""
    text = resources.files(package).joinpath(resource).read_text()
    entries = {n: parse(n, t, resource) for n, t in tomllib.loads(text).items()}
    if user_file is not None:
        p = Path(user_file)
        try:
            user = tomllib.loads(p.read_text())
        except OSError as exc:
            raise ValueError(f"{file_field}: cannot read {str(p)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file_field}: {p}: invalid TOML: {exc}") from None
        entries.update({n: parse(n, t, str(p)) for n, t in user.items()})
    return entries


def check_fields(name: str, table: dict, where: str, allowed, required=()) -> None:
    """Reject unknown fields and missing required ones of catalog entry ``name``."""
    for key in table:
        if key not in allowed:
            raise ValueError(
                f"{where}.{name}.{key}: unknown field; allowed: {', '.join(sorted(allowed))}"
            )
    for key in required:
        if key not in table:
            raise ValueError(f"{where}.{name}.{key}: missing required field")


def shipped_files(package: str, folder: str) -> list[str]:
    """Names (stems) of the TOML files shipped in ``package/folder``."""
    root = resources.files(package).joinpath(folder)
    if not root.is_dir():  # a plugin that ships none
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_named_file(
    package: str,
    folder: str,
    name_or_path: str | Path,
    parse: Callable[[dict, str], T],
    what: str,
    keywords: tuple[str, ...] = ("none", "auto"),
) -> T:
    """``parse(data, where)`` of a TOML file by path, or of the one shipped in ``package/folder``
    by name; anything else is a ValueError listing ``keywords`` and the shipped names (``what``
    says what was asked for, e.g. "calibration")."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"calibration: {p}: not UTF-8 text (a {what} is TOML)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"calibration: {p}: not valid TOML ({exc})") from None
        return parse(data, str(p))
    names = shipped_files(package, folder)
    if str(name_or_path) not in names:
        raise ValueError(
            f"calibration: {str(name_or_path)!r} is neither a TOML file nor a shipped "
            f"{what}; allowed values: {list(keywords) + names}"
        )
    text = resources.files(package).joinpath(folder, f"{name_or_path}.toml").read_text()
    return parse(tomllib.loads(text), f"{folder}/{name_or_path}.toml")


def sheet_number(where: str, key: str, value, zero_ok: bool = False, whole: bool = False) -> float:
    """A data-sheet number of a catalog entry: positive (``zero_ok``: or 0, e.g. an idealised
    device with no launch overhead or a CPU without an L3; ``whole``: a count, such as cores or
    PE rows); the error names ``where.key``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        what = "a number >= 0" if zero_ok else "a positive number"
        raise ValueError(f"{where}.{key}: expected {what}, got {value!r}")
    if whole and value % 1:
        raise ValueError(f"{where}.{key}: expected a whole number, got {value!r}")
    return float(value)


def number_table(data: Mapping[str, Any], key: str, where: str, what: str) -> dict[str, float]:
    """``data[key]`` (absent: empty), a TOML table of ``what = number`` (e.g. a calibration's
    per-class efficiencies), as a dict; anything else is one error naming ``where.key``."""
    raw = data.get(key, {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.{key}: expected a table of {what} = number")
    try:
        return {str(name): float(value) for name, value in raw.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}.{key}: every value must be a number") from None


def sheet_choice(where: str, key: str, value, allowed) -> str:
    """A data-sheet word of a catalog entry, one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"{where}.{key}: {value!r} is not allowed; allowed values: {list(allowed)}"
        )
    return str(value)


def resolve_named_file(
    package: str,
    folder: str,
    spec: str,
    own: str,
    parse: Callable[[dict, str], T],
    what: str,
) -> T | None:
    """A calibration spec as every simulator reads it: ``"none"``: None; ``"auto"``: the file
    shipped in ``package/folder`` named ``own`` (the device's or board's name), else None;
    otherwise a shipped name or a TOML path (:func:`load_named_file`)."""
    if spec == "none" or (spec == "auto" and own not in shipped_files(package, folder)):
        return None
    return load_named_file(package, folder, own if spec == "auto" else spec, parse, what)


def check_fitted_to(name: str, fitted_to: str, device: str) -> None:
    """Refuse a calibration fitted to another device (its scales and its validated error are
    that device's): one line naming both and how to fit one. ``fitted_to`` empty: a
    calibration that names no device, accepted."""
    if fitted_to and fitted_to != device:
        raise ValueError(
            f"calibration: {name!r} was fitted on {fitted_to!r}, and the device is {device!r} "
            f"(dse calibrate --device {device} fits one for it)"
        )
