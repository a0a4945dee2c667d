"""Read .env files with python-dotenv and build each instance's environment.

Semantics (Foreman's): several files merge and a later file wins; values from the files override the
shell's for the children; ``${VAR}`` expands from earlier keys (any file) and then the shell; the command
text itself is never substituted (``sh -c`` does that with the final environment).
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from procman.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def valid_name(key: str) -> bool:
    """A portable environment variable name: ``[A-Za-z_][A-Za-z0-9_]*`` (what a shell can ``export``)."""
    return _NAME.match(key) is not None


def _dotenv_module(name: str) -> ModuleType:
    """``dotenv.parser`` or ``dotenv.variables``, loaded on first use without running the package's
    ``__init__``: that imports ``logging``, ``tempfile`` and more for functions procman does not use, which
    costs more than the rest of ``procman start`` (both modules import only the standard library)."""
    qualified = f"dotenv.{name}"
    if qualified not in sys.modules:
        package = importlib.util.find_spec("dotenv")
        assert package is not None and package.submodule_search_locations is not None, "python-dotenv is missing"
        path = Path(package.submodule_search_locations[0]) / f"{name}.py"
        spec = importlib.util.spec_from_file_location(qualified, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return sys.modules[qualified]


def parse_env_text(text: str, source: str, context: Mapping[str, str]) -> dict[str, str]:
    """Parse one env file's text; ``${VAR}`` resolves against the keys read so far, then ``context``."""
    parse_stream = _dotenv_module("parser").parse_stream
    parse_variables = _dotenv_module("variables").parse_variables
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        statement = binding.original.string
        line = binding.original.line + statement[: len(statement) - len(statement.lstrip())].count("\n")
        if binding.error:
            raise ConfigError("cannot parse this statement (expected KEY=value)", source, line)
        if binding.key is None:  # a comment or blank line
            continue
        if not valid_name(binding.key):
            raise ConfigError(f"invalid variable name {binding.key!r} (use letters, digits and _, not starting "
                              "with a digit)", source, line)
        if binding.value is None:  # a bare ``KEY`` line sets nothing, as in python-dotenv
            continue
        scope = {**context, **values}
        value = "".join(atom.resolve(scope) for atom in parse_variables(binding.value))
        if "\0" in value:
            raise ConfigError(f"value of {binding.key} contains a NUL byte", source, line)
        values[binding.key] = value
    return values


def load_env_files(paths: Sequence[Path], shell: Mapping[str, str], required: bool) -> dict[str, str]:
    """Merge the env files in order (later wins). Missing files are an error only when ``required``."""
    merged: dict[str, str] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if required:
                raise ConfigError("env file not found", str(path)) from None
            continue
        except OSError as error:
            raise ConfigError(f"cannot read env file: {error.strerror}", str(path)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError("not valid UTF-8", str(path), data[: error.start].count(b"\n") + 1) from None
        merged.update(parse_env_text(text, str(path), {**shell, **merged}))
    return merged


def child_env(
    shell: Mapping[str, str],
    dotenv: Mapping[str, str],
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The environment of one child: shell, overridden by the env files, then procman's own variables."""
    env = dict(shell)
    env.update(dotenv)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def port_variable(name: str) -> str:
    """``PROCMAN_PORT_<NAME>``: the variable that tells every process where another one listens."""
    return "PROCMAN_PORT_" + name.upper().replace("-", "_")

