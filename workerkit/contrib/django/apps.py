"""The Django app: ``INSTALLED_APPS = [..., "workerkit.contrib.django"]``."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings


class WorkerkitConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Applies ``settings.WORKERKIT`` when Django is set up (``workerkit.contrib.django.conf``)."""

    name = "workerkit.contrib.django"
    label = "workerkit"
    verbose_name = "workerkit"

    def ready(self) -> None:
        from workerkit.contrib.django.conf import apply_settings

        apply_settings(getattr(settings, "WORKERKIT", {}))
