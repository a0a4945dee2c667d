"""Fuzzing the inputs procman and workerkit take from users and from Redis: formation and port options,
command lines (in-process and a few through the real binaries), queue specs, and job payloads run through
a real worker's runner. Never a traceback; a clear error (exit 2 on the command line) or a dead job.

procman's own tests already fuzz the Procfile and .env parsers (tests/procman/test_procfile.py and
test_environment.py); here they meet the formation and the command line.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
import reliability_jobs  # noqa: F401  (registers the jobs the runner may find)
import reliability_kit as kit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procman import cli
from procman.errors import ConfigError
from procman.formation import build_formation, parse_concurrency
from procman.procfile import parse_procfile
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.payload import PayloadError, decode
from workerkit.recovery import Sweeper
from workerkit.runner import Runner
from workerkit.scheduler import Scheduler
from workerkit.server import RunningServer

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ENTRIES = parse_procfile("web: a\nworker: b\nclock: c\n", "Procfile")
FORMATION_TEXT = st.text(alphabet=st.sampled_from("webworkclockall=,-0123456789 _x٣\t"), max_size=40)


@FUZZ
@given(FORMATION_TEXT, st.integers(min_value=-10**6, max_value=10**6))
def test_any_formation_and_base_port_build_or_fail_clearly(text: str, base: int) -> None:
    try:
        instances = build_formation(ENTRIES, parse_concurrency(text), base)
    except ConfigError as error:
        assert str(error).startswith(("-c/--concurrency: ", "-p/--port or PORT: ")), str(error)
    else:
        assert all(1 <= instance.port <= 65535 for instance in instances)


def test_a_huge_count_is_refused_before_anything_is_built() -> None:
    with pytest.raises(ConfigError, match=r"web=100000000 needs ports up to 100004999"):
        build_formation(ENTRIES, parse_concurrency("web=100000000"), 5000)


OPTION = st.sampled_from(["-c", "-p", "-e", "-f", "-d", "-x", "-t", "--no-color", "--", "-r", "--can-die", "-z"])
WORD = st.text(alphabet=st.sampled_from("web=,1-0.:/x٣ \x7f"), max_size=12)


def _procman_main(argv: list[str]) -> tuple[int, str]:
    """Run procman's CLI in-process; its exit code and everything it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, err.getvalue()


@FUZZ
@given(st.sampled_from(["check", "export"]), st.lists(st.one_of(OPTION, WORD), max_size=8))
def test_any_check_or_export_command_line_runs_or_exits_2(tmp_path: Path, command: str, words: list[str]) -> None:
    (tmp_path / "Procfile").write_text("web: a\nworker: b\n")
    base = ["-f", str(tmp_path / "Procfile")] + (["runit", str(tmp_path / "out")] if command == "export" else [])
    with contextlib.chdir(tmp_path):  # not the repository's own [tool.procman], whose redis this Procfile lacks
        code, err = _procman_main([command, *base, *words])
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.strip(), "exit 2 without a message"


HOSTILE_ARGV = [
    (["procman", "check", "-c", "web=99999999999999"], "-c/--concurrency"),
    (["procman", "check", "-p", "99999"], "-p/--port or PORT"),
    (["procman", "check", "-c", "web"], "expected NAME=COUNT"),
    (["procman", "start", "nosuch"], "unknown process 'nosuch'"),
    (["procman", "check", "-e", "/nonexistent/.env"], "/nonexistent/.env"),
    (["workerkit", "worker", "-c", "0"], "at least 1"),
    (["workerkit", "worker", "-q", "a,0"], "weight"),
    (["workerkit", "worker", "-q", ","], "empty queue name"),
    (["workerkit", "worker", "-r", "no_such_module_xyz"], "cannot load -r no_such_module_xyz"),
    (["workerkit", "worker", "-t", "-1"], "negative"),
    (["workerkit", "run", "nodots"], "not a dotted path"),
]


@pytest.mark.parametrize(("argv", "expected"), HOSTILE_ARGV)
def test_the_real_binaries_refuse_bad_arguments_in_one_line(tmp_path: Path, argv: list[str], expected: str) -> None:
    (tmp_path / "Procfile").write_text("web: a\nworker: b\n")
    done = subprocess.run([kit.tool(argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr


@FUZZ
@given(st.text(max_size=30))
def test_any_queue_spec_parses_or_names_itself(text: str) -> None:
    try:
        spec = QueueSpec.parse(text)
    except ValueError as error:
        assert str(error).startswith(f"queue {text!r}: ")
    else:
        assert spec.name and spec.weight >= 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decode_returns_a_job_or_a_payload_error(raw: bytes) -> None:
    try:
        payload = decode(raw)
    except PayloadError:
        return
    assert isinstance(payload["class"], str) and isinstance(payload["args"], list)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
CLASSES = st.sampled_from(["reliability_jobs.Accept", "reliability_jobs.BrokenInit", "app.NoSuchJob", "", 7, None])
PAYLOAD = st.fixed_dictionaries(
    {"class": CLASSES, "args": st.lists(JSON, max_size=3) | JSON},
    optional={"jid": JSON, "retry": JSON, "retry_count": JSON, "queue": JSON, "recovered": JSON, "extra": JSON},
)


@pytest.fixture
def runner(own_server: RunningServer, conn: redis.Redis) -> tuple[redis.Redis, Runner]:
    return conn, Runner(threading.Event())


@FUZZ
@given(PAYLOAD)
def test_any_payload_run_by_the_runner_leaves_flight_without_raising(
    runner: tuple[redis.Redis, Runner], payload: dict[str, Any]
) -> None:
    conn, job_runner = runner
    fetch = ReliableFetch(conn, Keys(), "fuzz:1:abcdef", [QueueSpec("default")])
    conn.lpush(Keys().queue("default"), json.dumps(payload, allow_nan=True))
    [unit] = fetch.fetch(1)
    job_runner.process(unit)  # must not raise, whatever the payload holds
    fetch.fetch(0)  # sends the acknowledgement of a job that ran
    assert conn.llen(fetch.inflight_keys[0]) == 0
    for member in conn.zrange(Keys().dead, 0, -1) + conn.zrange(Keys().retry, 0, -1):
        entry = decode(member)
        assert entry["error_message"] is not None and not any(
            isinstance(value, float) and not math.isfinite(value) for value in entry.values())
    conn.delete(Keys().dead, Keys().retry)


@FUZZ
@given(PAYLOAD | st.binary(max_size=50).map(lambda raw: {"raw": raw.decode("latin-1")}))
def test_any_orphaned_payload_is_recovered_without_raising(conn: redis.Redis, payload: dict[str, Any]) -> None:
    keys = Keys()
    dead_worker = ReliableFetch(conn, keys, "gone:1:abcdef", [QueueSpec("default")])
    conn.hset(keys.inflight_lists, mapping=dead_worker.registry_entries())
    raw = payload["raw"] if set(payload) == {"raw"} else json.dumps(payload, allow_nan=True)
    conn.lpush(dead_worker.inflight_keys[0], raw)
    conn.delete(keys.process_cleanup_lock)
    assert Sweeper(conn, keys, 10.0).sweep() == 1  # must not raise, whatever the payload holds
    assert conn.llen(dead_worker.inflight_keys[0]) == 0
    assert conn.llen(keys.queue("default")) + conn.zcard(keys.dead) == 1
    conn.delete(keys.queue("default"), keys.dead)


@FUZZ
@given(st.lists(PAYLOAD.map(lambda payload: json.dumps(payload, allow_nan=True)) | st.binary(max_size=30).map(
    lambda raw: raw.decode("latin-1")) | st.just("[" * 100_000), min_size=1, max_size=4, unique=True))
def test_any_due_member_is_promoted_without_blocking_the_others(conn: redis.Redis, members: list[str]) -> None:
    keys = Keys()
    conn.zadd(keys.schedule, {member: 1.0 for member in members})
    assert Scheduler(conn, keys).promote_due() == len(members)  # one poison member must not block the rest
    assert conn.zcard(keys.schedule) == 0
    queued = sum(int(conn.llen(keys.queue(name.decode()))) for name in conn.smembers(keys.queues))
    assert queued + conn.zcard(keys.dead) == len(members)  # an unreadable member is quarantined in the dead set
    conn.flushdb()
