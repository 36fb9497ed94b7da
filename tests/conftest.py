"""Fixtures. Reference data comes from the repository's own ``data/`` folder (see its README);
a missing file fails the test rather than skipping it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: finds the test plugin module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
