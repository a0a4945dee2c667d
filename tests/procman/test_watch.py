"""``procman start --watch NAME=PATTERN``: a change to a matching file restarts that process type."""

from __future__ import annotations

import signal

from procman_support import system_lines, wait_for, without_pids


def test_a_matching_change_restarts_only_that_process(project) -> None:
    project.procfile("web: echo web up; sleep 600\nother: echo other up; sleep 600\n")
    project.write("app/__init__.py", "")  # a folder made after the watch began may miss its first file (inotify)
    running = project.start("--no-color", "-t", "1", "--watch", "web=**/*.py")
    running.wait_for(f"watching {project.root} for changes (web=**/*.py)")
    project.write("notes.txt", "not watched\n")
    project.write("app/models.py", "x = 1\n")
    running.wait_for("rolling restart done: web.1")
    project.write("top.py", "y = 2\n")  # **/ matches at the top too
    wait_for(lambda: running.output.count("rolling restart done: web.1") == 2, what="the second restart")
    lines = without_pids(system_lines(running.output))
    changes = [line for line in lines if line.startswith("changed:")]
    assert changes == ["changed: app/models.py; restarting web one instance at a time",
                       "changed: top.py; restarting web one instance at a time"]
    wait_for(lambda: running.output.count("web.1   | web up") == 3,  # the new instance's first line, relayed
             what="web started a third time")     # a moment after the restart is reported done
    assert running.output.count("other.1 | other up") == 1
    running.signal(signal.SIGINT)
    assert running.wait() == 130


def test_watch_needs_a_known_process_and_a_pattern(project) -> None:
    project.procfile("web: true\n")
    for value, message in (("api=*.py", "unknown process 'api' (the Procfile defines: web)"),
                           ("web", "expected NAME=PATTERN such as 'web=**/*.py', got 'web'")):
        result = project.run("start", "--watch", value)
        assert (result.returncode, result.stderr) == (2, f"procman: error: --watch: {message}\n")
