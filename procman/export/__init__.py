"""``procman export FORMAT DIR``: service definitions for the formation, one per instance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from procman.errors import ConfigError
from procman.formation import Instance

if TYPE_CHECKING:
    from procman.project import Project


@dataclass(frozen=True)
class ExportedProcess:
    """One instance as a service: its name, command and complete environment."""

    instance: Instance
    env: dict[str, str]

    @property
    def slug(self) -> str:
        """``web-1``: a name every service manager accepts."""
        return f"{self.instance.name}-{self.instance.number}"


@dataclass(frozen=True)
class ExportSpec:
    """Everything an exporter writes down."""

    app: str
    user: str | None
    log_dir: Path
    root: Path
    timeout: float
    processes: tuple[ExportedProcess, ...]

    @classmethod
    def build(
        cls,
        project: Project,
        instances: Sequence[Instance],
        app: str | None,
        user: str | None,
        log_dir: str | None,
        timeout: float,
    ) -> ExportSpec:
        """The spec for ``instances``; the environment is the env files plus procman's variables (not the shell)."""
        name = app or project.root.name
        base = {"PYTHONUNBUFFERED": "1", **project.dotenv}
        processes = tuple(
            ExportedProcess(instance, {**base, **project.procman_variables(instance)}) for instance in instances
        )
        return cls(name, user, Path(log_dir or f"/var/log/{name}"), project.root, timeout,
                   processes)


# A rendered file: relative path, content, executable?
RenderedFile = tuple[str, str, bool]
Renderer = Callable[[ExportSpec], list[RenderedFile]]


def _renderers() -> dict[str, Renderer]:
    from procman.export import launchd, runit, supervisord, systemd

    return {"systemd": systemd.render, "supervisord": supervisord.render, "launchd": launchd.render,
            "runit": runit.render}


def manifest_path(format_name: str, spec: ExportSpec, location: Path) -> Path:
    """The list of files the last export of this app in this format wrote to ``location``."""
    return location / f".procman-{format_name}-{spec.app}.files"


def _previous_files(manifest: Path) -> list[str]:
    """What the manifest lists, keeping only plain relative paths (nothing outside the folder)."""
    try:
        lines = manifest.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if line and not Path(line).is_absolute() and ".." not in Path(line).parts]


def write_export(format_name: str, spec: ExportSpec, location: Path) -> tuple[list[Path], list[Path]]:
    """Render ``spec`` in ``format_name`` and write the files under ``location``; return the paths written and
    the paths removed: files that the previous export of this app in this format wrote (a larger formation)
    and this one does not. Only files listed in procman's manifest are ever removed."""
    files = _renderers()[format_name](spec)
    manifest = manifest_path(format_name, spec, location)
    written, removed = [], []
    try:
        previous = _previous_files(manifest)
        for relative, content, executable in files:
            path = location / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            if executable:
                path.chmod(0o755)
            written.append(path)
        current = {relative for relative, _, _ in files}
        for relative in previous:
            if relative not in current and (location / relative).is_file():
                (location / relative).unlink()
                removed.append(location / relative)
                _remove_empty_folders((location / relative).parent, location)
        manifest.write_text("".join(f"{relative}\n" for relative, _, _ in files))
    except OSError as error:
        raise ConfigError(f"cannot write: {error.strerror}", str(error.filename or location)) from None
    return written, removed


def _remove_empty_folders(folder: Path, location: Path) -> None:
    """Remove ``folder`` and its parents up to ``location`` while they are empty (runit's service folders)."""
    while folder != location and location in folder.parents and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def reject_newlines(spec: ExportSpec, format_name: str) -> None:
    """Formats whose files are line-based cannot carry a multi-line value: say which one."""
    for process in spec.processes:
        for key, value in process.env.items():
            if "\n" in value:
                raise ConfigError(f"{format_name} cannot hold the multi-line value of {key}", "env file")
