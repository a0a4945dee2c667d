"""``workerkit web``: the standalone server, a real process on a real port, behind basic auth."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from dashboard_helpers import WORKERKIT, free_port
from polling import wait_for

CREDENTIALS = {"WORKERKIT_WEB_USER": "ops", "WORKERKIT_WEB_PASSWORD": "hunter2"}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any WORKERKIT_WEB_* setting, plus ``extra``."""
    return {**{key: value for key, value in os.environ.items() if not key.startswith("WORKERKIT_WEB_")}, **extra}


@contextmanager
def standalone(redis_url: str, env: dict[str, str], *options: str) -> Iterator[str]:
    """A running ``workerkit web`` on a free port; yields its base URL once it answers."""
    port = free_port()
    command = [*WORKERKIT, "web", "--port", str(port), "--redis-url", redis_url, *options]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            httpx.get(base + "/static/dashboard.css", timeout=5)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_for(answers, "the dashboard to listen", timeout=30)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_web(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WORKERKIT, "web", *options], env=env or clean_env(), capture_output=True, text=True,
                          timeout=60)


def test_the_standalone_server_serves_the_dashboard_behind_basic_auth(redis_url: str) -> None:
    with standalone(redis_url, clean_env(**CREDENTIALS)) as base:
        refused = httpx.get(base + "/", timeout=5)
        page = httpx.get(base + "/", auth=("ops", "hunter2"), timeout=5)
    assert refused.status_code == 401
    assert page.status_code == 200 and "<title>Dashboard · workerkit</title>" in page.text


def test_an_open_standalone_server_answers_only_its_own_and_allowed_hosts(redis_url: str) -> None:
    env = clean_env(WORKERKIT_WEB_ALLOWED_HOSTS="jobs.internal, ops.internal")
    with standalone(redis_url, env) as base:
        assert httpx.get(base + "/", timeout=5).status_code == 200
        assert httpx.get(base + "/", headers={"host": "ops.internal:9292"}, timeout=5).status_code == 200
        rebound = httpx.get(base + "/", headers={"host": "rebind.attacker.example"}, timeout=5)
    assert rebound.status_code == 400 and "does not answer for the host 'rebind.attacker.example'" in rebound.text
    with standalone(redis_url, env, "--allowed-host", "jobs.example.com") as base:  # the option wins
        assert httpx.get(base + "/", headers={"host": "jobs.example.com"}, timeout=5).status_code == 200
        assert httpx.get(base + "/", headers={"host": "ops.internal"}, timeout=5).status_code == 400


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_binding_beyond_loopback_needs_credentials(host: str) -> None:
    result = run_web("--port", "1", "--host", host)
    assert result.returncode == 2
    assert result.stderr == (
        f"workerkit web: --host {host} would open the dashboard, and its buttons that delete jobs, to the network "
        "without a password: set WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or bind 127.0.0.1\n"
    )


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        (["--allowed-host", "https://jobs.example.com"], {},
         "--allowed-host: 'https://jobs.example.com' is not a host name"),
        ([], {"WORKERKIT_WEB_ALLOWED_HOSTS": "jobs.example.com,*.example.com"},
         "WORKERKIT_WEB_ALLOWED_HOSTS: '*.example.com' is not a host name"),
    ],
)
def test_a_bad_allowed_host_is_a_usage_error(options: list[str], env: dict[str, str], message: str) -> None:
    result = run_web("--port", "1", *options, env=clean_env(**env))
    assert result.returncode == 2 and result.stderr.startswith(f"workerkit web: {message} ")


@pytest.mark.parametrize("env", [{"WORKERKIT_WEB_USER": "ops"}, {"WORKERKIT_WEB_PASSWORD": "x"}])
def test_half_the_credentials_is_a_usage_error(env: dict[str, str]) -> None:
    result = run_web("--port", "1", env=clean_env(**env))
    assert result.returncode == 2
    assert result.stderr.strip() == "workerkit web: set both WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or neither"
