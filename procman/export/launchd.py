"""launchd (macOS): one property list per instance, ``APP.NAME.N.plist``."""

from __future__ import annotations

import plistlib

from procman.export import ExportedProcess, ExportSpec, RenderedFile
from procman.procfile import shell_argv


def _plist(spec: ExportSpec, process: ExportedProcess) -> dict[str, object]:
    log = str(spec.log_dir / f"{process.slug}.log")
    plist: dict[str, object] = {
        "Label": f"{spec.app}.{process.instance.name}.{process.instance.number}",
        "ProgramArguments": shell_argv(process.instance.command),
        "EnvironmentVariables": process.env,
        "WorkingDirectory": str(spec.root),
        "RunAtLoad": True,
        "KeepAlive": True,
        "ExitTimeOut": max(1, round(spec.timeout)),
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    if spec.user:
        plist["UserName"] = spec.user
    return plist


def render(spec: ExportSpec) -> list[RenderedFile]:
    """The property lists, for ``/Library/LaunchDaemons`` (or ``~/Library/LaunchAgents``)."""
    return [
        (f"{spec.app}.{process.instance.name}.{process.instance.number}.plist",
         plistlib.dumps(_plist(spec, process)).decode(), False)
        for process in spec.processes
    ]
