"""The configured project: Procfile entries, env files, base port and each instance's environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from procman.environment import child_env, load_env_files, port_variable
from procman.errors import ConfigError
from procman.formation import Instance, all_ports, base_port, build_formation, parse_concurrency
from procman.procfile import ProcfileEntry, read_procfile


class Project(NamedTuple):
    """Everything ``start``, ``run``, ``check`` and ``export`` share."""

    procfile: Path
    root: Path
    env_files: tuple[Path, ...]
    entries: tuple[ProcfileEntry, ...]
    dotenv: Mapping[str, str]
    shell: Mapping[str, str]
    base_port: int

    def formation(self, concurrency: str, selected: Sequence[str] = (), ignored: Sequence[str] = ()) -> list[Instance]:
        """The instances to run."""
        return build_formation(self.entries, parse_concurrency(concurrency), self.base_port, selected, ignored)

    def entry(self, name: str) -> ProcfileEntry | None:
        """The Procfile entry called ``name``, if there is one."""
        return next((entry for entry in self.entries if entry.name == name), None)

    def procman_variables(self, instance: Instance | None) -> dict[str, str]:
        """``PORT``, ``PS`` and ``PROCMAN_PORT_<NAME>`` of every other entry, as procman sets them."""
        ports = all_ports(self.entries, self.base_port)
        variables = {port_variable(name): str(port) for name, port in ports.items()}
        if instance is None:
            variables["PORT"] = str(self.base_port)
        else:
            del variables[port_variable(instance.name)]
            variables.update(PORT=str(instance.port), PS=instance.label)
        return variables

    def environment(self, instance: Instance | None) -> dict[str, str]:
        """The full environment of a child: the shell, the env files over it, then procman's variables."""
        return child_env(self.shell, self.dotenv, self.procman_variables(instance))


def _check_port_variables(entries: Sequence[ProcfileEntry], source: str) -> None:
    """Two names giving one ``PROCMAN_PORT_<NAME>`` (``foo-bar`` and ``foo_bar``, ``web`` and ``Web``): an error."""
    seen: dict[str, ProcfileEntry] = {}
    for entry in entries:
        variable = port_variable(entry.name)
        first = seen.setdefault(variable, entry)
        if first is not entry:
            raise ConfigError(f"process names {first.name!r} (line {first.line}) and {entry.name!r} both give "
                              f"{variable}; rename one", source, entry.line)


def locate(procfile: str | None, root: str | None) -> tuple[Path, Path]:
    """The Procfile and the root folder (Foreman's rules): ``-f`` or ``ROOT/Procfile`` or ``./Procfile``; the root
    is ``-d``, else the Procfile's folder."""
    if procfile is None:
        procfile = str(Path(root) / "Procfile") if root else "Procfile"
    procfile_path = Path(procfile).absolute()
    return procfile_path, Path(root).absolute() if root else procfile_path.parent


def load_project(
    procfile: str | None,
    root: str | None,
    env_files: Sequence[str] | None,
    port: int | None,
    shell: Mapping[str, str],
    procfile_required: bool = True,
) -> Project:
    """Read the Procfile and env files. Default env file: ``.env`` in the root, when it exists."""
    procfile_path, root_path = locate(procfile, root)
    if root and not root_path.is_dir():  # before the Procfile, which -d locates
        raise ConfigError("root folder does not exist", root)
    entries = tuple(read_procfile(procfile_path)) if procfile_required or procfile_path.exists() else ()
    if not root_path.is_dir():
        raise ConfigError("root folder does not exist", str(root_path))
    _check_port_variables(entries, str(procfile_path))
    paths = tuple(Path(name) for name in env_files) if env_files else (root_path / ".env",)
    dotenv = load_env_files(paths, shell, required=bool(env_files))
    return Project(procfile_path, root_path, paths, entries, dotenv, shell, base_port(port, dotenv, shell))
