"""``settings.WORKERKIT`` applied and checked, and ``setup_if_configured`` (in fresh processes, since Django
can be set up once per process)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from dj_support import project_env
from process_support import ChildProcess

from workerkit import config

pytest.importorskip("django", minversion="5.2")

from django.core.exceptions import ImproperlyConfigured

from workerkit.contrib.django.conf import apply_settings
from workerkit.contrib.django.db import close_old_connections_middleware


def on_error(exc: BaseException, payload: dict[str, Any]) -> None:
    """An error handler given as an object rather than a dotted path."""


def test_every_setting_reaches_the_configuration(site: redis.Redis) -> None:
    configured = apply_settings({
        "REDIS_URL": "redis://127.0.0.1:1/3",
        "NAMESPACE": "shop",
        "CLIENT_MIDDLEWARE": ["wkdj_app.jobs.stamp"],
        "SERVER_MIDDLEWARE": ("wkdj_app.jobs.stamp",),
        "ERROR_HANDLERS": [on_error],
        "DEATH_HANDLERS": ["wkdj_app.jobs.stamp"],
        "MAX_RETRIES": 0,
        "DEAD_MAX_JOBS": 50,
        "DEAD_TIMEOUT": 3600,
        "PAYLOAD_FORMAT": "sidekiq8",
        "RESULT_TTL": 60,
        "WAIT_REPLICAS": 1,
        "WAIT_TIMEOUT_MS": 250,
        "JOB_MODULES": ["wkdj_app.jobs"],
    })
    from wkdj_app.jobs import stamp

    assert configured is config.current()
    assert (configured.redis_url, configured.namespace) == ("redis://127.0.0.1:1/3", "shop")
    assert configured.client_middleware == [stamp]
    assert configured.server_middleware == [close_old_connections_middleware, stamp]
    assert (configured.error_handlers, configured.death_handlers) == ([on_error], [stamp])
    assert (configured.max_retries, configured.dead_max_jobs, configured.dead_timeout) == (0, 50, 3600.0)
    assert configured.payload_format == "sidekiq8"
    assert (configured.result_ttl, configured.wait_replicas, configured.wait_timeout_ms) == (60.0, 1, 250)


def test_settings_left_out_keep_their_values_and_the_connection_middleware_comes_once(site: redis.Redis) -> None:
    before = config.current().redis_url
    apply_settings({})
    apply_settings({"MAX_RETRIES": 7})
    assert config.current().redis_url == before
    assert config.current().max_retries == 7
    from wkdj_app.jobs import stamp

    assert config.current().server_middleware == [close_old_connections_middleware, stamp]


@pytest.mark.parametrize(("values", "message"), [
    ([("REDIS_URL", "x")], "settings.WORKERKIT must be a dict, not [('REDIS_URL', 'x')] (list)"),
    ({"REDIS": "redis://x"}, "settings.WORKERKIT['REDIS'] is not a workerkit setting (known: REDIS_URL, NAMESPACE,"),
    ({"REDIS_URL": 6379}, "settings.WORKERKIT['REDIS_URL'] must be a string, not 6379 (int)"),
    ({"REDIS_URL": ""}, "settings.WORKERKIT['REDIS_URL'] must be a Redis URL such as redis://127.0.0.1:6379/0"),
    ({"REDIS_URL": "redis+sentinel://u:pw@s1:26379"}, "settings.WORKERKIT['REDIS_URL']: Redis URL "
     "redis+sentinel://u:***@s1:26379: the Sentinel service name is missing"),
    ({"WAIT_REPLICAS": -1}, "settings.WORKERKIT['WAIT_REPLICAS'] must be a whole number of 0 or more, not -1"),
    ({"WAIT_TIMEOUT_MS": 0.5},
     "settings.WORKERKIT['WAIT_TIMEOUT_MS'] must be a whole number of milliseconds, 1 or more, not 0.5 (float)"),
    ({"RESULT_TTL": -3}, "settings.WORKERKIT['RESULT_TTL'] must be a number of seconds above 0, not -3 (int)"),
    ({"NAMESPACE": None}, "settings.WORKERKIT['NAMESPACE'] must be a string, not None (NoneType)"),
    ({"MAX_RETRIES": "10"}, "settings.WORKERKIT['MAX_RETRIES'] must be a whole number of 0 or more, not '10' (str)"),
    ({"MAX_RETRIES": True}, "settings.WORKERKIT['MAX_RETRIES'] must be a whole number of 0 or more, not True"),
    ({"DEAD_MAX_JOBS": -1}, "settings.WORKERKIT['DEAD_MAX_JOBS'] must be a whole number of 0 or more, not -1"),
    ({"DEAD_TIMEOUT": 0}, "settings.WORKERKIT['DEAD_TIMEOUT'] must be a number of seconds above 0, not 0 (int)"),
    ({"DEAD_TIMEOUT": float("inf")}, "settings.WORKERKIT['DEAD_TIMEOUT'] must be a number of seconds above 0"),
    ({"PAYLOAD_FORMAT": "sidekiq9"},
     "settings.WORKERKIT['PAYLOAD_FORMAT'] must be one of sidekiq7, sidekiq8, not 'sidekiq9' (str)"),
    ({"SERVER_MIDDLEWARE": "wkdj_app.jobs.stamp"},
     "settings.WORKERKIT['SERVER_MIDDLEWARE'] must be a list, not 'wkdj_app.jobs.stamp' (str)"),
    ({"ERROR_HANDLERS": ["wkdj_app.jobs.stamp", "wkdj_app.jobs.nothing"]},
     "settings.WORKERKIT['ERROR_HANDLERS'][1]: cannot import 'wkdj_app.jobs.nothing': ImportError: Module "
     '"wkdj_app.jobs" does not define a "nothing" attribute/class'),
    ({"DEATH_HANDLERS": [42]}, "settings.WORKERKIT['DEATH_HANDLERS'][0] must be a callable or its dotted path, not 42"),
    ({"CLIENT_MIDDLEWARE": ["nowhere.hook"]},
     "settings.WORKERKIT['CLIENT_MIDDLEWARE'][0]: cannot import 'nowhere.hook': ModuleNotFoundError: No module "
     "named 'nowhere'"),
    ({"JOB_MODULES": "wkdj_app.jobs"}, "settings.WORKERKIT['JOB_MODULES'] must be a list, not 'wkdj_app.jobs' (str)"),
    ({"JOB_MODULES": [None]}, "settings.WORKERKIT['JOB_MODULES'][0] must be a module's dotted path, not None"),
    ({"JOB_MODULES": ["wkdj_app.jobs", "wkdj_app.missing"]},
     "settings.WORKERKIT['JOB_MODULES'][1]: cannot import 'wkdj_app.missing': ModuleNotFoundError: No module "
     "named 'wkdj_app.missing'"),
])
def test_a_bad_setting_is_improperly_configured_naming_its_key(site: redis.Redis, values: object, message: str) -> None:
    before = config.current().max_retries
    with pytest.raises(ImproperlyConfigured) as raised:
        apply_settings(values if not isinstance(values, dict) else {"MAX_RETRIES": 1, **values})
    assert str(raised.value).startswith(message)
    if "JOB_MODULES'][" not in message:  # checked before anything changes; a job module fails after configure
        assert config.current().max_retries == before


def test_django_refuses_to_start_with_a_bad_setting(
    tmp_path: Path, start_process: Callable[..., ChildProcess]
) -> None:
    """The app's ready() applies the settings: ``manage.py check`` (like any command) stops, naming the key."""
    (tmp_path / "bad_settings.py").write_text(
        "from wkdj_site.settings import *  # noqa: F403\n"
        "WORKERKIT = {**WORKERKIT, 'DEAD_TIMEOUT': '180 days'}  # noqa: F405\n"
    )
    check = start_process("python", "-m", "django", "check", env={"DJANGO_SETTINGS_MODULE": "bad_settings",
                                                                  "PYTHONPATH": f"{tmp_path}:{Path(__file__).parent}"})
    assert check.popen.wait(60) == 1
    assert ("django.core.exceptions.ImproperlyConfigured: settings.WORKERKIT['DEAD_TIMEOUT'] must be a number of "
            "seconds above 0, not '180 days' (str)") in check.output()


SETUP = """
import sys
from workerkit.contrib.django.bootstrap import SetupError, setup_if_configured
try:
    print(setup_if_configured(), setup_if_configured())
except SetupError as exc:
    print("SetupError:", exc)
print("django imported:", sys.modules.get("django") is not None)
"""


def set_up(site_env: dict[str, str], env: dict[str, str | None], prelude: str = "") -> str:
    """What :data:`SETUP` prints in a fresh interpreter with the test project's environment changed by ``env``
    (None removes a variable)."""
    environment = {name: value for name, value in {**project_env(site_env), **env}.items() if value is not None}
    done = subprocess.run([sys.executable, "-c", prelude + SETUP], env=environment, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_setup_without_the_variable_leaves_django_alone(site_env: dict[str, str]) -> None:
    assert set_up(site_env, {"DJANGO_SETTINGS_MODULE": None}) == "False False\ndjango imported: False\n"


def test_setup_with_the_variable_sets_the_project_up_once(site_env: dict[str, str]) -> None:
    shown = "from workerkit import config\nimport atexit\natexit.register(lambda: print(config.current().namespace))\n"
    assert set_up(site_env, {}, shown) == "True True\ndjango imported: True\ndjtest\n"


def test_setup_names_the_variable_when_the_settings_do_not_load(site_env: dict[str, str]) -> None:
    assert set_up(site_env, {"DJANGO_SETTINGS_MODULE": "nowhere.settings"}) == (
        "SetupError: cannot set up Django with DJANGO_SETTINGS_MODULE=nowhere.settings: "
        "ModuleNotFoundError: No module named 'nowhere'\ndjango imported: True\n"
    )


def test_setup_says_what_to_install_when_django_is_missing(site_env: dict[str, str]) -> None:
    absent = "import sys\nsys.modules['django'] = None  # what Python does for a package that is not installed\n"
    assert set_up(site_env, {}, absent) == (
        "SetupError: DJANGO_SETTINGS_MODULE is set (wkdj_site.settings) but Django cannot be imported "
        "(import of django halted; None in sys.modules): install it (pip install 'procman-workerkit[django]') "
        "or unset DJANGO_SETTINGS_MODULE\ndjango imported: False\n"
    )
