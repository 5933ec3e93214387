"""`python -m ingest`: the command line. Exit codes: 0 success, 1 some job failed,
2 bad configuration or arguments (nothing ran)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from ingest.errors import ConfigError, RequestError
from ingest.settings import SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: modules that add sub-commands; each has `register(subparsers)`
COMMAND_MODULES = (
    "ingest.commands.core",
    "ingest.commands.demo",
    "ingest.commands.secrets",
    "ingest.commands.history",
    "ingest.commands.trust",
    "ingest.commands.views",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
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
