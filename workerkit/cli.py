"""The workerkit command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from workerkit import __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``workerkit`` command."""
    parser = argparse.ArgumentParser(prog="workerkit")
    parser.add_argument("--version", action="version", version=f"workerkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    redis_cmd = commands.add_parser("redis", help="run a Redis-compatible server in the foreground")
    redis_cmd.add_argument("--port", type=int, default=6379)
    redis_cmd.add_argument("--dir", type=Path, default=Path(".workerkit/redis"))
    redis_cmd.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    if args.command == "redis":
        from workerkit.server import exec_server

        exec_server(args.port, args.dir, args.bind)
    return 0
