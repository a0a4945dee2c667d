"""The dashboard's defence against DNS rebinding: answer only for host names it was meant to serve.

A page on another site can point its own name at 127.0.0.1 and then talk to a dashboard on this machine as
a same-origin page; the only trace of the trick is the ``Host`` header, which names the other site. So an
open dashboard (no auth hook) answers only requests whose ``Host`` is a loopback address (127.0.0.0/8,
``::1``) or ``localhost``, with any port, plus the names in ``allowed_hosts``. Behind an auth hook the
browser of a rebinding page has no credentials or session cookie to send, so every host passes, unless
``allowed_hosts`` is given: then the same list applies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost"})


def host_name(host: str) -> str:
    """The name in a ``Host`` header (or an allow-list entry) without its port, lower case, without a final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:  # example.com:8000 (an IPv6 address without brackets has several colons)
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_loopback(name: str) -> bool:
    """Whether ``name`` (from :func:`host_name`) is ``localhost`` or a loopback address."""
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_names(allowed_hosts: Iterable[str]) -> frozenset[str]:
    """Check and normalise an ``allowed_hosts`` list: plain host names or addresses, a port is ignored."""
    if isinstance(allowed_hosts, str):
        raise TypeError("allowed_hosts must be a list of host names, not one string")
    names = set()
    for entry in allowed_hosts:
        name = host_name(entry) if isinstance(entry, str) else ""
        if not name or "/" in entry or "*" in entry or " " in name:
            raise ValueError(f"allowed_hosts: {entry!r} is not a host name (write 'jobs.example.com', no scheme)")
        names.add(name)
    return frozenset(names)


class HostGuard:
    """ASGI middleware refusing (400) HTTP requests whose ``Host`` is not loopback or in ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            name = host_name(host)
            if not (is_loopback(name) or name in self.allowed):
                await _refusal(host)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(host: str) -> PlainTextResponse:
    return PlainTextResponse(
        f"Refused: this dashboard does not answer for the host {host[:100]!r}.\n"
        "It answers for 127.0.0.1 and localhost; to serve it under another name, list that name in\n"
        "dashboard(allowed_hosts=[...]) (workerkit web: --allowed-host or WORKERKIT_WEB_ALLOWED_HOSTS).\n",
        status_code=400,
    )
