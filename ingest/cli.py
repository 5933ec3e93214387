"""`python -m ingest`: the command line. Exit codes: 0 success, 1 some job failed,
2 bad configuration or arguments (nothing ran)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from importlib import import_module, metadata
from types import SimpleNamespace
from typing import Any

from ingest.errors import ConfigError, RequestError
from ingest.settings import LOG_FORMATS, SettingsError, verbose_dlt_logging
from ingest.settings import log_format as settings_log_format

#: bad configuration or arguments: nothing ran (0: every job succeeded, 1: some failed)
EXIT_USAGE = 2

#: modules that add sub-commands; each has `register(subparsers)`
COMMAND_MODULES = (
    "ingest.commands.core",
    "ingest.commands.demo",
    "ingest.commands.secrets",
    "ingest.commands.history",
    "ingest.commands.html_report",
    "ingest.commands.trust",
    "ingest.commands.views",
    "ingest.commands.compact",
    "ingest.commands.discover",
    "ingest.commands.cdc",
)


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.runtime.logsetup import configure_logging
    from ingest.telemetry import configure as configure_telemetry

    return SimpleNamespace(
        configure_logging=configure_logging,
        configure_telemetry=configure_telemetry,
    )


def program_name(argv0: str | None = None) -> str:
    """`dlt-ingest` when run as the installed command, `python -m ingest` as a module."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "python -m ingest" if name in ("__main__.py", "-c", "", "-m") else name


def command_for_hints() -> str:
    """How to run this command again from any folder, for hints printed to the user: the
    installed command's name when it is on PATH, else its full path, else `python -m ingest`
    with this interpreter."""

    argv0 = sys.argv[0]
    name = program_name(argv0)
    if name == "python -m ingest" or not os.path.exists(argv0):
        return f"{sys.executable} -m ingest"
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return name
    return os.path.abspath(argv0)


def version_text() -> str:
    """`dlt-ingest 0.1.0 (dlt 1.31.0, Python 3.11.7)`: from the installed distributions'
    metadata (no engine import)."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"{program_name()} {installed('dlt-ingest')} "
        f"(dlt {installed('dlt')}, Python {sys.version.split()[0]})"
    )


def _add_output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """-v/-q/--log-format, on the main parser and (without defaults) on every command, so they
    work before and after the command's name."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="warnings and errors only"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default if default is argparse.SUPPRESS else None,
        help="log records on stderr as text (local time with UTC offset, run and job id) or "
        "json (one object per line); default: INGEST_LOG_FORMAT or text",
    )


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) of the main parser and every command and sub-command."""
    stack = [(parser.prog, parser)]
    while stack:
        name, current = stack.pop(0)
        yield name, current
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += [(sub.prog, sub) for sub in action.choices.values()]


def build_parser(terminal: bool | None = None) -> argparse.ArgumentParser:
    """The command line. `terminal`: render help with rich (default: when stdout is a
    terminal; plain text when piped)."""
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Copy the tables listed in the job configuration into the Parquet lake.",
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    _add_output_options(parser, False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    for _, sub in list(all_parsers(parser))[1:]:
        if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            _add_output_options(sub, argparse.SUPPRESS)
    if terminal if terminal is not None else _stdout_is_terminal():
        # rich: only for a person at a terminal (piped help stays plain argparse text)
        from rich_argparse import RichHelpFormatter

        for _, each in all_parsers(parser):
            each.formatter_class = RichHelpFormatter
    return parser


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    engine = _engine()
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    try:
        log_format = args.log_format or settings_log_format()
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    engine.configure_logging(level, log_format)
    if args.verbose:  # dlt sets its logger's level from its own setting when it starts
        verbose_dlt_logging()
    engine.configure_telemetry()  # no-op without APPLICATIONINSIGHTS_CONNECTION_STRING
    try:
        return int(args.func(args))
    except (ConfigError, RequestError, SettingsError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
