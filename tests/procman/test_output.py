"""The relay: every line arrives whole and in order, prefixes and colours as documented."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from procman_support import DEADLINE, PROCMAN, clean_env

LINES = 200_000
WRITER = """\
import sys
name, count = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
batch = []
for number in range(count):
    batch.append(b"%s %07d %s\\n" % (name.encode(), number, b"x" * 66))
    if len(batch) == 997:  # an odd batch size: lines straddle the pipe's chunk boundaries
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch))
"""
PREFIX = re.compile(rb"^\d\d:\d\d:\d\d (p\d)\.1 +\| ")


def test_four_times_200000_lines_none_lost_split_or_interleaved(project) -> None:
    project.write("writer.py", WRITER)
    names = ["p1", "p2", "p3", "p4"]
    project.procfile("".join(f"{name}: {sys.executable} writer.py {name} {LINES}\n" for name in names))
    running = project.start("--no-color", "--can-die", ",".join(names))
    assert running.wait(120) == 0, running.output[-2000:]
    expected = {name: 0 for name in names}
    bad: list[bytes] = []
    for line in running.out_path.read_bytes().splitlines():
        match = PREFIX.match(line)
        if match is None:
            if not re.match(rb"^\d\d:\d\d:\d\d system +\| ", line):
                bad.append(line)
            continue
        name = match.group(1).decode()
        if line[match.end():] != b"%s %07d %s" % (name.encode(), expected[name], b"x" * 66):
            bad.append(line)
            continue
        expected[name] += 1
    assert bad == []
    assert expected == {name: LINES for name in names}


def test_partial_line_is_flushed_without_stalling_others(project) -> None:
    project.procfile(
        "slow: printf 'waiting for input'; sleep 3; echo ' done'\n"
        "fast: for i in 1 2 3; do echo tick $i; sleep 0.3; done; sleep 5\n"
    )
    running = project.start("--no-color", "--can-die", "slow,fast")
    running.wait_for("tick 3")
    running.wait_for("| waiting for input\n")
    output = running.output
    assert output.index("tick 1") < output.index("tick 3")
    running.wait_for("|  done\n")
    running.signal(2)
    assert running.wait() == 130


def test_bytes_pass_through_untouched(project) -> None:
    project.procfile("raw: printf 'bad \\377\\376 utf8\\n\\033[31mred\\033[0m\\n'\n")
    running = project.start("--no-color")
    assert running.wait() == 0
    data = running.out_path.read_bytes()
    assert b"| bad \xff\xfe utf8\n" in data
    assert b"| \x1b[31mred\x1b[0m\n" in data


def test_prefix_format_and_switches(project) -> None:
    project.procfile("web: echo hello\nlonger-name: sleep 5\n")
    running = project.start("--no-color")
    assert running.wait() == 0
    assert re.search(r"(?m)^\d\d:\d\d:\d\d web\.1         \| hello$", running.output), running.output
    assert re.search(r"(?m)^\d\d:\d\d:\d\d system        \| web\.1 exited with code 0, 0\.\d s after it "
                     r"started with PORT=5000$", running.output)
    no_time = project.start("--no-color", "--no-timestamp")
    assert no_time.wait() == 0
    assert re.search(r"(?m)^web\.1         \| hello$", no_time.output)
    bare = project.start("--no-color", "--no-prefix")
    assert bare.wait() == 0
    assert re.search(r"(?m)^hello$", bare.output)


def _run_in_pty(args: list[str], cwd: Path, env: dict[str, str]) -> bytes:
    """Run procman with a pseudo-terminal as stdout; return everything it printed."""
    master, slave = pty.openpty()
    process = subprocess.Popen([PROCMAN, *args], cwd=cwd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                               env=env)
    os.close(slave)
    data = b""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    process.wait(DEADLINE)
    return data


def test_colour_on_a_terminal_only_unless_forced(project) -> None:
    # web ends the run (and so the test) only after worker has printed its line.
    project.procfile("web: echo hello; while [ ! -e bye.flag ]; do sleep 0.05; done\n"
                     "worker: echo bye; touch bye.flag; sleep 5\n")
    tty_output = _run_in_pty(["start"], project.root, clean_env(TERM="xterm"))
    web = re.search(rb"\x1b\[0m\x1b\[(\d+)m\d\d:\d\d:\d\d web\.1    \| \x1b\[0mhello", tty_output)
    worker = re.search(rb"\x1b\[0m\x1b\[(\d+)m\d\d:\d\d:\d\d worker\.1 \| \x1b\[0mbye", tty_output)
    assert web and worker, tty_output
    assert web.group(1) != worker.group(1)
    assert b"\x1b[" not in _run_in_pty(["start"], project.root, clean_env(TERM="xterm", NO_COLOR="1"))
    assert b"\x1b[" not in _run_in_pty(["start", "--no-color"], project.root, clean_env(TERM="xterm"))
    piped = project.start()
    assert piped.wait() == 0
    assert "\x1b[" not in piped.output
    forced = project.start(env=clean_env(FORCE_COLOR="1"))
    assert forced.wait() == 0
    assert "\x1b[0m\x1b[" in forced.output
    flag = project.start("--color")
    assert flag.wait() == 0
    assert "\x1b[0m\x1b[" in flag.output


def test_tty_mode_gives_children_a_terminal(project) -> None:
    project.procfile("web: if [ -t 1 ]; then echo on a tty; else echo on a pipe; fi\n")
    piped = project.start("--no-color")
    assert piped.wait() == 0
    assert "| on a pipe\n" in piped.output
    tty = project.start("--no-color", "--tty")
    assert tty.wait() == 0
    assert "| on a tty\n" in tty.output
    assert "\r" not in tty.output


def test_children_get_pythonunbuffered(project) -> None:
    project.procfile(f"py: {sys.executable} -c \"import os; print(os.environ['PYTHONUNBUFFERED'])\"\n")
    running = project.start("--no-color")
    assert running.wait() == 0
    assert "| 1\n" in running.output


def test_a_closed_stdout_does_not_crash_procman(project) -> None:
    project.procfile("web: yes | head -n 100000; sleep 1\n")
    reader = subprocess.Popen(f"{PROCMAN} start | head -n 3", shell=True, cwd=project.root, env=clean_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = reader.communicate(timeout=DEADLINE)
    assert len(out.splitlines()) == 3
    assert b"Traceback" not in err
