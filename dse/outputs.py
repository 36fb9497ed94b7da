"""Files a command writes for the user (``--out`` CSVs, calibrations, models): never replaced
without ``--force``, written whole or not at all.

A user who runs ``dse cost ... --out pred.csv`` twice, the second time on other networks, must
not lose the first table; a command killed while writing must not leave half a file that a
later step reads as whole. So a command claims its output before any work (:func:`claim`:
an existing file is one line naming the option, exit 2, nothing written) and writes it with
the run store's atomic write (:func:`write`: a temporary file, fsync, rename).
"""

from __future__ import annotations

from pathlib import Path

from dse.inputs import writable_folder
from dse.params import ConfigError
from dse.results.store import atomic_write_bytes


def claim(path: str | Path, option: str, force: bool) -> Path:
    """``path`` as a file this command may write: its folder writable, and no file there unless
    ``force`` (then it is replaced). Call before any work, so a refusal writes nothing."""
    p = Path(path)
    writable_folder(p.parent, option)
    if p.is_dir():
        raise ConfigError(f"{option}: {str(path)!r} is a folder, not a file")
    if p.exists() and not force:
        raise ConfigError(f"{option}: {path} exists; keep it or pass --force to replace it")
    return p


def write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all, creating its folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, data.encode() if isinstance(data, str) else data)
