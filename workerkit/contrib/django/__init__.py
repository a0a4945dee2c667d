"""workerkit for Django: add ``"workerkit.contrib.django"`` to ``INSTALLED_APPS``.

- :mod:`~workerkit.contrib.django.apps` applies ``settings.WORKERKIT`` when Django starts
  (:mod:`~workerkit.contrib.django.conf` reads and checks it) and wraps every job in
  :func:`~workerkit.contrib.django.db.close_old_connections_middleware`;
- ``python manage.py workerkit worker|run|web ...`` runs the workerkit command line with the project set up;
- :func:`workerkit.contrib.django.transactions.on_commit_push` pushes a job once the transaction commits;
- :func:`workerkit.contrib.django.asgi.mount` serves the dashboard inside Django's ASGI app, behind
  :data:`workerkit.contrib.django.auth.staff_required`;
- :func:`workerkit.contrib.django.bootstrap.setup_if_configured` sets Django up for ``workerkit`` commands
  run with ``DJANGO_SETTINGS_MODULE``.

This package imports nothing from Django itself, so ``bootstrap`` can be imported without Django installed.
"""
