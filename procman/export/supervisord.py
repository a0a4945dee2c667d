"""supervisord: one ``[program:APP-NAME-N]`` per instance and a ``[group:APP]`` holding them.

supervisord's own ``environment=`` cannot hold a value with both kinds of quotes (it splits with a
non-POSIX shlex and strips quotes from the ends), so the environment goes on the command line through
``/usr/bin/env``, which supervisord splits with a POSIX shlex.
"""

from __future__ import annotations

import re
import shlex

from procman.export import ExportedProcess, ExportSpec, RenderedFile, reject_newlines
from procman.procfile import shell_argv

_COMMENT_AFTER_SPACE = re.compile(r"(\s)([#;])")


def _word(text: str) -> str:
    """One POSIX-shell word for supervisord's command line. supervisord's INI parser ends a value at whitespace
    followed by ``#`` or ``;``, even inside quotes, so an empty quote pair goes between the two (``' '';'``
    is still `` ;`` to the shell); ``%`` is doubled for supervisord's expansion."""
    return _COMMENT_AFTER_SPACE.sub(r"\1''\2", shlex.quote(text)).replace("%", "%%")


def _command(process: ExportedProcess) -> str:
    words = ["/usr/bin/env", *(f"{key}={value}" for key, value in process.env.items()),
             *shell_argv(process.instance.command)]
    return " ".join(_word(word) for word in words)


def _program(spec: ExportSpec, process: ExportedProcess) -> str:
    log = spec.log_dir / f"{process.slug}.log"
    return (
        f"[program:{spec.app}-{process.slug}]\n"
        f"command={_command(process)}\n"
        f"directory={spec.root}\n"
        f"{f'user={spec.user}' if spec.user else ''}\n"
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
