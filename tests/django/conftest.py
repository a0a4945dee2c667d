"""Fixtures for the Django tests: the test project (``wkdj_site``, ``wkdj_app``) set up in this process on an
sqlite file, and real ``python -m django ...`` / ``workerkit ...`` processes running it.

Nothing here imports Django at module level: each test module skips itself when Django is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from dj_support import project_env
from process_support import ChildProcess, Children

from workerkit import config
from workerkit.server import RunningServer, running_server

sys.path.insert(0, str(Path(__file__).parent))
SETTINGS_MODULE = "wkdj_site.settings"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The embedded server only: what these tests check does not depend on the server kind, and running
    them once keeps them quick (this replaces the suite's fixture of every kind for this folder)."""
    with running_server(tmp_path_factory.mktemp("redis-django"), kind="embedded") as server:
        yield server


@pytest.fixture(scope="session")
def site_env(redis_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The variables the test project's settings read: its sqlite file (in a temporary folder) and Redis."""
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "WKDJ_DATABASE": str(tmp_path_factory.mktemp("django") / "db.sqlite3"),
        "WKDJ_REDIS_URL": redis_server.url,
    }


@pytest.fixture(scope="session")
def django_site(site_env: dict[str, str]) -> Iterator[None]:
    """Django set up in this process with the test project, its database migrated.

    The variables are set only while Django reads them, so no other test's process inherits them; the
    workerkit configuration Django's set-up applied is reset, as the rest of the suite expects it."""
    import django
    from django.core.management import call_command

    os.environ.update(site_env)
    try:
        django.setup()
    finally:
        for name in site_env:
            del os.environ[name]
    call_command("migrate", verbosity=0)
    config.reset()
    yield
    config.reset()


@pytest.fixture
def site(django_site: None, redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """workerkit configured from the test project's settings over an empty Redis, with no rows in the app's
    table; yields a client of that Redis."""
    from django.conf import settings
    from wkdj_app.models import Entry

    from workerkit.contrib.django.conf import apply_settings

    config.reset()
    apply_settings(settings.WORKERKIT)
    Entry.objects.all().delete()
    yield redis_client
    config.reset()


@pytest.fixture
def start_process(site_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """``start_process(*command, env=None)``: run ``command`` (``"python"`` is this interpreter) in the test's
    folder with the test project's environment; every process still running at the end is killed."""
    children = Children(tmp_path)

    def start(*command: str, env: dict[str, str] | None = None) -> ChildProcess:
        argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        return children.start(argv, project_env(site_env, **(env or {})), "process", cwd=tmp_path)

    yield start
    children.kill_all()

