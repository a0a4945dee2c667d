"""``workerkit web``: the standalone server, a real process on a real port, behind basic auth."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest
from dashboard_helpers import WORKERKIT, free_port


def test_the_standalone_server_serves_the_dashboard_behind_basic_auth(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "WORKERKIT_WEB_USER": "ops", "WORKERKIT_WEB_PASSWORD": "hunter2"}
    command = [*WORKERKIT, "web", "--port", str(port), "--redis-url", redis_url]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                refused = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not start listening"
                time.sleep(0.1)
        page = httpx.get(f"http://127.0.0.1:{port}/", auth=("ops", "hunter2"), timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert refused.status_code == 401
    assert page.status_code == 200 and "<title>Dashboard · workerkit</title>" in page.text


@pytest.mark.parametrize("env", [{"WORKERKIT_WEB_USER": "ops"}, {"WORKERKIT_WEB_PASSWORD": "x"}])
def test_half_the_credentials_is_a_usage_error(env: dict[str, str]) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("WORKERKIT_WEB_")}
    result = subprocess.run(
        [*WORKERKIT, "web", "--port", "1"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "workerkit web: set both WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or neither"
