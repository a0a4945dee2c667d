"""The procman command line: parse arguments, call the modules, map errors to messages and exit codes.

Only ``argparse`` is imported up front; each command imports what it needs, so ``procman run`` (which
replaces itself with the child) stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procman import __version__
from procman.errors import ConfigError
from procman.settings import restart_limit, seconds

USAGE_ERROR = 2
COMMAND_NOT_FOUND = 127
EXAMPLES = """\
examples:
  procman start                         run every process in ./Procfile
  procman start web worker              run only these two
  procman start -c web=2,worker=4       two web and four worker instances (all=N sets the rest)
  procman start -c worker=auto:1..8     as many workers as the worker's autoscale command says
  procman start -r worker --can-die migrate
                                        respawn worker when it dies; let migrate finish
  procman run worker                    run one Procfile entry in the foreground (exec)
  procman run python manage.py shell    run any command with the .env environment
  procman restart 'worker.*'            restart processes of a running 'procman start'
  procman restart worker --rolling      one instance at a time, each once the one before is ready
  procman start --watch 'web=**/*.py'   restart web when a .py file changes (development)
  procman status                        list them
  procman export systemd ./units -a myapp -u deploy
  procman check                         validate Procfile and .env, show ports

Defaults come from [tool.procman] in pyproject.toml and PROCMAN_* variables (e.g. PROCMAN_TIMEOUT=10);
flags win. POSIX only (Linux, macOS). Full reference: docs/procman.md.
"""


def _project_options(parser: argparse.ArgumentParser, formation: bool = True) -> None:
    parser.add_argument("-f", "--procfile", help="the Procfile (default: Procfile in the -d folder, else ./Procfile)")
    parser.add_argument(
        "-e", "--env", action="append", metavar="FILES",
        help="env file(s), comma list or repeated, later wins (default: .env in the root, if present)",
    )
    parser.add_argument("-d", "--root", help="working directory of the processes (default: the Procfile's folder)")
    parser.add_argument("-p", "--port", type=int, help="base port (default: PORT from the env files, $PORT, 5000)")
    if formation:
        parser.add_argument(
            "-c", "--concurrency", "-m", "--formation", dest="concurrency", metavar="FORMATION",
            help="instances per process, e.g. web=2,worker=4,all=1 (name=0 disables; worker=auto:1..8 autoscales)",
        )


def _start_options(start: argparse.ArgumentParser) -> None:
    start.add_argument("names", nargs="*", metavar="NAME", help="only these processes")
    _project_options(start)
    start.add_argument("-t", "--timeout", type=_seconds, help="seconds between SIGTERM and SIGKILL (default 5)")
    colour = start.add_mutually_exclusive_group()
    colour.add_argument("--color", "--colour", dest="color", action="store_true", default=None, help="force colour")
    colour.add_argument("--no-color", "--no-colour", dest="color", action="store_false", help="never colour")
    start.add_argument("--no-timestamp", dest="timestamp", action="store_false", default=None,
                       help="no time in the prefix")
    start.add_argument("--no-prefix", dest="prefix", action="store_false", default=None, help="no prefix at all")
    start.add_argument("-x", "--ignore", action="append", metavar="NAMES", help="processes not to start")
    start.add_argument("--can-die", action="append", metavar="NAMES", help="processes whose exit stops nothing")
    start.add_argument("-r", "--restart", action="append", metavar="NAMES|all",
                       help="processes respawned when they exit (backoff; see --restart-limit)")
    start.add_argument("--restart-limit", type=_restart_limit, metavar="COUNT[/SECONDS]",
                       help="give up (and stop all) when an instance would restart more than COUNT times within "
                            "SECONDS (default 5/600: 5 times in 10 minutes)")
    start.add_argument("--tty", action="store_true", default=None,
                       help="give each process a pseudo-terminal (line-buffered output, colours kept)")
    start.add_argument("--watch", action="append", metavar="NAME=PATTERN", default=[],
                       help="restart NAME (one instance at a time) when files matching PATTERN change, e.g. "
                            "'web=**/*.py' (repeat for more; for development)")


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="NAME|COMMAND ...")
    _project_options(run, formation=False)


def _export_options(export: argparse.ArgumentParser) -> None:
    export.add_argument("format", choices=("systemd", "supervisord", "launchd", "runit"))
    export.add_argument("location", metavar="DIR", help="folder to write to")
    _project_options(export)
    export.add_argument("-a", "--app", help="application name (default: the root folder's name)")
    export.add_argument("-u", "--user", help="user to run as (default: the service manager's)")
    export.add_argument("-l", "--log", metavar="DIR", help="log folder (default: /var/log/APP)")
    export.add_argument("-t", "--timeout", type=_seconds, help="seconds between SIGTERM and SIGKILL (default 5)")


def _control_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("names", nargs="+", metavar="NAME", help="names or wildcards: web, web.2, 'worker.*'")
    _project_options(command, formation=False)


def _restart_options(restart: argparse.ArgumentParser) -> None:
    _control_options(restart)
    restart.add_argument("--rolling", action="store_true",
                         help="one instance at a time: quiet signal, stop signal, SIGKILL (each after the timeout), "
                              "then the new one, and the next once it is ready")


def _status_options(status: argparse.ArgumentParser) -> None:
    _project_options(status, formation=False)


# command -> (help, adds its options)
COMMANDS: dict[str, tuple[str, Any]] = {
    "start": ("run the Procfile's processes", _start_options),
    "run": ("run a Procfile entry or a command with the environment (exec)", _run_options),
    "check": ("validate the Procfile and env files, show the formation", _project_options),
    "export": ("write service definitions for the formation", _export_options),
    "restart": ("restart processes of a running start", _restart_options),
    "stop": ("stop processes of a running start", _control_options),
    "status": ("list the processes of a running start", _status_options),
    "version": ("print the version", None),
}


def _build_parser(wanted: str | None) -> argparse.ArgumentParser:
    """The parser. A known ``wanted`` command is the only one built (building them all costs ``start`` and
    ``run`` time); otherwise every command is listed, without options, for help and error messages."""
    parser = argparse.ArgumentParser(
        prog="procman",
        description="Run the processes of a Procfile, prefix and colour their output, stop them together.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--version", action="version", version=f"procman {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, add_options) in COMMANDS.items():
        if wanted in COMMANDS and name != wanted:
            continue
        command = commands.add_parser(name, help=text, description=text, epilog=EXAMPLES,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        if add_options is not None and name == wanted:
            add_options(command)
    return parser


def _split(values: list[str] | None) -> list[str] | None:
    """``-e a,b -e c`` -> ``[a, b, c]``; None when the option was not given."""
    if values is None:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _argument_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a converter of ``procman.settings``: its ValueError becomes a usage error."""

    def checked(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


_seconds = _argument_type(seconds)
_restart_limit = _argument_type(restart_limit)


def _pyproject(args: argparse.Namespace) -> Path:
    """The pyproject.toml whose [tool.procman] applies: in the root folder (``-d``), else beside the Procfile
    (``-f``), else in the working folder, as Foreman takes the Procfile's folder for the root."""
    root, procfile = getattr(args, "root", None), getattr(args, "procfile", None)
    folder = Path(root) if root else Path(procfile).parent if procfile else Path()
    return folder / "pyproject.toml"


def _resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Merge flags over PROCMAN_* over [tool.procman] (of :func:`_pyproject`) over built-in defaults."""
    from procman.settings import defaults

    configured = defaults(os.environ, _pyproject(args))
    flags = {
        "procfile": getattr(args, "procfile", None),
        "env": _split(getattr(args, "env", None)),
        "root": getattr(args, "root", None),
        "port": getattr(args, "port", None),
        "concurrency": getattr(args, "concurrency", None),
        "timeout": getattr(args, "timeout", None),
        "color": getattr(args, "color", None),
        "timestamp": getattr(args, "timestamp", None),
        "prefix": getattr(args, "prefix", None),
        "ignore": _split(getattr(args, "ignore", None)),
        "can-die": _split(getattr(args, "can_die", None)),
        "restart": _split(getattr(args, "restart", None)),
        "restart-limit": getattr(args, "restart_limit", None),
        "tty": getattr(args, "tty", None),
    }
    builtin: dict[str, Any] = {"concurrency": "", "timeout": 5.0, "timestamp": True,
                               "prefix": True, "ignore": [], "can-die": [], "restart": [], "tty": False}
    return {key: value if value is not None else configured.get(key, builtin.get(key)) for key, value in flags.items()}


def _load(options: dict[str, Any], procfile_required: bool = True) -> Any:
    from procman.project import load_project

    return load_project(
        options["procfile"], options["root"], options["env"], options["port"], dict(os.environ), procfile_required
    )


def _process_config(project: Any, args: argparse.Namespace) -> Any:
    """The per-process options (``[tool.procman.processes]`` of :func:`_pyproject`, or ``procman.toml``) for the
    project's Procfile."""
    from procman.processconfig import load_process_config
    from procman.settings import read_pyproject

    pyproject = _pyproject(args)
    return load_process_config(read_pyproject(pyproject), pyproject, project.procfile, project.entries)


def _autoscaled(concurrency: str, instances: list[Any], config: Any) -> dict[str, Any]:
    """The ``NAME=auto:LOW..HIGH`` counts of the formation; each needs an ``autoscale`` command."""
    from procman.formation import autoscaled, parse_concurrency

    present = {instance.name for instance in instances}
    ranges = {name: scale for name, scale in autoscaled(parse_concurrency(concurrency)).items() if name in present}
    for name, scale in ranges.items():
        if config.of(name).autoscale is None:
            raise ConfigError(f"{name}=auto:{scale.low}..{scale.high} needs autoscale = \"COMMAND\" in its process "
                              f"options ([tool.procman.processes.{name}], or [processes.{name}] in procman.toml)",
                              "-c/--concurrency")
    return ranges


def _cmd_start(args: argparse.Namespace) -> int:
    from procman.control import socket_path
    from procman.formation import check_names
    from procman.loop import Loop
    from procman.output import Output, Style, wants_color
    from procman.runner import run_formation
    from procman.slots import Policy

    options = _resolve(args)
    project = _load(options)
    instances = project.formation(options["concurrency"], args.names, options["ignore"])
    if not instances:
        raise ConfigError("nothing to start: the formation has no instances", "-c/--concurrency")
    check_names(options["can-die"], project.entries, "--can-die")
    restart = options["restart"]
    if restart == ["all"]:
        restart = [entry.name for entry in project.entries]
    check_names(restart, project.entries, "-r/--restart")
    color = wants_color(options["color"], sys.stdout.isatty(), os.environ)
    loop = Loop()
    output = Output(sys.stdout.buffer, Style(color, options["timestamp"], options["prefix"]),
                    [instance.label for instance in instances], loop)
    config = _process_config(project, args)
    policy = Policy(options["timeout"], frozenset(options["can-die"]), frozenset(restart), processes=config,
                    autoscale=_autoscaled(options["concurrency"], instances, config))
    if options["restart-limit"] is not None:
        limit, window = options["restart-limit"]
        policy = policy._replace(restart_limit=limit, restart_window=window)
    watch = []
    if args.watch:
        from procman.watch import parse_watch

        watch = parse_watch(args.watch, project.entries)
    return run_formation(instances, project.environment, project.root, output, loop, policy, options["tty"],
                         socket_path(project.root, os.environ), watch)


def _cmd_run(args: argparse.Namespace) -> int:
    argv: list[str] = args.argv
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise ConfigError("name a Procfile entry or a command to run", "run")
    options = _resolve(args)
    project = _load(options, procfile_required=False)
    entry = project.entry(argv[0]) if len(argv) == 1 else None
    if entry is not None:
        from procman.formation import Instance, port_for
        from procman.procfile import shell_argv

        instance = Instance(entry, 1, port_for(entry, 1, project.base_port))
        env = project.environment(instance)
        argv = shell_argv(entry.command)
    else:
        env = project.environment(None)
    sys.stdout.flush()
    try:
        os.chdir(project.root)
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f"procman: {argv[0]}: command not found (and not a Procfile entry)", file=sys.stderr)
        return COMMAND_NOT_FOUND
    except PermissionError:
        print(f"procman: {argv[0]}: permission denied", file=sys.stderr)
        return 126


def _cmd_check(args: argparse.Namespace) -> int:
    options = _resolve(args)
    project = _load(options)
    instances = project.formation(options["concurrency"] or "")
    config = _process_config(project, args)
    from procman.formation import autoscaled, parse_concurrency

    ranges = autoscaled(parse_concurrency(options["concurrency"] or ""))
    names = ", ".join(entry.name for entry in project.entries)
    print(f"valid Procfile detected ({names}): {project.procfile}")  # one line, however wide: scripts grep it
    for path in project.env_files:
        if path.exists():
            print(f"env file: {path}")
    sys.stdout.flush()
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("process", "instances", "ports", "command")
    for entry in project.entries:
        ports = [str(instance.port) for instance in instances if instance.entry == entry]
        scale = ranges.get(entry.name)
        count = f"auto {scale.low}..{scale.high}" if scale else str(len(ports))
        table.add_row(entry.name, count, ", ".join(ports) or "-", Text(entry.command))  # no markup
    console = Console(highlight=False)
    console.print(table)
    if config.ignored:
        print(f"ignored (not in this Procfile): {', '.join(config.ignored)} in {config.source}")
    if config.options:
        _print_process_config(console, config, [entry.name for entry in project.entries])
    return 0


def _print_process_config(console: Any, config: Any, names: list[str]) -> None:
    """``procman check``'s view of the per-process options, and the shutdown order they give."""
    from rich.table import Table
    from rich.text import Text

    from procman.dependencies import stop_stages
    from procman.memory import describe_size

    print(f"process options: {config.source}")  # plain lines, however wide, as the Procfile's
    table = Table("process", "depends on", "ready", "stop signal", "quiet signal", "max memory")
    for name in names:
        if name not in config.options:
            continue
        option = config.of(name)
        depends = ", ".join(f"{other} ({condition})" for other, condition in option.depends_on.items())
        ready = "-"
        if option.ready is not None:
            every = "" if option.ready.kind == "log" else f"every {option.ready_interval:g} s, "
            ready = f"{option.ready.text} ({every}up to {option.ready_timeout:g} s)"
        quiet = option.quiet_signal.name if option.quiet_signal else "-"
        memory = describe_size(option.max_memory) if option.max_memory else "-"
        table.add_row(name, depends or "-", Text(ready), option.stop_signal.name, quiet, memory)
    console.print(table)
    for name in names:
        option = config.of(name)
        if option.autoscale is not None:
            print(f"{name} autoscale: {option.autoscale} (every {option.autoscale_interval:g} s, cool-down "
                  f"{option.autoscale_cooldown:g} s)")
    stages = [", ".join(stage) for stage in stop_stages(names, config)]
    print(f"shutdown order: {', then '.join(stages)}")


def _cmd_export(args: argparse.Namespace) -> int:
    from procman.export import ExportSpec, write_export

    options = _resolve(args)
    project = _load(options)
    from procman.formation import autoscaled, parse_concurrency

    if autoscaled(parse_concurrency(options["concurrency"])):
        raise ConfigError("an autoscaled count (auto:LOW..HIGH) cannot be exported; give a number", "-c/--concurrency")
    instances = project.formation(options["concurrency"])
    if not instances:
        raise ConfigError("nothing to export: the formation has no instances", "-c/--concurrency")
    spec = ExportSpec.build(project, instances, args.app, args.user, args.log, options["timeout"])
    written, removed = write_export(args.format, spec, Path(args.location))
    for path in written:
        print(f"wrote {path}")
    for path in removed:
        print(f"removed {path} (an instance no longer in the formation)")
    return 0


def _cmd_control(args: argparse.Namespace) -> int:
    from procman.control import request, socket_path
    from procman.project import locate

    options = _resolve(args)
    _, root = locate(options["procfile"], options["root"])
    reply = request(socket_path(root, os.environ), args.command, getattr(args, "names", []),
                    rolling=getattr(args, "rolling", False))
    if not reply.get("ok"):
        print(f"procman: {reply.get('error', 'request failed')}", file=sys.stderr)
        return 1
    if args.command != "status":
        print(reply["message"])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("process", "state", "pid", "port", "uptime", "restarts", "memory")
    for process in reply["processes"]:
        uptime = "-" if process["uptime"] is None else f"{process['uptime']:.0f}s"
        table.add_row(process["name"], process["state"], str(process["pid"] or "-"), str(process["port"]), uptime,
                      str(process["restarts"]), str(process["memory_restarts"]))
    Console().print(table)
    return 0


_RUN_OPTIONS = {"-f": "procfile", "--procfile": "procfile", "-e": "env", "--env": "env", "-d": "root",
                "--root": "root", "-p": "port", "--port": "port"}


def _quick_run_args(arguments: list[str]) -> argparse.Namespace | None:
    """Parse the common ``run [-f F] [-e E] [-d D] [-p N] COMMAND...`` without building argparse's parsers
    (which costs more than the rest of ``run``); None for anything else (help, errors), left to argparse."""
    if arguments[:1] != ["run"]:
        return None
    values: dict[str, Any] = {"command": "run", "procfile": None, "env": None, "root": None, "port": None}
    words = arguments[1:]
    while words and words[0].startswith("-") and words[0] != "--":
        option, equals, value = words[0].partition("=")
        key = _RUN_OPTIONS.get(option)
        if key is None or (equals and not option.startswith("--")) or (not equals and len(words) < 2):
            return None
        if equals:
            words = words[1:]
        else:
            value, words = words[1], words[2:]
        if key == "env":
            values["env"] = [*(values["env"] or []), value]
        elif key == "port":
            if not value.isdigit():
                return None
            values["port"] = int(value)
        else:
            values[key] = value
    values["argv"] = words
    return argparse.Namespace(**values)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``procman`` command; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    args = _quick_run_args(arguments)
    parser = None
    if args is None:
        parser = _build_parser(next((word for word in arguments if not word.startswith("-")), None))
        args = parser.parse_args(arguments)
    handlers = {"start": _cmd_start, "run": _cmd_run, "check": _cmd_check, "export": _cmd_export,
                "restart": _cmd_control, "stop": _cmd_control, "status": _cmd_control}
    if args.command == "version":
        print(f"procman {__version__}")
        return 0
    if args.command is None:
        assert parser is not None
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return handlers[args.command](args)
    except ConfigError as error:
        print(f"procman: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
