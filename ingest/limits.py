"""Limits on what users and callers hand the framework, in one place (README "Security notes").

Everything read from outside (the job configuration, request bodies, CLI arguments, backfill
bounds) is bounded before it is parsed or kept, so a hostile or broken input is refused in
milliseconds with a clear message instead of taking the memory of the machine. Messages quote
at most `MAX_QUOTED_CHARS` characters of a bad value (`quote`), never the whole of it.

Leaf module: standard library only, imported by the readers that enforce the limits
(`ingest.config.sheets`, `ingest.run_request`, `ingest.checks.backfill`, `ingest.job.errors`).
"""

from __future__ import annotations

#: configuration file on disk (.xlsx or .csv)
MAX_CONFIG_FILE_BYTES = 20 * 1024 * 1024
#: an .xlsx is a zip: the sum of its members' uncompressed sizes (a zip bomb stops here)
MAX_XLSX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024
#: sheets in a workbook
MAX_SHEETS = 50
#: data rows per sheet (jobs, api)
MAX_ROWS = 10_000
#: columns per sheet
MAX_COLUMNS = 200
#: characters in one cell: Excel's own limit per cell
MAX_CELL_CHARS = 32_767

#: HTTP request body of POST /api/runs
MAX_BODY_BYTES = 64 * 1024
#: job ids or source names in one request
MAX_SELECTION = 5_000
#: characters of a backfill bound (`--from`, `--to`): a timestamp with zone and micro-
#: seconds is 32; a 40-digit number is longer than any integer or numeric(38) watermark
MAX_WATERMARK_CHARS = 40

#: characters of a bad value quoted in an error message
MAX_QUOTED_CHARS = 60
#: characters of a library's message kept as the reason of a job's failure
MAX_REASON_CHARS = 300


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def quote(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """A bad value for an error message: `repr` of at most `limit` characters of it."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except ValueError:  # an int of more than 4,300 digits has no str()
            return (
                f"<a number of about {int(getattr(value, 'bit_length', int)() * 0.30103):,} digits>"
            )
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
