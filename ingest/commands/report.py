"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned text columns, numbers right-aligned."""
    body = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str], numeric: Sequence[bool]) -> str:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    numeric = [
        bool(body) and all(_is_number(row[i]) for row in body if row[i])
        for i in range(len(headers))
    ]
    out = [line(list(headers), [False] * len(headers)), line(["-" * w for w in widths], numeric)]
    out += [line(row, numeric) for row in body]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True
