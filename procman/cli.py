"""The procman command line."""

from __future__ import annotations

import sys

from procman import __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``procman`` command."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["version"], ["--version"]):
        print(f"procman {__version__}")
        return 0
    print("usage: procman version", file=sys.stderr)
    return 2
