"""``workerkit web``: serve the dashboard on its own with uvicorn, behind HTTP basic auth from the environment.

``WORKERKIT_WEB_USER`` and ``WORKERKIT_WEB_PASSWORD`` set the credentials (both or neither); without them
the dashboard only listens on a loopback address. ``WORKERKIT_WEB_ALLOWED_HOSTS`` (comma-separated) or
``--allowed-host`` name the hosts it answers for besides 127.0.0.1 and localhost. ``WORKERKIT_WEB_SECRET``
signs the CSRF cookie (set it when several processes serve one address). ``WORKERKIT_WEB_METRICS_TOKEN``
lets a Prometheus scraper read ``/metrics`` with that bearer token instead of the dashboard's credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import uvicorn

from workerkit.web.app import dashboard
from workerkit.web.hosts import allowed_names, is_loopback
from workerkit.web.security import Auth, basic_auth, bearer_auth


def auth_from_env(env: Mapping[str, str]) -> Auth | None:
    """Basic auth from ``WORKERKIT_WEB_USER`` / ``WORKERKIT_WEB_PASSWORD``; None when neither is set."""
    user, password = env.get("WORKERKIT_WEB_USER", ""), env.get("WORKERKIT_WEB_PASSWORD", "")
    if bool(user) != bool(password):
        raise ValueError("set both WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or neither")
    return basic_auth(user, password) if user else None


def allowed_hosts_from(options: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
    """The ``--allowed-host`` options, else ``WORKERKIT_WEB_ALLOWED_HOSTS`` split at commas; None when neither."""
    names = list(options) or [name.strip() for name in env.get("WORKERKIT_WEB_ALLOWED_HOSTS", "").split(",")
                              if name.strip()]
    try:
        allowed_names(names)
    except ValueError as exc:
        source = "--allowed-host" if options else "WORKERKIT_WEB_ALLOWED_HOSTS"
        raise ValueError(f"{source}: {str(exc).removeprefix('allowed_hosts: ')}") from None
    return names or None


def serve(host: str, port: int, env: Mapping[str, str], allowed_hosts: Sequence[str] = ()) -> None:
    """Run the dashboard at http://host:port/ until interrupted.

    Raises ValueError (a usage error) for half the credentials, a bad allowed host, or a ``host`` beyond
    loopback without credentials: the dashboard's buttons delete jobs.
    """
    auth = auth_from_env(env)
    hosts = allowed_hosts_from(allowed_hosts, env)
    if auth is None and not is_loopback(host.lower()):
        raise ValueError(
            f"--host {host} would open the dashboard, and its buttons that delete jobs, to the network "
            "without a password: set WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or bind 127.0.0.1"
        )
    shown = host if ":" not in host else f"[{host}]"
    logging.getLogger("workerkit.web").info("dashboard on http://%s:%d/", shown, port)
    token = env.get("WORKERKIT_WEB_METRICS_TOKEN", "")
    app = dashboard(auth=auth, allowed_hosts=hosts, metrics_auth=bearer_auth(token) if token else None)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
