"""Shared fixtures. Reference data comes from ``../shared/data`` beside the repository
(override with DSE_SHARED_DATA); a missing file fails the test rather than skipping it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # makes dse_test_plugins importable, as a user's plugin module


def shared_data(name: str) -> Path:
    root = Path(os.environ.get("DSE_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / name
    if not path.is_file():
        pytest.fail(f"reference data {path} not found; set DSE_SHARED_DATA to the shared/data folder")
    return path


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: finds the test plugin module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
