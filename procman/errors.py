"""The one error type procman reports to users: a message with the file, line or argument it is about."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad input (Procfile, env file, option); the CLI prints it and exits with status 2."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"
