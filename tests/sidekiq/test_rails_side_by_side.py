"""The documented example for real: ``procman start -r sidekiq`` in examples/rails_side_by_side runs Redis,
a Sidekiq process and a workerkit worker; a job a Ruby script pushes (as a Rails controller would) runs in
Python, which hands a job back to Ruby."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from polling import wait_for
from procman_support import interrupt

from workerkit.api import Api
from workerkit.keys import Keys

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rails_side_by_side"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
def test_sidekiq_and_workerkit_side_by_side_under_procman(tmp_path: Path, sidekiq_view: object) -> None:
    if shutil.which("sidekiq") is None:
        pytest.skip("the sidekiq command is not installed (apt-get install ruby-sidekiq)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env_file = tmp_path / "test.env"
    env_file.write_text(f"REDIS_PORT={port}\nREDIS_URL={url}\nREDIS_DIR={tmp_path / 'redis'}\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WORKERKIT_", "REDIS_"))}
    env["PROCMAN_SOCKET"] = str(tmp_path / "procman.sock")
    log = tmp_path / "procman.log"
    command = [sys.executable, "-m", "procman", "start", "-f", str(EXAMPLE / "Procfile"), "-e", str(env_file),
               "-r", "sidekiq", "-p", str(free_port())]
    with log.open("wb") as out:
        procman = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    conn = redis.Redis.from_url(url)
    try:
        api = Api(conn, Keys())

        def queues_worked() -> list[str] | None:
            try:
                processes = api.processes()
            except redis.ConnectionError:
                return None  # Redis is not listening yet
            return sorted(",".join(process.queues) for process in processes) if len(processes) == 2 else None

        wait_for(queues_worked, "Sidekiq and the workerkit worker to register", timeout=60)
        assert queues_worked() == ["python", "ruby"], log.read_text()
        enqueue = subprocess.run(["ruby", "enqueue.rb", "42", "64x64"], cwd=EXAMPLE, env={**env, "REDIS_URL": url},
                                 capture_output=True, text=True, timeout=60)
        assert enqueue.returncode == 0 and enqueue.stdout.startswith("enqueued ThumbnailWorker "), enqueue.stderr

        wait_for(lambda: conn.hget("notified", "42"), "the Ruby NotifyWorker to run after the Python job")
        assert conn.hgetall("thumbnails") == {b"42": b"64x64"}
        assert conn.hgetall("notified") == {b"42": b"64x64 thumbnail ready"}
        # Both count lazily: workerkit with its next fetch (within about a second), Sidekiq at its 5 s heartbeat.
        wait_for(lambda: int(conn.get("stat:processed") or 0) == 2, "both jobs to be counted as processed")
        assert int(conn.get("stat:failed") or 0) == 0 and conn.zcard("retry") == 0 and conn.zcard("dead") == 0
    finally:
        conn.close()  # `workerkit redis` waits for its clients to leave before it stops
        interrupt(procman)
    assert procman.returncode == 130, log.read_text()  # procman's code for "stopped by SIGINT"
    for name in ("redis.1", "sidekiq.1", "python.1"):
        assert f"{name} stopped (exit 0)" in log.read_text()  # ended cleanly on procman's TERM
    assert "made the 64x64 thumbnail of image 42" in log.read_text()
    assert "told the owner of image 42 that its 64x64 thumbnail is ready" in log.read_text()
