"""The Redis URL forms (one server, Sentinel, Cluster) and what each is refused with; the hash-tagged key
names of a Cluster; ``wait_replicas`` against a real server without replicas (``NotReplicated``, and the
job still queued)."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

import workerkit
from workerkit import config, topology
from workerkit.keys import Keys


def test_a_sentinel_url_names_the_sentinels_the_service_the_database_and_both_credentials() -> None:
    found = topology.parse("redis+sentinel://app:p%40ss@h1:26380,h2,[::1]:26381/mymaster/2"
                           "?sentinel_username=watch&sentinel_password=w")
    assert (found.kind, found.nodes, found.service, found.db) == (
        "sentinel", (("h1", 26380), ("h2", 26379), ("::1", 26381)), "mymaster", 2)
    assert (found.credentials, found.sentinel_credentials, found.tls) == (
        {"username": "app", "password": "p@ss"}, {"username": "watch", "password": "w"}, {})
    assert topology.parse("redis+sentinel://h1/mymaster").db == 0


def test_a_cluster_url_with_tls_options() -> None:
    found = topology.parse("rediss+cluster://:secret@h1:7000,h2:7001?ssl_cert_reqs=none&ssl_check_hostname=false")
    assert (found.kind, found.nodes, found.credentials, found.is_cluster) == (
        "cluster", (("h1", 7000), ("h2", 7001)), {"password": "secret"}, True)
    assert found.tls == {"ssl": True, "ssl_cert_reqs": "none", "ssl_check_hostname": False}


def test_one_server_urls_are_left_to_redis_py() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@host/1", "unix:///run/redis.sock?db=2"):
        assert (topology.parse(url).kind, topology.parse(url).is_cluster) == ("server", False)


@pytest.mark.parametrize(("url", "message"), [
    ("redis+sentinel://u:hunter2@h1:26379", r"^Redis URL redis\+sentinel://u:\*\*\*@h1:26379: the Sentinel service "
                                            r"name is missing: redis\+sentinel://host:26379,host:26379/mymaster/0$"),
    ("redis+sentinel://h1/mymaster/x", r"the database must be one number, not 'x'$"),
    ("redis+sentinel://h1/mymaster/1/2", r"the database must be one number, not '1/2'$"),
    ("redis+cluster://h1:7000/3", r"a Redis Cluster has database 0 only: leave the path out$"),
    ("redis+cluster://h1:70x0", r"the port of 'h1:70x0' is not a number$"),
    ("redis+cluster://h1,,h2", r"the address '' has no host$"),
    ("redis+cluster://h1?ssl_ca_certs=/ca.pem", r"TLS options \(ssl_ca_certs\) need the rediss\+cluster:// scheme$"),
    ("redis+cluster://h1?db=1", r"unknown option 'db' \(known: ssl_ca_certs, ssl_certfile, ssl_keyfile, "
                                r"ssl_cert_reqs, ssl_check_hostname\)$"),
    ("redis+cluster://h1?sentinel_password=x", r"unknown option 'sentinel_password'"),
    ("rediss+sentinel://h1/m?ssl_check_hostname=maybe", r"ssl_check_hostname must be true or false, not 'maybe'$"),
])
def test_a_bad_url_is_refused_naming_it_with_the_password_masked(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        config.configure(redis_url=url)
    assert "hunter2" not in str(refused.value)
    assert config.current().redis_url != url  # nothing changed
    config.reset()


def test_cluster_keys_carry_the_namespace_as_their_hash_tag() -> None:
    assert (Keys("app", hash_tag=True).queue("mail"), Keys(hash_tag=True).schedule) == (
        "{app}:queue:mail", "{workerkit}:schedule")
    assert Keys("app").queue("mail") == "app:queue:mail" and Keys().schedule == "schedule"  # Sidekiq's layout
    config.reset()
    config.configure(redis_url="redis+cluster://127.0.0.1:7000", namespace="shop")
    assert config.keys() == Keys("shop", hash_tag=True)
    config.reset()


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_wait_replicas_must_be_a_whole_number(value: object) -> None:
    with pytest.raises(ValueError, match=rf"^wait_replicas must be a whole number of at least 0, not {value!r}$"):
        config.configure(wait_replicas=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^wait_timeout_ms must be a whole number of at least 1, not 0$"):
        config.configure(wait_timeout_ms=0)
    assert (config.current().wait_replicas, config.current().wait_timeout_ms) == (0, 1000)


def test_a_push_no_replica_confirms_raises_not_replicated_and_stays_queued(wk: redis.Redis) -> None:
    config.configure(wait_replicas=1, wait_timeout_ms=20)
    with pytest.raises(workerkit.NotReplicated, match=r"^pushed job [0-9a-f]{24} to the Redis primary, but only 0 "
                                                      r"of 1 replica\(s\) confirmed it within 20 ms") as one:
        workerkit.push("app.Report", [1])
    with pytest.raises(workerkit.NotReplicated, match=r" and 2497 more to the Redis primary") as bulk:
        workerkit.push_bulk("app.Report", [[n] for n in range(2500)])

    async def apush() -> None:
        try:
            await workerkit.apush("app.Report", [2])
        finally:
            await config.close_async_redis_client()

    with pytest.raises(workerkit.NotReplicated) as awaited:
        asyncio.run(apush())
    queued = [json.loads(raw)["jid"] for raw in wk.lrange("queue:default", 0, -1)]
    assert len(queued) == 2502 and set(queued) == {*one.value.jids, *bulk.value.jids, *awaited.value.jids}
    assert (len(bulk.value.jids), bulk.value.confirmed) == (2500, 0)
    config.configure(wait_replicas=0)
    assert workerkit.push("app.Report", [3]) and wk.llen("queue:default") == 2503


def test_the_dashboard_names_where_it_looked_on_every_topology() -> None:
    from workerkit.web.outage import masked_url

    cases = {
        "redis://:pw@127.0.0.1:6390/2": "redis://:***@127.0.0.1:6390/2",
        "redis+cluster://app:pw@127.0.0.1:7000,127.0.0.1:7001": "redis+cluster://app:***@127.0.0.1:7000,127.0.0.1:7001",
        "redis+sentinel://app:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/1":
            "redis+sentinel://app:***@127.0.0.1:26379,127.0.0.1:26380/mymaster/1",
    }
    for url, shown in cases.items():
        client = config.new_redis_client(url)  # nothing connects until a command
        assert masked_url(client) == shown
        client.close()
