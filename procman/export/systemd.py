"""systemd: ``APP.target`` plus one ``APP-NAME-N.service`` per instance, all stopped and started together."""

from __future__ import annotations

from procman.export import ExportedProcess, ExportSpec, RenderedFile
from procman.procfile import shell_command


def _quote(text: str, command: bool) -> str:
    """A double-quoted systemd word: C escapes, ``%`` specifiers doubled, ``$`` doubled in commands."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("%", "%%")
    if command:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def _service(spec: ExportSpec, process: ExportedProcess) -> str:
    environment = "".join(f"Environment={_quote(f'{key}={value}', False)}\n" for key, value in process.env.items())
    log = spec.log_dir / f"{process.slug}.log"
    return (
        "[Unit]\n"
        f"Description={spec.app} {process.instance.label}\n"
        f"PartOf={spec.app}.target\n"
        "StopWhenUnneeded=yes\n"
        "\n[Service]\n"
        f"{f'User={spec.user}' if spec.user else ''}\n"
        f"WorkingDirectory={spec.root}\n"
        f"{environment}"
        f"ExecStart=/bin/sh -c {_quote(shell_command(process.instance.command), True)}\n"
        "Restart=always\n"
        "RestartSec=1\n"
        "KillMode=mixed\n"
        f"TimeoutStopSec={spec.timeout:g}\n"
        f"StandardOutput=append:{log}\n"
        "StandardError=inherit\n"
    )


def render(spec: ExportSpec) -> list[RenderedFile]:
    """The target and its services."""
    units = [f"{spec.app}-{process.slug}.service" for process in spec.processes]
    target = (
        "[Unit]\n"
        f"Description={spec.app} (procman export)\n"
        f"Wants={' '.join(units)}\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    files: list[RenderedFile] = [(f"{spec.app}.target", target, False)]
    files.extend((unit, _service(spec, process), False) for unit, process in zip(units, spec.processes, strict=True))
    return files
