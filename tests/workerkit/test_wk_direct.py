"""``workerkit.direct``: one command per round trip on connections kept out of the pool, each given back
clean (no reply left unread on it), one set per process, and redis-py's own path while its metrics are on."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection
from redis.observability.providers import get_observability_instance

from workerkit import direct
from workerkit.connection import single_try
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.server import running_server


class Interrupted(BaseException):
    """Stands for what can land between a command's send and its reply: a JobTimeout, a KeyboardInterrupt."""


def _interrupt_next_read(monkeypatch: pytest.MonkeyPatch) -> None:
    real = redis.connection.AbstractConnection.read_response
    left = [1]

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if left[0]:
            left[0] -= 1
            raise Interrupted  # the command was sent, its reply is on its way and nobody reads it
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", read_response)


def test_a_reply_left_unread_by_an_interruption_never_answers_the_next_command(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = direct.connections(redis_client)
    assert kept.execute("ECHO", "warm") == b"warm"
    _interrupt_next_read(monkeypatch)
    with pytest.raises(Interrupted):
        kept.execute("ECHO", "first")
    assert [connection._sock for connection in kept._idle] == [None]  # not left to the check before the next use
    assert kept.execute("ECHO", "second") == b"second"
    assert kept.execute("ECHO", "third") == b"third"


def test_an_error_reply_keeps_the_connection(redis_client: redis.Redis) -> None:
    kept = direct.connections(redis_client)
    before = kept.execute("CLIENT", "ID")
    with pytest.raises(redis.exceptions.NoScriptError):
        kept.execute("EVALSHA", "0" * 40, 0)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        kept.execute("NO-SUCH-COMMAND")
    assert kept.execute("CLIENT", "ID") == before


def test_a_connection_the_server_closed_is_opened_again(redis_client: redis.Redis) -> None:  # no retry policy needed
    kept = direct.connections(redis_client)
    first = kept.execute("CLIENT", "ID")
    admin = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    assert admin.client_kill_filter(_id=int(first)) == 1
    assert kept.execute("SET", "k", "v") == b"OK"
    assert kept.execute("GET", "k") == b"v"
    assert kept.execute("CLIENT", "ID") != first
    admin.close()


def test_a_command_while_redis_is_down_tries_to_connect_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_server(tmp_path / "redis", kind="embedded") as server:
        kept = direct.connections(redis.Redis.from_url(server.url, retry=single_try()))
        assert kept.execute("PING") == b"PONG"  # a connection is kept
        server.stop()
        attempts: list[None] = []
        real = redis.connection.AbstractConnection.connect_check_health

        def connect(self: Any, *args: Any, **kwargs: Any) -> None:
            attempts.append(None)
            real(self, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "connect_check_health", connect)
        for _ in range(3):
            with pytest.raises(redis.ConnectionError):
                kept.execute("PING")
        assert len(attempts) == 3  # one per command: an address that does not answer costs one connect timeout
        server.start()
        assert kept.execute("ECHO", "back") == b"back"


def test_threads_each_get_their_own_replies_on_at_most_one_connection_each(redis_client: redis.Redis) -> None:
    kept = direct.connections(redis_client)
    wrong: list[tuple[int, int, Any]] = []
    ids: set[bytes] = set()
    start = threading.Barrier(8)

    def talk(thread: int) -> None:
        start.wait()
        for n in range(300):
            reply = kept.execute("ECHO", f"{thread}:{n}")
            if reply != f"{thread}:{n}".encode():
                wrong.append((thread, n, reply))
        ids.add(kept.execute("CLIENT", "ID"))

    threads = [threading.Thread(target=talk, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert wrong == []
    assert 1 <= len(ids) <= 8
    assert redis_client.connection_pool._created_connections <= 8  # one per thread at most, none per command


def test_it_keeps_few_connections_and_gives_the_rest_back_to_the_pool(redis_client: redis.Redis) -> None:
    url = redis_client.get_connection_kwargs()
    small = redis.Redis(connection_pool=redis.ConnectionPool(**url, max_connections=1))
    assert direct.connections(small).execute("PING") == b"PONG"
    assert small.ping() is True  # the pool's one connection is back in the pool, free for its own commands
    bounded = redis.Redis(connection_pool=redis.ConnectionPool(**url, max_connections=12))
    kept = direct.connections(bounded)
    start = threading.Barrier(12)

    def talk() -> None:
        start.wait()
        for n in range(100):
            assert kept.execute("ECHO", str(n)) == str(n).encode()

    threads = [threading.Thread(target=talk) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    in_use = bounded.connection_pool._in_use_connections
    assert 1 <= len(kept._idle) <= 3  # a quarter of the limit (a race may keep one more)
    assert len(in_use) == len(kept._idle)  # every other connection went back to the pool
    small.close()
    bounded.close()


def test_a_forked_child_opens_its_own_connection(redis_client: redis.Redis) -> None:
    kept = direct.connections(redis_client)
    parent = kept.execute("CLIENT", "ID")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.write(write, str(kept.execute("CLIENT", "ID")).encode())
        except BaseException as exc:
            os.write(write, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        in_child = pipe.read()
    os.waitpid(child, 0)
    assert in_child.isdigit() and int(in_child) != parent
    assert kept.execute("CLIENT", "ID") == parent  # the parent's socket was left alone


def test_one_set_of_connections_per_pool(redis_client: redis.Redis) -> None:
    assert direct.connections(redis_client) is direct.connections(redis_client)
    other = redis.Redis(connection_pool=redis.ConnectionPool(**redis_client.connection_pool.connection_kwargs))
    assert direct.connections(other) is not direct.connections(redis_client)
    other.close()


@pytest.mark.parametrize("metrics_on", [False, True])
def test_a_caught_job_comes_by_redis_py_command_layer_only_while_its_metrics_are_on(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    commands_via_redis_py: Callable[[redis.Redis], list[str]], metrics_on: bool,
) -> None:
    if metrics_on:
        monkeypatch.setattr(get_observability_instance(), "_provider_manager", object())
    keys = Keys("")
    job = b'{"class":"A","args":[],"jid":"j1","queue":"default"}'
    redis_client.lpush(keys.queue("default"), job)
    sent = commands_via_redis_py(redis_client)
    fetch = ReliableFetch(redis_client, keys, "host:1", [QueueSpec("default")], metrics=False)
    caught = fetch.wait_for_job(0, 1.0)
    assert caught is not None and caught.raw == job
    assert fetch.wait_for_job(0, 0.1) is None  # the queue is empty: the watch times out with nothing
    assert sent == (["BLMOVE", "BLMOVE"] if metrics_on else [])
    assert redis_client.lrange(keys.inflight("host:1", "default"), 0, -1) == [job]
