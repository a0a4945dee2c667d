"""The sync push's own path to Redis (``workerkit.client._Direct``): the same pool, scripts, retries and
errors as redis-py's ``execute_command``, without its per-command layers; redis-py's own path while its
metrics are on."""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import wk_jobs
from redis.observability.providers import get_observability_instance

import workerkit
from workerkit import config


def test_a_push_after_the_server_forgot_its_scripts_loads_them_again(wk: redis.Redis) -> None:
    wk_jobs.Record.perform_async("k", 1)
    wk.script_flush()
    wk_jobs.Record.perform_async("k", 2)
    wk_jobs.Record.set(unique_for=60).perform_async("k", 3)  # push_unique.lua, also flushed
    wk.script_flush()
    wk_jobs.Record.set(unique_for=60).perform_async("k", 4)
    assert [workerkit.payload.decode(raw)["args"] for raw in wk.lrange("queue:default", 0, -1)] == [
        ["k", 4], ["k", 3], ["k", 2], ["k", 1]]


def test_a_push_on_a_connection_the_server_closed_reconnects_and_lands_once(wk: redis.Redis) -> None:
    wk_jobs.Record.perform_async("k", 1)  # the shared client's pool now holds a connection
    assert wk.client_kill_filter(_type="normal", skipme=True) >= 1
    wk_jobs.Record.perform_async("k", 2)
    wk_jobs.Record.perform_in(60, "k", 3)  # ZADD, on the same path
    assert wk.llen("queue:default") == 2 and wk.zcard("schedule") == 1


def test_a_push_to_a_server_nobody_serves_names_it(wk: redis.Redis) -> None:
    with socket.socket() as probe:  # a port bound but not listening: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        config.configure(redis_url=f"redis://127.0.0.1:{probe.getsockname()[1]}/0")
        with pytest.raises(workerkit.client.RedisUnreachable, match=r"cannot push the job: Redis at redis://127"):
            wk_jobs.Record.perform_async("k", 1)
        with pytest.raises(workerkit.client.RedisUnreachable, match="cannot push the job"):
            wk_jobs.Record.perform_at(time.time() + 60, "k", 2)


def test_pushes_skip_redis_py_command_layer_unless_its_metrics_are_on(
    wk: redis.Redis, monkeypatch: pytest.MonkeyPatch, commands_via_redis_py: Callable[[redis.Redis], list[str]],
) -> None:
    sent = commands_via_redis_py(config.redis_client())
    wk_jobs.Record.perform_async("k", 1)
    assert sent == []
    monkeypatch.setattr(get_observability_instance(), "_provider_manager", object())  # metrics on
    wk_jobs.Record.perform_async("k", 2)
    wk_jobs.Record.perform_in(60, "k", 3)
    assert sent == ["EVALSHA", "ZADD"]
    assert wk.llen("queue:default") == 2 and wk.zcard("schedule") == 1


@pytest.mark.parametrize("value", [
    {"class": "a.B", "args": [1, -2.5, 1e16, 2**80, "é\u2028\"\\", None, True, {"k": [[]]}], "retry": 3},
    "top-level text", [], 0.1, {"\ud800": "\udfff"},  # lone surrogates pass here; check_args refuses them first
])
def test_encode_writes_what_the_strict_encoder_writes(value: Any) -> None:
    strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)
    assert workerkit.payload.encode(value) == strict.encode(value)


@pytest.mark.parametrize(("value", "error"), [
    ([math.nan], "Out of range float values are not JSON compliant"), ({"k": math.inf}, "Out of range float"),
    ({("t",): 1}, "keys must be str, int, float, bool or None, not tuple"), ([object()], "not JSON serializable"),
])
def test_encode_refuses_what_json_cannot_hold(value: Any, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        workerkit.payload.encode(value)
