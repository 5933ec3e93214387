"""What the commands print: tables drawn with rich for a person at a terminal, plain text
columns when the output is piped or redirected (stable for scripts and `grep`), and JSON
values that keep every value exact.

NULL is shown as `NULL` (dimmed on a terminal), an empty text as nothing: the two never look
the same (`--json` gives null and "").
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from ingest.commands.report import table

#: how NULL is shown in a table
NULL = "NULL"


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def cell_text(value: Any, null: str | None) -> str:
    if value is None:
        return null if null is not None else ""
    return str(value)


def _numeric(rows: list[list[str]], index: int, nulls: list[list[bool]]) -> bool:
    values = [row[index] for row, isnull in zip(rows, nulls, strict=True) if not isnull[index]]
    values = [v for v in values if v]
    if not values:
        return False
    try:
        for value in values:
            float(value.replace(",", ""))
    except ValueError:
        return False
    return True


def show_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    out: TextIO,
    *,
    null: str | None = None,
    terminal: bool | None = None,
) -> None:
    """Write a table to `out`: rich on a terminal, plain columns otherwise. `null`: how None
    cells are shown (default: empty)."""
    materialised = [list(row) for row in rows]
    if not (terminal if terminal is not None else is_terminal(out)):
        plain = [[cell_text(v, null) for v in row] for row in materialised]
        out.write(table(headers, plain) + "\n")
        return
    # rich: only for a person at a terminal
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    texts = [[cell_text(v, null) for v in row] for row in materialised]
    nulls = [[v is None for v in row] for row in materialised]
    drawn = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for index, header in enumerate(headers):
        numeric = _numeric(texts, index, nulls)
        drawn.add_column(Text(str(header)), justify="right" if numeric else "left")
    for row, isnull in zip(texts, nulls, strict=True):
        drawn.add_row(
            *(
                Text(text, style="dim italic" if is_null and null is not None else "")
                for text, is_null in zip(row, isnull, strict=True)
            )
        )
    Console(file=out, force_terminal=True, soft_wrap=False).print(drawn)


def json_value(value: Any) -> Any:
    """A JSON-safe form that keeps the value exact: decimals and big integers as text where
    a float would round them, times in ISO 8601, bytes in base64."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)
