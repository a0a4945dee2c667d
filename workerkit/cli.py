"""The workerkit command line: ``workerkit worker``, ``run``, ``web``, ``scale-hint`` and ``redis``.

Usage and configuration errors print one clear line and exit 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from workerkit import __version__

USAGE_ERROR = 2


class UsageError(Exception):
    """A bad option or argument: reported in one line, exit code 2."""


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workerkit", description="Background jobs on Redis.")
    parser.add_argument("--version", action="version", version=f"workerkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run jobs from Redis until TERM/INT")
    worker.add_argument("-r", "--require", action="append", default=[], metavar="MODULE",
                        help="import MODULE, which defines jobs (repeatable); only its jobs run")
    worker.add_argument("-q", "--queue", action="append", default=[], metavar="NAME[,WEIGHT]",
                        help="queue to work (repeatable); in order, or weighted random when weights are given")
    worker.add_argument("-c", "--concurrency", type=_positive_int, default=10, help="threads (default 10)")
    worker.add_argument("--async-concurrency", type=_positive_int, default=500, metavar="N",
                        help="async def jobs awaiting at once on the worker's event loop (default 500)")
    worker.add_argument("-t", "--timeout", type=_seconds, default=25.0,
                        help="seconds running jobs get to finish on shutdown (default 25)")
    worker.add_argument("--job-timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="interrupt a job running longer than this, unless its own timeout says otherwise "
                             "(default: no limit)")
    worker.add_argument("--prefetch", type=int, default=None, metavar="N",
                        help="jobs fetched ahead of free threads (default: adapts to the jobs' run time)")
    worker.add_argument("--name", help="process name shown in the dashboard (default: the hostname)")
    worker.add_argument("--tag", default="", help="a tag shown in the dashboard")
    worker.add_argument("--heartbeat", type=_seconds, default=None, metavar="SECONDS",
                        help="heartbeat interval; a process is declared dead 4 intervals after its last beat "
                             "(default: WORKERKIT_HEARTBEAT_INTERVAL, else 2)")
    worker.add_argument("--sweep-interval", type=_seconds, default=None, metavar="SECONDS",
                        help="how often the jobs of dead processes are recovered "
                             "(default: WORKERKIT_SWEEP_INTERVAL, else 2)")
    worker.add_argument("--no-metrics", dest="metrics", action="store_false",
                        help="record no per-class metrics (runs, failures, execution times, queue latency)")
    worker.add_argument("--no-job-logs", dest="job_logs", action="store_false",
                        help="keep no log lines with the payload of a job that fails")
    _common_options(worker)

    run = commands.add_parser("run", help="run one job once in the foreground")
    run.add_argument("job", metavar="module.JobClass", help="dotted path of a job class or @job function")
    run.add_argument("args", nargs="*", metavar="ARG", help="arguments: JSON values, else plain strings")
    _common_options(run)

    web = commands.add_parser("web", help="serve the dashboard (basic auth: WORKERKIT_WEB_USER/PASSWORD)")
    web.add_argument("--port", type=_positive_int, help="default $PORT, else 9292")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1; any other needs WORKERKIT_WEB_USER/PASSWORD)")
    web.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                     help="also answer requests for this host name (repeatable; default: "
                          "WORKERKIT_WEB_ALLOWED_HOSTS, comma-separated); 127.0.0.1 and localhost always work")
    _common_options(web)

    hint = commands.add_parser("scale-hint", help="print how many worker processes would keep the oldest "
                                                  "waiting job younger than a target (for autoscalers)")
    hint.add_argument("--target-latency", type=_seconds, default=5.0, metavar="SECONDS",
                      help="the longest the oldest waiting job should wait (default 5)")
    hint.add_argument("-q", "--queue", action="append", default=[], metavar="NAME",
                      help="consider only these queues and the processes that take them (repeatable; default all)")
    hint.add_argument("--busy-ceiling", type=float, default=0.8, metavar="FRACTION",
                      help="the share of threads that may be busy before another process is asked for "
                           "(default 0.8)")
    hint.add_argument("--explain", action="store_true", help="say why on stderr")
    _common_options(hint)

    redis_cmd = commands.add_parser("redis", help="run a Redis-compatible server in the foreground")
    redis_cmd.add_argument("--port", type=int, default=6379)
    redis_cmd.add_argument("--dir", type=Path, default=Path(".workerkit/redis"))
    redis_cmd.add_argument("--bind", default="127.0.0.1",
                           help="addresses to listen on (default 127.0.0.1; any other needs --password)")
    redis_cmd.add_argument("--password", default=os.environ.get("WORKERKIT_REDIS_PASSWORD") or None,
                           help="require this password (requirepass; default $WORKERKIT_REDIS_PASSWORD)")
    redis_cmd.add_argument("--server", default=os.environ.get("WORKERKIT_REDIS_SERVER") or "embedded",
                           metavar="embedded|system|PATH",
                           help="the server to run: the embedded Valkey (default), redis-server on PATH, or a "
                                "binary (default $WORKERKIT_REDIS_SERVER)")
    redis_cmd.add_argument(
        "--drain-timeout", type=float, default=None, metavar="SECONDS",
        help="after TERM/INT, keep serving while other clients are connected, at most this long (default 28)",
    )
    return parser


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: WORKERKIT_REDIS_URL, REDIS_URL, local)")
    parser.add_argument("--namespace", help="key prefix shared by clients and workers of one app")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _configure(args: argparse.Namespace) -> None:
    from workerkit import config, logs

    config.configure(redis_url=args.redis_url, namespace=args.namespace)
    logs.setup(args.log_format, logging.DEBUG if args.verbose else logging.INFO)


def _import(module: str, option: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        raise UsageError(f"cannot load {option} {module}: {detail}") from None


def _worker(args: argparse.Namespace) -> int:
    from workerkit import registry
    from workerkit.fetch import QueueSpec
    from workerkit.timelimit import check_timeout
    from workerkit.worker import Worker, WorkerSettings

    try:
        queues = [QueueSpec.parse(text) for text in args.queue] or [QueueSpec("default")]
    except ValueError as exc:
        raise UsageError(f"-q {exc}") from None
    if len({spec.name for spec in queues}) != len(queues):
        raise UsageError("-q: a queue is listed twice")
    if args.prefetch is not None and args.prefetch < 0:
        raise UsageError("--prefetch must be 0 or more")
    try:
        check_timeout(args.job_timeout, "--job-timeout")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for module in args.require:
        _import(module, "-r")
    _configure(args)
    if not registry.names():
        raise UsageError("no job classes are registered: load the modules that define your jobs with -r MODULE "
                         "(a worker without them would only retry every job it takes)")
    settings = WorkerSettings(
        queues=queues, concurrency=args.concurrency, timeout=args.timeout, prefetch=args.prefetch,
        name=args.name, tag=args.tag, job_timeout=args.job_timeout, async_concurrency=args.async_concurrency,
        metrics=args.metrics, job_logs=args.job_logs,
        heartbeat_interval=_interval(args.heartbeat, "WORKERKIT_HEARTBEAT_INTERVAL", "--heartbeat"),
        sweep_interval=_interval(args.sweep_interval, "WORKERKIT_SWEEP_INTERVAL", "--sweep-interval"),
        poll_interval=_interval(None, "WORKERKIT_POLL_INTERVAL", "WORKERKIT_POLL_INTERVAL", 1.0),
    )
    worker = Worker(settings)
    worker.install_signal_handlers()
    code = worker.run()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)


def _interval(flag: float | None, variable: str, name: str, default: float = 2.0) -> float:
    """A worker interval from its flag, else its environment variable, else ``default``; more than 0 s."""
    if flag is None:
        text = os.environ.get(variable)
        if not text:
            return default
        try:
            flag = _seconds(text)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{variable}={text!r}: {exc}") from None
        name = variable
    if flag <= 0:
        raise UsageError(f"{name} must be more than 0 seconds")
    return flag


def _parse_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _run(args: argparse.Namespace) -> int:
    from workerkit import registry
    from workerkit.client import build_payload
    from workerkit.invoke import execute
    from workerkit.logs import job_context

    module, _, _ = args.job.rpartition(".")
    if not module:
        raise UsageError(f"{args.job!r} is not a dotted path module.JobClass")
    _import(module, "job module")
    job_class = registry.get(args.job)
    if job_class is None:
        raise UsageError(f"{args.job} is not a registered job (a Job subclass or @job function in {module})")
    _configure(args)
    job_args = [_parse_arg(text) for text in args.args]
    payload = build_payload(job_class, job_args, {"retry": False})
    try:
        registry.bind_arguments(job_class, [job_args])
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    log = logging.getLogger("workerkit")
    with job_context(payload["jid"], payload["class"]):
        try:
            execute(job_class, payload)
        except Exception:
            log.exception("fail")
            return 1
        log.info("done")
    return 0


def _web(args: argparse.Namespace) -> int:
    from workerkit.web.standalone import serve

    port = args.port or os.environ.get("PORT") or "9292"
    if not str(port).isdigit():
        raise UsageError(f"$PORT is {port!r}, not a port number")
    _configure(args)
    try:
        serve(args.host, int(port), os.environ, args.allowed_host)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _redis(args: argparse.Namespace) -> int:
    from workerkit import server

    if args.drain_timeout is not None and args.drain_timeout < 0:
        raise UsageError("--drain-timeout must be 0 or more")
    if not server.is_loopback_bind(args.bind) and not args.password:
        raise UsageError(
            f"--bind {args.bind} would open Redis, and every job in it, to the network without a password: "
            "pass --password (or set WORKERKIT_REDIS_PASSWORD), or bind 127.0.0.1"
        )
    drain = server.DRAIN_TIMEOUT if args.drain_timeout is None else args.drain_timeout
    try:
        return server.serve(args.port, args.dir, args.bind, args.server, args.password, drain_timeout=drain)
    except server.ServerNotFoundError as exc:
        raise UsageError(str(exc)) from None


def _setup_django() -> None:
    """``django.setup()`` first when ``DJANGO_SETTINGS_MODULE`` is set (``workerkit.contrib.django``); Django
    is not imported otherwise."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    from workerkit.contrib.django.bootstrap import SetupError, setup_if_configured

    try:
        setup_if_configured()
    except SetupError as exc:
        raise UsageError(str(exc)) from None


def _scale_hint(args: argparse.Namespace) -> int:
    from workerkit import scale_hint
    from workerkit.api import Api
    from workerkit.connection import REDIS_DOWN

    if args.target_latency <= 0:
        raise UsageError("--target-latency must be above 0")
    if not 0 < args.busy_ceiling <= 1:
        raise UsageError(f"--busy-ceiling must be above 0 and at most 1, not {args.busy_ceiling:g}")
    _configure(args)
    try:
        seen = scale_hint.observe(Api(), args.queue or None)
    except REDIS_DOWN as exc:
        print(f"workerkit scale-hint: Redis is unreachable ({exc})", file=sys.stderr)
        return 1
    desired = scale_hint.desired_processes(seen, args.target_latency, args.busy_ceiling)
    if args.explain:
        print(scale_hint.explain(seen, args.target_latency, desired), file=sys.stderr)
    print(desired)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``workerkit`` command."""
    args = _parser().parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if args.command in ("worker", "run", "web"):
            _setup_django()
        if args.command == "worker":
            return _worker(args)
        if args.command == "run":
            return _run(args)
        if args.command == "web":
            return _web(args)
        if args.command == "scale-hint":
            return _scale_hint(args)
        return _redis(args)
    except UsageError as exc:
        print(f"workerkit {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0
