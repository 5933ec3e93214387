"""`python -m ingest`: the command line. Exit codes: 0 success, 1 some job failed,
2 bad configuration or arguments (nothing ran)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from importlib import import_module

from ingest.errors import ConfigError, RequestError
from ingest.settings import SettingsError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Copy the tables listed in the job configuration into the Parquet lake.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.runtime.logsetup import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    configure_logging(level)
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.telemetry import configure as configure_telemetry

    configure_telemetry()  # no-op without APPLICATIONINSIGHTS_CONNECTION_STRING
    try:
        return int(args.func(args))
    except (ConfigError, RequestError, SettingsError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
