"""The installed commands exist and the embedded server speaks the Redis protocol."""

from __future__ import annotations

import subprocess
import sys

import redis

from procman import __version__ as procman_version


def test_procman_version_command() -> None:
    result = subprocess.run(["procman", "version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout == f"procman {procman_version}\n"


def test_python_dash_m_procman() -> None:
    result = subprocess.run([sys.executable, "-m", "procman", "version"], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"procman {procman_version}\n")


def test_server_round_trip(redis_client: redis.Redis) -> None:
    assert redis_client.lpush("queue:default", "a", "b") == 2
    assert redis_client.rpop("queue:default") == b"a"
    assert redis_client.config_get("appendonly") == {"appendonly": "yes"}
