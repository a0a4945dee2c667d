"""``procman export``: each format loaded by the real tool where it runs here."""

from __future__ import annotations

import plistlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from procman_support import DEADLINE, wait_for

PROCFILE = "web: echo \"web $PORT $PS $GREETING %d\" > out-$PS.txt; exec sleep 600\nworker: exec sleep 600\n"


def _export(project, kind: str, *extra: str) -> Path:
    project.procfile(PROCFILE)
    project.write(".env", 'GREETING="hello \\"world\\" $5 #1 ;2"\n')
    target = project.root / "out"
    result = project.run("export", kind, str(target), "-a", "demo", "-c", "web=2", "-l", str(project.root / "log"),
                         *extra)
    assert result.returncode == 0, result.stderr
    return target


def test_supervisord_runs_the_exported_programs(project) -> None:
    target = _export(project, "supervisord")
    (project.root / "log").mkdir()
    conf = project.root / "supervisord.conf"
    conf.write_text(
        "[supervisord]\n"
        f"logfile={project.root}/supervisord.log\npidfile={project.root}/supervisord.pid\nnodaemon=true\n"
        f"[unix_http_server]\nfile={project.root}/sv.sock\n"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[supervisorctl]\nserverurl=unix://{project.root}/sv.sock\n"
        f"[include]\nfiles={target}/demo.conf\n"
    )
    binaries = Path(sys.executable).parent
    daemon = subprocess.Popen([str(binaries / "supervisord"), "-c", str(conf)], cwd=project.root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def status() -> str:
            return subprocess.run([str(binaries / "supervisorctl"), "-c", str(conf), "status"], capture_output=True,
                                  text=True, timeout=DEADLINE).stdout

        wait_for(lambda: status().count("RUNNING") == 3, what="three RUNNING programs")
        assert {line.split()[0] for line in status().splitlines()} == {
            "demo:demo-web-1", "demo:demo-web-2", "demo:demo-worker-1"}
        wait_for(lambda: (project.root / "out-web.2.txt").exists(), what="web.2 output")
        assert (project.root / "out-web.2.txt").read_text() == 'web 5001 web.2 hello "world" $5 #1 ;2 %d\n'
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(DEADLINE)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_verify(project) -> None:
    target = _export(project, "systemd", "-u", "root")
    units = sorted(path.name for path in target.iterdir() if not path.name.startswith("."))
    assert units == ["demo-web-1.service", "demo-web-2.service", "demo-worker-1.service", "demo.target"]
    service = (target / "demo-web-2.service").read_text()
    assert "Environment=\"PORT=5001\"\n" in service
    assert 'Environment="GREETING=hello \\"world\\" $5 #1 ;2"\n' in service
    assert "ExecStart=/bin/sh -c \"echo \\\"web $$PORT $$PS $$GREETING %%d\\\"" in service
    result = subprocess.run(["systemd-analyze", "verify", *sorted(str(target / unit) for unit in units)],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr


def test_launchd_plists_round_trip(project) -> None:
    target = _export(project, "launchd", "-u", "deploy")
    plist = plistlib.loads((target / "demo.web.2.plist").read_bytes())
    assert plist["Label"] == "demo.web.2"
    assert plist["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert plist["EnvironmentVariables"]["PORT"] == "5001"
    assert plist["EnvironmentVariables"]["GREETING"] == 'hello "world" $5 #1 ;2'
    assert plist["UserName"] == "deploy"
    assert plist["WorkingDirectory"] == str(project.root)
    assert plist["KeepAlive"] is True


def test_runit_run_scripts_are_valid_and_run(project) -> None:
    target = _export(project, "runit")
    run = target / "demo-web-2" / "run"
    for script in (run, target / "demo-web-2" / "log" / "run"):
        assert subprocess.run(["sh", "-n", str(script)], timeout=DEADLINE).returncode == 0
    service = subprocess.Popen([str(run)], cwd="/", stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: (project.root / "out-web.2.txt").exists(), what="the run script to start web.2")
        assert (project.root / "out-web.2.txt").read_text() == 'web 5001 web.2 hello "world" $5 #1 ;2 %d\n'
    finally:
        service.kill()
        service.wait(DEADLINE)


def test_export_errors_are_usage_errors(project) -> None:
    project.procfile("web: true\n")
    project.write(".env", 'MULTI="a\nb"\n')
    result = project.run("export", "supervisord", "out")
    assert result.returncode == 2
    assert "supervisord cannot hold the multi-line value of MULTI" in result.stderr
    assert project.run("export", "nope", "out").returncode == 2


@pytest.mark.parametrize(("kind", "gone"), [
    ("systemd", ["demo-web-2.service"]), ("supervisord", []), ("launchd", ["demo.web.2.plist"]),
    ("runit", ["demo-web-2"]),
])
def test_a_smaller_formation_removes_what_the_larger_one_wrote_and_nothing_else(project, kind, gone) -> None:
    target = _export(project, kind)
    (target / "notes.txt").write_text("the user's own file\n")
    (target / "demo-web-9.service").write_text("a unit procman did not write\n")
    before = {path.relative_to(target) for path in target.rglob("*")}
    result = project.run("export", kind, str(target), "-a", "demo", "-c", "web=1")
    assert result.returncode == 0, result.stderr
    after = {path.relative_to(target) for path in target.rglob("*")}
    removed = {path for path in before - after if path.parent == Path(".")}
    assert sorted(str(path) for path in removed) == gone
    assert (target / "notes.txt").read_text() == "the user's own file\n"
    assert (target / "demo-web-9.service").exists()
    if kind == "supervisord":
        assert "demo-web-2" not in (target / "demo.conf").read_text()
