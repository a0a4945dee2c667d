"""Helpers of the Django tests (a plain module, so test modules import it by name; conftest uses it too)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

HERE = Path(__file__).parent


def project_env(site_env: dict[str, str], **extra: str) -> dict[str, str]:
    """This process's environment plus the test project's (``PYTHONPATH``, settings) and quick heartbeats."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKERKIT_HEARTBEAT_INTERVAL": "0.5",
        **site_env,
        **extra,
    }


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
