"""The dashboard's pages and actions: a Starlette app over :class:`workerkit.api.Api`.

GET pages only read; every change is a POST with a CSRF token that redirects back (303) with a short
notice. Templates autoescape everything, so job arguments and error messages always render as text.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from workerkit.api import Api
from workerkit.prometheus import CONTENT_TYPE, exposition
from workerkit.sets import JobSet, NotFound
from workerkit.views import JobView
from workerkit.web.batch_pages import BatchPages
from workerkit.web.bulk import BUDGET, BulkActions, Busy
from workerkit.web.hosts import HostGuard, allowed_names
from workerkit.web.metrics_pages import MetricsPages, latency_bars
from workerkit.web.outage import REDIS_ERRORS, masked_url
from workerkit.web.routing import QUEUE_NAME
from workerkit.web.security import CSRF_COOKIE, CSRF_FIELD, Auth, CsrfTokens, RequireAuth, SecurityHeaders

HERE = Path(__file__).parent
PER_PAGE_CHOICES = (25, 50, 100)
SORTS = ("at", "class", "queue")
MAX_FILTER_LENGTH = 200
NOTICES = {
    "quiet": "Asked the process to quiet: it stops taking new jobs.",
    "stop": "Asked the process to stop: it finishes or requeues its jobs, then exits.",
    "deleted": "Deleted {n} job(s).",
    "cleared": "Cleared the queue ({n} job(s)).",
    "run": "Moved {n} job(s) to their queues.",
    "killed": "Moved {n} job(s) to the dead set.",
    "enqueued": "Enqueued the periodic job.",
    "forgotten": "Forgot the periodic job (workers that still declare it list it again).",
    "gone": "Nothing to do: the job(s) had already moved on.",
    "bulk_running": "Started: the rest goes on in the background, and this page shows how far it got.",
    "bulk_busy": "Not started: an action on all matching jobs of this set is still running (shown below).",
    "cancelling": "Asked the worker to stop the job: it ends cancelled within a heartbeat (a plain job that "
                  "never looks at self.cancelled runs to its end).",
}
SET_ACTIONS = {
    JobSet.SCHEDULED: ("run", "delete", "kill"),
    JobSet.RETRIES: ("run", "delete", "kill"),
    JobSet.DEAD: ("run", "delete"),
}
SET_TITLES = {JobSet.SCHEDULED: "Scheduled", JobSet.RETRIES: "Retries", JobSet.DEAD: "Dead"}


def _relative(epoch: float | None, now: float | None = None) -> str:
    """``12 s ago`` / ``in 3 min``: a time relative to now, for reading at a glance."""
    if epoch is None:
        return "never"
    delta = (now if now is not None else datetime.now(UTC).timestamp()) - epoch
    amount = abs(delta)
    if amount < 60:
        text = f"{int(amount)} s"
    elif amount < 3600:
        text = f"{int(amount // 60)} min"
    elif amount < 86400:
        text = f"{int(amount // 3600)} h"
    else:
        text = f"{int(amount // 86400)} d"
    return f"{text} ago" if delta >= 0 else f"in {text}"


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(low, min(number, high))


class Dashboard:
    """Holds the API, templates, tokens and auth of one dashboard app; its methods are the endpoints."""

    def __init__(self, api: Api | Callable[[], Api] | None, auth: Auth | None, secret: bytes,
                 bulk_budget: float = BUDGET) -> None:
        self.routes = Router()
        self._api_source = api
        self._api: Api | None = api if isinstance(api, Api) else None
        self._bulk: BulkActions | None = None
        self.bulk_budget = bulk_budget
        self.auth = auth
        self.tokens = CsrfTokens(secret)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(relative=_relative, utc=_utc, number=lambda n: f"{n:,}")

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = self._api_source() if callable(self._api_source) else Api()
        return self._api

    @property
    def bulk(self) -> BulkActions:
        if self._bulk is None:
            self._bulk = BulkActions(self.api.conn, self.api.keys, self.bulk_budget)
        return self._bulk

    # Plumbing -----------------------------------------------------------------------------------
    def path(self, request: Request, route: str, /, **params: Any) -> str:
        """The path of ``route`` under wherever the dashboard is mounted (the request's root path)."""
        quoted = {name: quote(str(value), safe="") for name, value in params.items()}
        return str(request.scope.get("root_path", "")) + self.routes.url_path_for(route, **quoted)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        token = self.tokens.token_for(request)
        notice = NOTICES.get(request.query_params.get("done", ""), "")
        html = self.templates.get_template(template).render(
            request=request,
            url=lambda route, /, **params: self.path(request, route, **params),
            csrf_field=CSRF_FIELD,
            csrf_token=token,
            notice=notice.format(n=_int(request.query_params.get("n"), 0, 0, 10**9)),
            now=datetime.now(UTC).timestamp(),
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if self.tokens.token_from_cookie(request.cookies.get(CSRF_COOKIE)) != token:
            response.set_cookie(
                CSRF_COOKIE,
                self.tokens.cookie_value(token),
                path=request.scope.get("root_path") or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    async def form(self, request: Request) -> FormData:
        """The POSTed form, after checking its CSRF token (403 when it does not match)."""
        form = await request.form()
        submitted = form.get(CSRF_FIELD)
        if not self.tokens.accepts(request, submitted if isinstance(submitted, str) else None):
            raise HTTPException(403, "The form's security token did not match; reload the page and try again.")
        return form

    def posted(self, action: Callable[[Request, FormData], Response]) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint of a POST ``action``: read and check the form, then run ``action`` in the thread pool.

        Pages and actions talk to Redis with blocking calls, so they run in Starlette's thread pool (a page
        is a plain function): a slow or unreachable Redis holds a thread, never the event loop of the app
        the dashboard is mounted in.
        """
        async def endpoint(request: Request) -> Response:
            form = await self.form(request)
            return await run_in_threadpool(action, request, form)

        return endpoint

    def back(
        self, request: Request, target: str, done: str, count: int | None = None, /, **path_params: str
    ) -> Response:
        """Redirect (303) to the page ``target`` with a notice of what was ``done`` to ``count`` jobs."""
        query = {"done": done if count != 0 else "gone"}
        if count is not None:
            query["n"] = str(count)
        return RedirectResponse(f"{self.path(request, target, **path_params)}?{urlencode(query)}", 303)

    # Dashboard ----------------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        history = self.api.history(_int(request.query_params.get("days"), 30, 7, 180))
        peak = max([day.processed + day.failed for day in history] + [1])
        return self.render(
            request,
            "dashboard.html",
            stats=self.api.stats(),
            history=history,
            peak=peak,
            server=self.api.server_info(),
            queues=self.api.queues(),
        )

    def prometheus(self, request: Request) -> Response:
        """``/metrics``: the cluster's figures in Prometheus' text format (``workerkit.prometheus``)."""
        return Response(exposition(lambda: self.api), media_type=CONTENT_TYPE)

    def stats_json(self, request: Request) -> Response:
        body: dict[str, Any] = self.api.stats().as_dict()
        body["queues"] = {queue.name: {"size": queue.size, "latency": queue.latency} for queue in self.api.queues()}
        return JSONResponse(body, headers={"cache-control": "no-store"})

    # Busy ---------------------------------------------------------------------------------------
    def busy(self, request: Request) -> Response:
        return self.render(request, "busy.html", processes=self.api.processes(), stats=self.api.stats())

    def signal_process(self, request: Request, form: FormData) -> Response:
        action = str(form.get("action", ""))
        signal = {"quiet": "TSTP", "stop": "TERM"}.get(action)
        if signal is None:
            raise HTTPException(400, "Unknown action.")
        try:
            self.api.signal(str(form.get("identity", "")), signal)
        except NotFound:
            return self.back(request, "busy", "gone", 0)
        return self.back(request, "busy", action)

    def cancel_job(self, request: Request, form: FormData) -> Response:
        jid = str(form.get("jid", ""))[:100]
        if not jid:
            raise HTTPException(400, "No job to cancel.")
        found = self.api.cancel(jid)
        if found == "running":
            return self.back(request, "busy", "cancelling")
        return self.back(request, "busy", "deleted", 0 if found == "not found" else 1)  # it had left the worker

    # Queues -------------------------------------------------------------------------------------
    def queues(self, request: Request) -> Response:
        queues = self.api.queues()
        latency = self.api.metrics().latency([queue.name for queue in queues], 60)
        return self.render(request, "queues.html", queues=queues,
                           latency={name: latency_bars(values) for name, values in latency.items()})

    def queue(self, request: Request) -> Response:
        name = request.path_params["name"]
        per_page = self._per_page(request)
        page = self.api.queue_jobs(name, _int(request.query_params.get("page"), 1, 1, 10**9), per_page)
        return self.render(request, "queue.html", name=name, page=page)

    def delete_queued(self, request: Request, form: FormData) -> Response:
        name = request.path_params["name"]
        deleted = self.api.delete_queued(name, str(form.get("jid", "")))
        return self.back(request, "queue", "deleted", int(deleted), name=name)

    def clear_queue(self, request: Request, form: FormData) -> Response:
        return self.back(request, "queues", "cleared", self.api.clear_queue(request.path_params["name"]))

    # Scheduled, retries, dead ---------------------------------------------------------------------
    @staticmethod
    def _job_set(request: Request) -> JobSet:
        try:
            return JobSet(request.path_params["set"])
        except ValueError:
            raise HTTPException(404, "No such page.") from None

    @staticmethod
    def _per_page(request: Request) -> int:
        per_page = _int(request.query_params.get("per_page"), 25, 1, 100)
        return per_page if per_page in PER_PAGE_CHOICES else 25

    def job_set(self, request: Request) -> Response:
        job_set = self._job_set(request)
        params = request.query_params
        sort = params.get("sort", "at") if params.get("sort") in SORTS else "at"
        newest_first = job_set is JobSet.DEAD  # the latest deaths matter most; for the others, what comes next
        descending = params.get("dir", "desc" if newest_first else "asc") == "desc"
        text = params.get("q", "")[:MAX_FILTER_LENGTH]
        page = self.api.sorted_set(job_set).page(
            _int(params.get("page"), 1, 1, 10**9),
            self._per_page(request),
            sort=sort,
            descending=descending,
            text=text,
        )
        return self.render(
            request,
            "set.html",
            job_set=job_set,
            title=SET_TITLES[job_set],
            actions=SET_ACTIONS[job_set],
            page=page,
            sort=sort,
            descending=descending,
            text=text,
            bulk=self.bulk.progress(job_set),
            query=lambda **changes: urlencode(
                {"q": text, "sort": sort, "dir": "desc" if descending else "asc", "per_page": page.per_page, **changes}
            ),
        )

    def job_page(self, request: Request) -> Response:
        job_set = self._job_set(request)
        try:
            job = self.api.sorted_set(job_set).find(request.path_params["key"])
        except NotFound:
            return self.render(request, "gone.html", 404, job_set=job_set, title=SET_TITLES[job_set])
        return self.render(
            request, "job.html", job_set=job_set, title=SET_TITLES[job_set], actions=SET_ACTIONS[job_set], job=job
        )

    def _act(self, request: Request, job_set: JobSet, action: str, jobs: list[JobView], text: str | None) -> Response:
        """Apply ``action`` to ``jobs``, or to every job matching ``text`` when it is not None; redirect back."""
        if action not in SET_ACTIONS[job_set]:
            raise HTTPException(400, "Unknown action.")
        entries = self.api.sorted_set(job_set)
        if text is not None:
            try:
                progress = self.bulk.start(entries, action, text)
            except Busy:
                return self.back(request, "job_set", "bulk_busy", None, set=job_set.value)
            if progress.running:
                return self.back(request, "job_set", "bulk_running", None, set=job_set.value)
            count = progress.acted
        else:
            single = {"run": entries.retry, "delete": entries.delete, "kill": entries.kill}
            count = single[action](jobs)
        done = {"run": "run", "delete": "deleted", "kill": "killed"}[action]
        return self.back(request, "job_set", done, count, set=job_set.value)

    def act_on_set(self, request: Request, form: FormData) -> Response:
        job_set = self._job_set(request)
        action = str(form.get("action", ""))
        text = str(form.get("q", ""))[:MAX_FILTER_LENGTH] if form.get("scope") == "all" else None
        keys = [str(key) for key in form.getlist("key")]
        jobs = [] if text is not None else self.api.sorted_set(job_set).find_all(keys)
        return self._act(request, job_set, action, jobs, text)

    def act_on_job(self, request: Request, form: FormData) -> Response:
        job_set = self._job_set(request)
        action = str(form.get("action", ""))
        try:
            jobs = [self.api.sorted_set(job_set).find(request.path_params["key"])]
        except NotFound:
            jobs = []
        return self._act(request, job_set, action, jobs, None)

    # Periodic -----------------------------------------------------------------------------------
    def periodic(self, request: Request) -> Response:
        return self.render(request, "periodic.html", jobs=self.api.periodic_jobs())

    def act_on_periodic(self, request: Request, form: FormData) -> Response:
        name = str(form.get("name", ""))
        if form.get("action") == "forget":
            return self.back(request, "periodic", "forgotten", int(self.api.forget_periodic(name)))
        try:
            self.api.enqueue_periodic(name)
        except NotFound:
            return self.back(request, "periodic", "gone", 0)
        return self.back(request, "periodic", "enqueued")

    # Errors -------------------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.render(request, "error.html", exc.status_code, message=exc.detail)

    async def redis_unreachable(self, request: Request, exc: Exception) -> Response:
        """503, naming the Redis URL (password masked) and what to do."""
        location, error = masked_url(self.api.conn), str(exc) or type(exc).__name__
        if request.url.path.endswith("/stats.json"):
            return JSONResponse({"error": f"Redis is unreachable at {location}: {error}"}, 503)
        if request.url.path.endswith("/metrics"):  # a scraper logs this body: one line of text
            return PlainTextResponse(f"Redis is unreachable at {location}: {error}\n", 503)
        return self.render(request, "unreachable.html", 503, location=location, error=error)


def dashboard(
    api: Api | Callable[[], Api] | None = None,
    *,
    auth: Auth | None = None,
    secret: bytes | str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    metrics_auth: Auth | None = None,
    bulk_budget: float = BUDGET,
) -> Starlette:
    """The dashboard as an ASGI app: mount it anywhere (``app.mount("/workerkit", dashboard())``).

    ``api`` defaults to one over the configured Redis (created at the first request, so
    ``workerkit.configure`` may run after mounting). ``auth`` is a hook ``(request) -> bool`` (sync or
    async; see :func:`workerkit.web.basic_auth`). ``secret`` signs the CSRF cookie: default
    ``WORKERKIT_WEB_SECRET``, else a random one per process (set it when several web processes serve
    the dashboard behind one address). ``allowed_hosts`` lists the host names it answers for besides
    127.0.0.1 and localhost (DNS-rebinding defence, see :mod:`workerkit.web.hosts`); without ``auth`` it
    answers for those only, with ``auth`` for any host unless ``allowed_hosts`` is given. ``/metrics``
    (Prometheus) is behind ``auth`` too, unless ``metrics_auth`` gives it a hook of its own (a scraper's
    bearer token; ``lambda request: True`` to open it). ``bulk_budget`` is how many seconds an action on all
    matching jobs of a set works within its request; what remains goes on in a background thread, and the
    set's page shows how far it got (``workerkit.web.bulk``).
    """
    key = secret or os.environ.get("WORKERKIT_WEB_SECRET") or secrets.token_bytes(32)
    board = Dashboard(api, auth, key.encode() if isinstance(key, str) else key, bulk_budget)
    set_path, queue_path, post = "/{set:str}", f"/queues/{{name:{QUEUE_NAME}}}", board.posted
    metrics = MetricsPages(board)
    batches = BatchPages(board)
    routes = [
        Route("/", board.home, name="dashboard"),
        Route("/stats.json", board.stats_json, name="stats_json"),
        Route("/metrics", board.prometheus, name="prometheus"),
        Route("/busy", board.busy, name="busy"),
        Route("/busy", post(board.signal_process), methods=["POST"], name="signal_process"),
        Route("/busy/cancel", post(board.cancel_job), methods=["POST"], name="cancel_job"),
        Route("/queues", board.queues, name="queues"),
        Route(queue_path, board.queue, name="queue"),
        Route(queue_path + "/delete", post(board.delete_queued), methods=["POST"], name="delete_queued"),
        Route(queue_path + "/clear", post(board.clear_queue), methods=["POST"], name="clear_queue"),
        Route("/periodic", board.periodic, name="periodic"),
        Route("/periodic", post(board.act_on_periodic), methods=["POST"], name="act_on_periodic"),
        Route("/job-metrics", metrics.classes, name="metrics_classes"),
        Route("/job-metrics/class", metrics.job_class, name="metrics_class"),
        Route("/batches", batches.batches, name="batches"),
        Route("/batches/{bid:str}", batches.batch, name="batch"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route(set_path, board.job_set, name="job_set"),
        Route(set_path, post(board.act_on_set), methods=["POST"], name="act_on_set"),
        Route(set_path + "/{key:str}", board.job_page, name="job_page"),
        Route(set_path + "/{key:str}", post(board.act_on_job), methods=["POST"], name="act_on_job"),
    ]
    board.routes.routes.extend(routes)
    middleware = [Middleware(SecurityHeaders)]
    if auth is None or allowed_hosts is not None:
        middleware.append(Middleware(HostGuard, allowed=allowed_names(allowed_hosts or ())))
    middleware.append(Middleware(RequireAuth, auth=auth, own={"/metrics": metrics_auth} if metrics_auth else None))
    handlers: dict[Any, Any] = {HTTPException: board.http_error}
    handlers.update(dict.fromkeys(REDIS_ERRORS, board.redis_unreachable))
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
