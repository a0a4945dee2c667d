"""Which server wrote a ``workerkit redis`` data folder, and what to say when another one cannot load it.

A server cannot always read the files of another: Redis 7.0 refuses the append-only file of Valkey 9
(``Bad file format reading the append only file``) and exits. So once a server answers on a folder, the
folder gets a marker file naming it; when a later start on that folder fails, the message names both
servers and the ways out. The data is never deleted or moved.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "workerkit-server.json"
DATA_FILES = ("appendonlydir", "appendonly.aof", "dump.rdb")
"""What a Redis or Valkey server keeps in its folder (the append-only directory of 7.0+, older files)."""


@dataclass(frozen=True)
class Writer:
    """A server as a folder's marker records it."""

    name: str
    """Product and version, ``Valkey 9.1.2`` or ``Redis 7.0.15``."""
    choice: str
    """How to pick it again with ``workerkit redis --server``: ``embedded``, ``system`` or a path."""


def server_name(binary: Path) -> str:
    """``Valkey 9.1.2`` from the binary's ``--version`` (``Valkey server v=9.1.2 sha=...``)."""
    try:
        output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    words = output.split()
    version = next((word[2:] for word in words if word.startswith("v=")), "")
    return f"{words[0]} {version}" if words and version else binary.name


def holds_data(data_dir: Path) -> bool:
    """Whether a server has written data files in ``data_dir``."""
    return any((data_dir / name).exists() for name in DATA_FILES)


def recorded_writer(data_dir: Path) -> Writer | None:
    """The server the marker of ``data_dir`` names; None without a (readable) marker."""
    try:
        fields = json.loads((data_dir / MARKER).read_text())
        return Writer(str(fields["name"]), str(fields["choice"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_writer(data_dir: Path, writer: Writer) -> None:
    """Mark ``data_dir`` as written by ``writer``."""
    (data_dir / MARKER).write_text(json.dumps(asdict(writer)) + "\n")


def change_note(data_dir: Path, writer: Writer, previous: Writer | None) -> str | None:
    """A line to print before starting ``writer`` on data another (or an unrecorded) server wrote, else None."""
    if not holds_data(data_dir) or (previous is not None and previous.name == writer.name):
        return None
    by = previous.name if previous is not None else "a server workerkit did not record"
    return f"the data in {data_dir} was written by {by}; starting {writer.name} on it"


def failure_advice(data_dir: Path, writer: Writer, previous: Writer | None, code: int) -> str | None:
    """What to do when ``writer`` exited with ``code`` before serving ``data_dir``; None when there is no data."""
    if not holds_data(data_dir):
        return None
    if previous is not None and previous.name != writer.name:
        wrote = (f"which {previous.name} wrote: a server cannot always load another's files. Nothing was deleted, "
                 "and the files are fine for the server that wrote them (do not 'fix' them)")
        same = f"workerkit redis --server {previous.choice}"
    else:
        by = previous.name if previous is not None else "a server workerkit did not record"
        wrote = f"written by {by}. Nothing was deleted"
        same = "workerkit redis --server embedded|system|PATH"
    return (
        f"{writer.name} exited with code {code} before serving the data in {data_dir}, {wrote}. "
        f"Either run the server that wrote it ({same}), or start with empty data: "
        f"pass another --dir, or move {data_dir} away first."
    )
