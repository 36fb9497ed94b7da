"""Fixtures. Reference data comes from the repository's own ``data/`` folder (see its README);
a missing file fails the test rather than skipping it."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # makes dse_test_plugins importable, as a user's plugin module


DATA = REPO / "data"


def reference_data(name: str) -> Path:
    """A reference table shipped in ``data/``."""
    path = DATA / name
    if not path.is_file():
        pytest.fail(f"reference data {path} not found (data/README.md lists the shipped tables)")
    return path


def example_module(name: str) -> ModuleType:
    """A module of ``examples/`` (the reference networks, the spaces written as PyTorch),
    imported as a user runs it: with ``examples/`` on the import path."""
    folder = str(REPO / "examples")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: finds the test plugin module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
