"""Helpers of the FastAPI example's tests (a plain module, so test modules import it by name)."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
"""The example's folder: its Procfile, and the folder its processes import ``fastshop`` from."""
TOKEN = "a long dashboard test token"


def make_importable() -> None:
    """Put the example's folder on ``sys.path``, as uvicorn and ``workerkit worker`` put their working
    directory there, so ``fastshop`` imports under the names its processes use."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
