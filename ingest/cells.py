"""Text written into a generated spreadsheet or CSV file never runs as a formula.

The rule (OWASP "CSV injection"): a text cell whose first character is `=`, `+`, `-`, `@`, a
tab or a carriage return (or their full-width forms, which some spreadsheet programs read as
the same), also after leading spaces, is written with a single quote in front, so Excel,
LibreOffice and Google Sheets show it as text: a config cell `=HYPERLINK("http://...")`
becomes `'=HYPERLINK("http://...")`. Plain numbers (`-5`, `+1.5e3`) are left alone: they are
values, not formulas, and a watermark `-5` stays `-5`. The CSV writer's own quoting handles
commas, quotes and line breaks.

Every generated file follows the rule: the jobs catalog (`ingest.reports.catalog`) through
`safe_cell`, the audit CSV (`ingest.audit`, whose rows the history, the catalog, the report and
the function app read) through `encode_cell` / `decode_cell`, the same rule made reversible: a
text that starts with `'` gets one more in front too, and reading removes one, so every text
(a watermark ending in a carriage return, an error starting with `=`) reads back as it was.
"""

from __future__ import annotations

import re
from typing import Any

#: first characters a spreadsheet program reads as the start of a formula
FORMULA_TRIGGERS = frozenset("=+-@\t\r＝＋－＠")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as it may be written into a generated spreadsheet or CSV cell: text that a
    spreadsheet would run as a formula gets a leading `'`; anything else is returned as is.
    Idempotent."""
    if not isinstance(value, str) or not value:
        return value
    first = value.lstrip(" ")[:1]
    if first and first in FORMULA_TRIGGERS and not _NUMBER.fullmatch(value.strip()):
        return "'" + value
    return value


def encode_cell(value: Any) -> Any:
    """`safe_cell`, reversibly (see module doc): `decode_cell(encode_cell(t)) == t`."""
    if isinstance(value, str) and value.startswith("'"):
        return "'" + value
    return safe_cell(value)


def decode_cell(text: str) -> str:
    """The text `encode_cell` was given."""
    return text[1:] if text.startswith("'") else text
