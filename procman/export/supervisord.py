"""supervisord: one ``[program:APP-NAME-N]`` per instance and a ``[group:APP]`` holding them."""

from __future__ import annotations

from procman.export import ExportedProcess, ExportSpec, RenderedFile, reject_newlines


def _quote(text: str) -> str:
    """A double-quoted shlex word with supervisord's ``%`` interpolation escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def _program(spec: ExportSpec, process: ExportedProcess) -> str:
    environment = ",".join(f"{key}={_quote(value)}" for key, value in process.env.items())
    log = spec.log_dir / f"{process.slug}.log"
    return (
        f"[program:{spec.app}-{process.slug}]\n"
        f"command=/bin/sh -c {_quote(process.instance.command)}\n"
        f"directory={spec.root}\n"
        f"{f'user={spec.user}' if spec.user else ''}\n"
        f"environment={environment}\n"
        "autostart=true\n"
        "autorestart=true\n"
        "stopsignal=TERM\n"
        "stopasgroup=true\n"
        "killasgroup=true\n"
        f"stopwaitsecs={max(1, round(spec.timeout))}\n"
        "redirect_stderr=true\n"
        f"stdout_logfile={log}\n"
    )


def render(spec: ExportSpec) -> list[RenderedFile]:
    """One configuration file to include from supervisord.conf (``[include] files = ...``)."""
    reject_newlines(spec, "supervisord")
    programs = "\n".join(_program(spec, process) for process in spec.processes)
    names = ",".join(f"{spec.app}-{process.slug}" for process in spec.processes)
    return [(f"{spec.app}.conf", f"{programs}\n[group:{spec.app}]\nprograms={names}\n", False)]
