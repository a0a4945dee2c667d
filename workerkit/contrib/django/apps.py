"""The Django app: ``INSTALLED_APPS = [..., "workerkit.contrib.django"]``."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class WorkerkitConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Applies ``settings.WORKERKIT`` when Django is set up (``workerkit.contrib.django.conf``); registers the
    jobs that run Django tasks when ``settings.TASKS`` has a workerkit backend, so workers know them before
    any task module is imported."""

    name = "workerkit.contrib.django"
    label = "workerkit"
    verbose_name = "workerkit"

    def ready(self) -> None:
        from workerkit.contrib.django.conf import apply_settings

        apply_settings(getattr(settings, "WORKERKIT", {}))
        backends = getattr(settings, "TASKS", None) or {}
        if any(str(params.get("BACKEND", "")).startswith("workerkit.") for params in backends.values()):
            import workerkit.contrib.django.tasks  # noqa: F401  (registers RunTask and RunAsyncTask)
