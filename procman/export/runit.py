"""runit: a service folder per instance, ``APP-NAME-N/run`` and ``APP-NAME-N/log/run``."""

from __future__ import annotations

import shlex

from procman.export import ExportedProcess, ExportSpec, RenderedFile
from procman.procfile import shell_command


def _run(spec: ExportSpec, process: ExportedProcess) -> str:
    exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in process.env.items())
    command = shlex.quote(shell_command(process.instance.command))
    return (
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(spec.root))} || exit 1\n"
        f"{exports}"
        "exec 2>&1\n"
        f"exec {f'chpst -u {shlex.quote(spec.user)} ' if spec.user else ''}/bin/sh -c {command}\n"
    )


def _log_run(spec: ExportSpec, process: ExportedProcess) -> str:
    folder = shlex.quote(str(spec.log_dir / process.slug))
    return f"#!/bin/sh\nmkdir -p {folder}\nexec svlogd -tt {folder}\n"


def render(spec: ExportSpec) -> list[RenderedFile]:
    """The service folders, for ``/etc/sv`` (link them into ``/etc/service`` to start)."""
    files: list[RenderedFile] = []
    for process in spec.processes:
        folder = f"{spec.app}-{process.slug}"
        files.append((f"{folder}/run", _run(spec, process), True))
        files.append((f"{folder}/log/run", _log_run(spec, process), True))
    return files
