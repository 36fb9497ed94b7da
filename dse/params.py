"""The one validator of user input: a config table against a typed signature.

Plugins declare their parameters as annotated keyword arguments (``dataset: Literal["cifar10",
"cifar100"] = "cifar10"``), and the config's own sections are typed dataclasses
(:mod:`dse.config`) checked the same way. :func:`bind_params` rejects unknown keys, missing
required keys and values of the wrong type or outside a ``Literal``, with messages that name the
field (``space.dataset``) and list what is allowed; :func:`expect` checks one value against one
annotation (a section is a table, a list of tables). Range checks stay in the plugin's
``__init__`` (a dataclass's ``__post_init__``), whose ``ValueError`` :func:`create` reports under
the same field prefix.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal


class ConfigError(ValueError):
    """Bad user input; the message names the field. The CLI exits with code 2 on it."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        item = (typing.get_args(tp) or (Any,))[0]
        return "a list of " + _PLURAL.get(item, f"items of type {_type_name(item)}")
    if tp is type(None):
        return "none"
    return {
        int: "an integer",
        float: "a finite number",
        str: "a string",
        bool: "true or false",
        dict: "a table",
    }.get(tp, getattr(tp, "__name__", str(tp)))


_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "booleans", dict: "tables"}


def check_type(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, converted value) for ``value`` against annotation ``tp``; ints pass as floats."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True, value
    origin = typing.get_origin(tp)
    if origin is Literal:
        return (
            value in typing.get_args(tp) and type(value) in {type(a) for a in typing.get_args(tp)}
        ), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conv = check_type(value, arg)
            if ok:
                return True, conv
        return False, value
    if origin is list or (origin is tuple and typing.get_args(tp)[1:] == (...,)):
        # a list, or a tuple of any length (tuple[X, ...]), of one item type
        if not isinstance(value, (list, tuple)) or (origin is list and isinstance(value, tuple)):
            return False, value
        item = (typing.get_args(tp) or (Any,))[0]
        converted = []
        for v in value:
            ok, conv = check_type(v, item)
            if not ok:
                return False, value
            converted.append(conv)
        return True, converted if origin is list else tuple(converted)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return isinstance(value, dict), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:  # NaN and infinities are refused: a NaN bound would silently drop a check
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp) if isinstance(tp, type) else True, value


def _refusal(where: str, tp: Any, value: Any) -> str:
    """The one line for ``value`` that does not fit annotation ``tp`` at ``where``."""
    if typing.get_origin(tp) is Literal:
        allowed = ", ".join(repr(a) for a in typing.get_args(tp))
        return f"{where}: {value!r} is not allowed; allowed values: {allowed}"
    return f"{where}: expected {_type_name(tp)}, got {value!r}"


def expect(value: Any, tp: Any, where: str) -> Any:
    """``value`` (converted: ints to floats where a number is wanted) if it fits annotation
    ``tp``; else a ConfigError naming ``where``."""
    ok, converted = check_type(value, tp)
    if not ok:
        raise ConfigError(_refusal(where, tp, value))
    return converted


def bind_params(factory: Callable, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validated keyword arguments for ``factory`` from a config table at ``where``."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: check names only
        hints = {}
    accepted = {
        name: p
        for name, p in sig.parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in accepted:
            if takes_any:
                out[key] = value
                continue
            allowed = ", ".join(sorted(accepted)) or "(none)"
            raise ConfigError(f"{where}.{key}: unknown parameter; allowed: {allowed}")
        out[key] = expect(value, hints.get(key, inspect.Parameter.empty), f"{where}.{key}")
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in params]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: missing required field")
    return out


def create(factory: Callable, params: Mapping[str, Any], where: str) -> Any:
    """Build a plugin from a config table, reporting its own ``ValueError`` under ``where``."""
    kwargs = bind_params(factory, params, where)
    try:
        return factory(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        first = msg.split(":", 1)[0].split(".")[0]  # "choices.depth: ..." names "choices"
        prefix = f"{where}." if first in kwargs or first in _param_names(factory) else f"{where}: "
        raise ConfigError(f"{prefix}{msg}") from None


def _param_names(factory: Callable) -> set[str]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    return set(inspect.signature(target).parameters)
