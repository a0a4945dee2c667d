"""``python manage.py workerkit worker|run|web|redis ...``: the ``workerkit`` command line, with this Django
project set up (its ``settings.WORKERKIT`` applied and its ``JOB_MODULES`` loaded).

Everything after ``workerkit`` goes to ``workerkit.cli.main`` as it is: ``manage.py workerkit worker -c 4
-q critical,2 -q default``.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from workerkit import cli


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Run a workerkit command (worker, run, web, redis) with this project's settings."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                            help="a workerkit command and its options, as for the workerkit command line")

    def handle(self, *args: str, **options: Any) -> None:
        code = cli.main(list(args))
        if code:
            raise CommandError(f"workerkit {args[0]} exited with code {code}", returncode=code)
