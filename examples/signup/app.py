"""The demo web app: one page of buttons that push background jobs, and the dashboard at /workerkit.

Run it with ``uvicorn examples.signup.app:app`` (``Procfile.example`` does, on ``$PORT``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.templating import Jinja2Templates

import workerkit
from examples.signup import jobs
from workerkit.web import dashboard

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
BULK_JOBS = 10_000
REMINDER_DELAY = int(os.environ.get("SIGNUP_REMINDER_SECONDS", "30"))
"""Seconds between sign-up and the reminder (the demo test shortens it)."""


def _email(request_form: dict[str, str]) -> str:
    email = request_form.get("email", "").strip()[:200]
    return email or "newcomer@example.com"


async def home(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "index.html", {"activity": jobs.activity(), "done": request.query_params.get("done", "")}
    )


async def sign_up(request: Request) -> Response:
    """Sign-up pushes the welcome email now and the reminder for 30 seconds later."""
    form = await request.form()
    email = _email({"email": str(form.get("email", ""))})
    jobs.send_welcome_email.delay(email)
    jobs.SendReminder.perform_in(REMINDER_DELAY, email)
    return _back(f"Welcome email queued for {email}; reminder in {REMINDER_DELAY} s.")


async def import_contacts(request: Request) -> Response:
    jobs.ImportContacts.perform_async(secrets.token_hex(4))
    return _back("Contact import queued: watch it fail twice under Retries, then succeed.")


async def charge_card(request: Request) -> Response:
    jobs.ChargeCard.perform_async("newcomer@example.com")
    return _back("Card charge queued: it always fails, and ends up under Dead after two retries.")


async def crunch_many(request: Request) -> Response:
    workerkit.push_bulk(jobs.crunch.job_class, [[number] for number in range(BULK_JOBS)])
    return _back(f"{BULK_JOBS:,} jobs queued: watch the dashboard count them down.")


def _back(message: str) -> Response:
    return RedirectResponse("/?" + urlencode({"done": message}), status_code=303)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/sign-up", sign_up, methods=["POST"]),
        Route("/import", import_contacts, methods=["POST"]),
        Route("/charge", charge_card, methods=["POST"]),
        Route("/crunch", crunch_many, methods=["POST"]),
        Mount("/workerkit", dashboard()),
    ]
)
