"""Fixtures for procman's integration tests; the helpers live in ``tests/procman_support.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procman_support import Project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A temporary project; any procman still running at the end is killed."""
    made = Project(tmp_path)
    yield made
    made.stop_all()
