"""Turn chunks of child output into prefixed lines (``12:00:01 web.1 | ...``) and write them in batches.

This is the hot path. A prefix is rendered once per instance and second; each chunk read from a child is
split on ``b"\\n"`` and written with one ``write`` (one syscall per chunk, not per line). Bytes pass through
untouched (invalid UTF-8 and the child's own ANSI codes included). Each instance keeps its own partial
line, so one child printing half a line never holds up another; the partial line is written on its own
after ``PARTIAL_LINE_WAIT`` seconds of silence (a prompt, a progress bar), or when the child's output
ends. A partial line at the end of a chunk that arrived in a burst is almost always a read that stopped
mid-line; it gets ``BURST_PARTIAL_WAIT``, so a busy writer that the scheduler pauses mid-line on a loaded
machine is not torn.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import BinaryIO, NamedTuple

from procman.loop import Clock, Timer

RESET = b"\x1b[0m"
# 12 distinct SGR colours: six base, six bright. Assigned per process type (web.1 and web.2 share one).
PALETTE = (b"36", b"33", b"32", b"35", b"34", b"31", b"96", b"93", b"92", b"95", b"94", b"91")
SYSTEM_COLOR = b"1"
SYSTEM_LABEL = "system"
PARTIAL_LINE_WAIT = 0.1
BURST_PARTIAL_WAIT = 1.0
BURST_GAP = 0.05  # chunks closer together than this are a burst
MAX_PARTIAL_LINE = 1 << 20
"""A line longer than this is written in pieces of this size: a child printing without newlines cannot grow
procman's memory."""


class Style(NamedTuple):
    """How lines look: colour, a timestamp and a name prefix can each be switched off."""

    color: bool
    timestamps: bool = True
    prefixes: bool = True


def wants_color(option: bool | None, is_tty: bool, environ: Mapping[str, str]) -> bool:
    """``--color``/``--no-color`` win; then ``NO_COLOR`` and ``FORCE_COLOR``; else colour only on a terminal."""
    if option is not None:
        return option
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR")
    if force is not None and force not in ("", "0", "false"):
        return True
    return is_tty and environ.get("TERM") != "dumb"


class Output:
    """The single writer: every line from every instance goes through ``write`` to one binary stream."""

    def __init__(self, stream: BinaryIO, style: Style, labels: list[str], clock: Clock) -> None:
        self._stream = stream
        self._clock = clock
        with contextlib.suppress(OSError, ValueError):  # a non-blocking stdout would drop data when full
            os.set_blocking(stream.fileno(), True)
        self.style = style
        self._width = max(len(label) for label in [*labels, SYSTEM_LABEL])
        self._broken = False
        self._system = self.line_stream(SYSTEM_LABEL, None)

    def line_stream(self, label: str, color_index: int | None) -> LineStream:
        """A stream of lines for one instance; ``color_index`` picks its colour (None: the system colour)."""
        color = SYSTEM_COLOR if color_index is None else PALETTE[color_index % len(PALETTE)]
        return LineStream(self, _Prefix(label.ljust(self._width), color, self.style), self._clock)

    def system(self, message: str) -> None:
        """Print one of procman's own messages as a ``system`` line."""
        self._system.feed(message.encode("utf-8", "replace") + b"\n")

    def write(self, data: bytes) -> None:
        """Write whole lines with one call. A stdout that is gone (``procman start | head``, a closed terminal)
        stops the output; supervision and shutdown go on."""
        if self._broken:
            return
        try:
            self._stream.write(data)
            self._stream.flush()
        except OSError:
            self._broken = True


class _Prefix:
    """Renders ``<reset><colour>HH:MM:SS name | <reset>``, cached until the second changes."""

    def __init__(self, padded_label: str, color: bytes, style: Style) -> None:
        self._style = style
        name = (padded_label.encode() + b" | ") if style.prefixes else b""
        self._head = RESET + b"\x1b[" + color + b"m" if style.color and style.prefixes else b""
        self._tail = name + (RESET if self._head else b"")
        self._second = -1
        self._rendered = self._head + self._tail

    def render(self) -> bytes:
        if not (self._style.timestamps and self._style.prefixes):
            return self._rendered
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._rendered = self._head + time.strftime("%H:%M:%S ", time.localtime(now)).encode() + self._tail
        return self._rendered


class LineStream:
    """One instance's output: whole lines are written at once, a partial line waits for its end.

    ``clock`` gives the time between chunks (to tell a burst) and the timer that flushes a partial line.
    ``watcher``, when set (by a ``log:`` readiness check, until it passes), sees every chunk once it is relayed.
    """

    def __init__(self, output: Output, prefix: _Prefix, clock: Clock) -> None:
        self._output = output
        self._prefix = prefix
        self._clock = clock
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._timer: Timer | None = None
        self._last_chunk_at = float("-inf")
        self._in_burst = False
        self.watcher: Callable[[bytes], None] | None = None

    def feed(self, chunk: bytes) -> None:
        """Take a chunk as read from the child; write every complete line in it (then show it to ``watcher``)."""
        self._relay(chunk)
        if self.watcher is not None:
            self.watcher(chunk)

    def _relay(self, chunk: bytes) -> None:
        now = self._clock.time()
        self._in_burst = now - self._last_chunk_at < BURST_GAP
        self._last_chunk_at = now
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
                self._partial_size += len(chunk)
                if self._partial_size >= MAX_PARTIAL_LINE:
                    self.flush()
                else:
                    self._arm_timer()
            return
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        lines = chunk.split(b"\n")
        rest = lines.pop()
        prefix = self._prefix.render()
        self._output.write(prefix + (b"\n" + prefix).join(lines) + b"\n")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if rest:
            self._partial.append(rest)
            self._partial_size = len(rest)
            self._arm_timer()

    def flush(self) -> None:
        """Write the pending partial line now (its end did not come in time, or the child is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._partial:
            data = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
            self._output.write(self._prefix.render() + data + b"\n")

    def _arm_timer(self) -> None:
        if self._timer is None:
            wait = BURST_PARTIAL_WAIT if self._in_burst else PARTIAL_LINE_WAIT
            self._timer = self._clock.call_later(wait, self.flush)


def read_chunk(fd: int) -> bytes | None:
    """Read what is available from a non-blocking fd: bytes, ``b""`` at the end, None when nothing is ready."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:  # EIO: a pseudo-terminal whose other side is closed
        return b""
