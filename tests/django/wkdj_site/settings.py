"""Settings of the test project. The tests set ``WKDJ_DATABASE`` (an sqlite file), ``WKDJ_REDIS_URL`` and,
optionally, ``WKDJ_CONN_MAX_AGE`` (seconds, or ``none`` for persistent connections; default 0)."""

from __future__ import annotations

import importlib.util
import os

SECRET_KEY = "workerkit-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "workerkit.contrib.django",
    "wkdj_app",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "wkdj_site.urls"
_max_age = os.environ.get("WKDJ_CONN_MAX_AGE", "0")
_database = os.environ["WKDJ_DATABASE"]
DATABASES = {
    alias: {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "CONN_MAX_AGE": None if _max_age == "none" else int(_max_age),
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
    for alias, name in [("default", _database), ("other", _database + "-other")]
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LOGIN_URL = "/login/"
WORKERKIT = {
    "REDIS_URL": os.environ["WKDJ_REDIS_URL"],
    "NAMESPACE": "djtest",
    "SERVER_MIDDLEWARE": ["wkdj_app.jobs.stamp"],
    "MAX_RETRIES": 3,
    "JOB_MODULES": ["wkdj_app.jobs"],
}
if importlib.util.find_spec("django.tasks") or importlib.util.find_spec("django_tasks"):  # Django 6, or the backport
    TASKS = {
        "default": {
            "BACKEND": "workerkit.contrib.django.WorkerkitBackend",
            "QUEUES": ["default", "mailers"],
            "OPTIONS": {"RESULT_TTL": 600},
        },
        "retrying": {"BACKEND": "workerkit.contrib.django.WorkerkitBackend", "OPTIONS": {"RETRY": 1}},
    }
