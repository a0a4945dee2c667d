"""workerkit.testing (fake, inline) and the command line (``workerkit run``, usage errors)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import redis
import wk_jobs

from workerkit import testing
from workerkit.runner import UnknownJobError

HERE = Path(__file__).parent


def run_cli(*args: str, url: str = "redis://127.0.0.1:1/0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "WORKERKIT_REDIS_URL": url}
    return subprocess.run(["workerkit", *args], capture_output=True, text=True, env=env, timeout=60)


def test_fake_collects_and_drain_runs_nested_pushes(wk: redis.Redis) -> None:
    with testing.fake() as jobs:
        wk_jobs.Nested.perform_async("out")
        wk_jobs.send_mail.delay_for(60, "mail", "a@example.com")
        assert [job["class"] for job in jobs.jobs] == ["wk_jobs.Nested", "wk_jobs.send_mail"]
        assert [job["args"] for job in jobs.jobs_for(wk_jobs.send_mail)] == [["mail", "a@example.com"]]
        assert wk.dbsize() == 0
        assert jobs.drain() == 3
        assert jobs.jobs == []
    assert wk.lrange("out", 0, -1) == [b"from-nested"]
    assert wk.lrange("mail", 0, -1) == [b"a@example.com"]
    wk_jobs.Record.perform_async("after", 1)
    assert wk.llen("queue:default") == 1


def test_fake_drain_raises_the_jobs_error_and_keeps_the_rest(wk: redis.Redis) -> None:
    with testing.fake() as jobs:
        wk_jobs.Flaky.perform_async("flaky")
        wk_jobs.Record.perform_async("k", 1)
        with pytest.raises(RuntimeError, match="attempt failed"):
            jobs.drain()
        assert [job["class"] for job in jobs.jobs] == ["wk_jobs.Record"]
        jobs.push({"class": "not.Registered", "args": [], "jid": "x"})
        jobs.jobs.pop(0)
        with pytest.raises(UnknownJobError):
            jobs.drain()


def test_inline_runs_at_once_and_still_checks_arguments(wk: redis.Redis) -> None:
    with testing.inline():
        wk_jobs.Record.perform_in(3600, "k", "now")
        with pytest.raises(TypeError, match=r"args\[1\]"):
            wk_jobs.Record.perform_async("k", object())
    assert wk.lrange("k", 0, -1) == [b"now"]
    assert wk.zcard("schedule") == 0


def test_workerkit_run_runs_one_job_in_the_foreground(redis_url: str, redis_client: redis.Redis) -> None:
    result = run_cli("run", "wk_jobs.Record", "run-key", "1.50", url=redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INFO: done" in result.stdout
    assert redis_client.lrange("run-key", 0, -1) == [b"1.5"]
    result = run_cli("run", "wk_jobs.send_mail", "mail", "plain text", url=redis_url)
    assert (result.returncode, redis_client.lrange("mail", 0, -1)) == (0, [b"plain text"])
    failed = run_cli("run", "wk_jobs.Flaky", "f", url=redis_url)
    assert failed.returncode == 1 and "RuntimeError: attempt failed for f" in failed.stdout


def test_json_log_format_carries_the_job_context(redis_url: str) -> None:
    result = run_cli("run", "wk_jobs.Record", "json-key", "1", "--log-format", "json", url=redis_url)
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert (line["lvl"], line["msg"], line["ctx"]["class"]) == ("INFO", "done", "wk_jobs.Record")
    assert len(line["ctx"]["jid"]) == 24


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "wk_jobs.Missing"], "workerkit run: wk_jobs.Missing is not a registered job"),
        (["run", "nomodule_here.Job"], "workerkit run: cannot load job module nomodule_here: ModuleNotFoundError"),
        (["worker", "-r", "nomodule_here"], "workerkit worker: cannot load -r nomodule_here: ModuleNotFoundError"),
        (["worker", "-q", "a,x"], "workerkit worker: -q queue 'a,x': the weight must be a whole number"),
        (["worker", "-q", "a", "-q", "a"], "workerkit worker: -q: a queue is listed twice"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
