"""The FastAPI example for real: ``procman start -f examples/fastapi_app/Procfile -c worker=2`` runs its
Redis, uvicorn and two workers (in a scratch folder, on free ports); the test places orders and warms the
cache over HTTP, waits for every job's exact result in Redis, opens the dashboard with and without the
token, then stops procman with SIGTERM while jobs run and reopens the saved data: no job was lost."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import polling
import pytest
import redis
from fa_support import EXAMPLE, TOKEN
from procman_support import PROCMAN

from workerkit.keys import Keys
from workerkit.server import running_server

pytest.importorskip("fastapi", minversion="0.110")

KEYS = Keys()
ORDERS = 5
WARMED = 20
SLOW = 20
"""Jobs still running when procman gets SIGTERM: the workers let them finish (their ``-t`` is 25 s)."""
SLOW_SECONDS = 3.0


def free_base_port() -> int:
    """A base port for procman whose Foreman neighbour +100 (web; redis takes the base) is free too."""
    for _ in range(50):
        with socket.socket() as redis_probe, socket.socket() as web_probe:
            redis_probe.bind(("127.0.0.1", 0))
            base = int(redis_probe.getsockname()[1])
            if base + 100 >= 65535:
                continue
            try:
                web_probe.bind(("127.0.0.1", base + 100))
            except OSError:
                continue
            return base
    raise RuntimeError("no free pair of ports")


class Shop:
    """The running example: a client of its web app and of its Redis, procman and its output."""

    def __init__(self, procman: subprocess.Popen[bytes], output: Path, web: httpx.Client, conn: redis.Redis) -> None:
        self.procman, self.output, self.web, self.conn = procman, output, web, conn

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 60) -> object:
        return polling.wait_for(condition, what, timeout, detail=lambda: f"procman output:\n{self.log()[-6000:]}")

    def members(self, key: str) -> set[int]:
        return {int(member) for member in self.conn.smembers(key)}


def _answers(probe: Callable[[], object]) -> bool:
    try:
        probe()
    except (redis.ConnectionError, httpx.TransportError):
        return False
    return True


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """``procman start`` of the example's Procfile with two workers, up and beating; killed if a test fails."""
    base = free_base_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WORKERKIT_", "REDIS_", "PROCMAN_", "FASTSHOP_")) and key != "PORT"}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=str(EXAMPLE),  # the Procfile's commands run in the scratch folder (-d), not the example's
        FASTSHOP_DASHBOARD_TOKEN=TOKEN,
        FASTSHOP_FOLLOW_UP_SECONDS="1",
        WORKERKIT_HEARTBEAT_INTERVAL="1",
        WORKERKIT_POLL_INTERVAL="0.5",
    )
    output = tmp_path / "procman.log"
    command = [PROCMAN, "start", "-f", str(EXAMPLE / "Procfile"), "-c", "worker=2",
               "-d", str(tmp_path), "-p", str(base), "-t", "30"]  # -t: the repository's pyproject.toml gives 30
    with output.open("wb") as sink:
        procman = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    conn = redis.Redis(port=base, decode_responses=True)
    web = httpx.Client(base_url=f"http://127.0.0.1:{base + 100}", timeout=30)
    shop = Shop(procman, output, web, conn)
    try:
        shop.wait_for(lambda: _answers(conn.ping), "Redis")
        shop.wait_for(lambda: _answers(lambda: web.get("/")), "the web app")
        shop.wait_for(lambda: conn.scard(KEYS.processes) == 2, "both workers' heartbeats")
        yield shop
    finally:
        web.close()
        conn.close()
        if procman.poll() is None:
            procman.kill()  # procman's guardian then ends every process it started
            procman.wait(30)


def test_the_example_runs_every_job_shows_the_dashboard_and_stops_without_losing_any(
    shop: Shop, tmp_path: Path,
) -> None:
    orders = [shop.web.post("/orders", json={"customer": f"customer {n}", "item": "book", "quantity": n})
              for n in range(1, ORDERS + 1)]
    assert [(placed.status_code, placed.json()["order_id"]) for placed in orders] == [
        (201, n) for n in range(1, ORDERS + 1)]
    warming = shop.web.post("/cache/warm", json={"count": WARMED, "seconds": 0.1})
    assert (warming.status_code, len(warming.json()["jids"])) == (202, WARMED)

    ids = set(range(1, ORDERS + 1))
    shop.wait_for(lambda: shop.members("fastshop:warmed") == set(range(WARMED)), "the cache warmed")
    shop.wait_for(lambda: shop.members("fastshop:charged") == ids, "the orders charged")
    shop.wait_for(lambda: shop.conn.exists(*[f"fastshop:receipt:{n}" for n in ids]) == ORDERS, "the receipts")
    shop.wait_for(lambda: shop.members("fastshop:follow-ups") == ids, "the follow-ups, a second later")
    jobs = 3 * ORDERS + WARMED
    shop.wait_for(lambda: int(shop.conn.get(KEYS.stat("processed")) or 0) == jobs, f"{jobs} jobs counted")
    assert shop.web.get("/report").json() == {"orders": ORDERS, "charged": ORDERS, "follow_ups": ORDERS,
                                              "warmed": WARMED}
    assert shop.web.get("/orders/3").json() == {  # the receipt job fetched the order from the app over HTTP
        "order_id": 3, "customer": "customer 3", "item": "book", "quantity": 3, "status": "charged",
        "receipt": "Receipt for order 3: 3 x book for customer 3"}
    assert int(shop.conn.get(KEYS.stat("failed")) or 0) == 0
    log = shop.log()
    assert log.count("class=fastshop.jobs.send_receipt") >= ORDERS and "INFO: receipt sent for order 5" in log

    anonymous = shop.web.get("/workerkit/")
    assert (anonymous.status_code, anonymous.headers["www-authenticate"][:6]) == (401, "Basic ")
    assert shop.web.get("/workerkit/busy", headers={"authorization": "Bearer wrong"}).status_code == 401
    signed_in = {"authorization": f"Bearer {TOKEN}"}
    assert "<title>Dashboard · workerkit</title>" in shop.web.get("/workerkit/", headers=signed_in).text
    stats = shop.web.get("/workerkit/stats.json", auth=("ops", TOKEN)).json()  # basic auth, as a browser sends
    assert (stats["processes"], stats["processed"], stats["enqueued"]) == (2, jobs, 0)
    busy = shop.web.get("/workerkit/busy", headers=signed_in)
    identities = {str(identity) for identity in shop.conn.smembers(KEYS.processes)}
    assert len(identities) == 2 and all(f'value="{identity}"' in busy.text for identity in identities)

    slow = shop.web.post("/cache/warm", json={"first": 100, "count": SLOW, "seconds": SLOW_SECONDS})
    assert slow.status_code == 202
    shop.wait_for(lambda: shop.web.get("/workerkit/stats.json", headers=signed_in).json()["busy"] == SLOW,
                  "the slow jobs running (in the workers' heartbeats)", 10)
    assert shop.members("fastshop:warmed") == set(range(WARMED))
    shop.conn.close()  # `workerkit redis` waits for its clients to leave before it stops
    shop.procman.send_signal(signal.SIGTERM)
    assert shop.procman.wait(45) == 128 + signal.SIGTERM  # procman's own code for a TERM (docs/procman.md)
    log = shop.log()
    for name in ("worker.1", "worker.2", "redis.1"):
        assert re.search(rf"\| {re.escape(name)} stopped \(exit 0\)$", log, re.MULTILINE), log[-6000:]
    assert "Application shutdown complete." in log  # uvicorn ends by re-raising the TERM it handled
    assert re.search(r"\| web\.1 stopped \((exit 0|SIGTERM)\)$", log, re.MULTILINE), log[-6000:]
    assert "was killed by SIGKILL" not in log
    waited = re.findall(r"shutting down: waiting up to 25 s for (\d+) running job\(s\)", log)
    assert (len(waited), sum(map(int, waited))) == (2, SLOW), log[-6000:]
    assert log.count("0 job(s) still running at the deadline, 0 job(s) pushed back to their queues") == 2

    with running_server(tmp_path / ".workerkit" / "redis") as saved:  # the data the Procfile's Redis wrote
        conn = redis.Redis(port=saved.port)
        try:
            assert {int(member) for member in conn.smembers("fastshop:warmed")} == (
                set(range(WARMED)) | set(range(100, 100 + SLOW)))
            assert int(conn.get(KEYS.stat("processed")) or 0) == jobs + SLOW
            assert conn.keys("queue:*") == [] and conn.keys("inflight:*") == []
            assert [conn.zcard(key) for key in (KEYS.schedule, KEYS.retry, KEYS.dead)] == [0, 0, 0]
            assert conn.scard(KEYS.processes) == 0
        finally:
            conn.close()
