"""``workerkit web``: serve the dashboard on its own with uvicorn, behind HTTP basic auth from the environment.

``WORKERKIT_WEB_USER`` and ``WORKERKIT_WEB_PASSWORD`` set the credentials (both or neither);
``WORKERKIT_WEB_SECRET`` signs the CSRF cookie (set it when several processes serve one address).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import uvicorn

from workerkit.web.app import dashboard
from workerkit.web.security import Auth, basic_auth

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def auth_from_env(env: Mapping[str, str]) -> Auth | None:
    """Basic auth from ``WORKERKIT_WEB_USER`` / ``WORKERKIT_WEB_PASSWORD``; None when neither is set."""
    user, password = env.get("WORKERKIT_WEB_USER", ""), env.get("WORKERKIT_WEB_PASSWORD", "")
    if bool(user) != bool(password):
        raise ValueError("set both WORKERKIT_WEB_USER and WORKERKIT_WEB_PASSWORD, or neither")
    return basic_auth(user, password) if user else None


def serve(host: str, port: int, env: Mapping[str, str]) -> None:
    """Run the dashboard at http://host:port/ until interrupted."""
    auth = auth_from_env(env)
    log = logging.getLogger("workerkit.web")
    if auth is None and host not in LOOPBACK:
        log.warning("the dashboard listens on %s without authentication: set WORKERKIT_WEB_USER/PASSWORD", host)
    log.info("dashboard on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
    uvicorn.run(dashboard(auth=auth), host=host, port=port, log_level="warning", server_header=False)
