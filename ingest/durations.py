"""Durations written in a configuration cell: `90` (seconds), `90s`, `30m`, `2h`, `1d`, and sums
such as `1h30m`. One parser for every column that takes one (`timeout`, `lookback`)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")

FORMS = "a number of seconds or a duration such as 90s, 30m, 2h, 1d, 1h30m"


def parse_duration(text: str) -> float | None:
    """Seconds in `text` (see module doc); None when it is not a duration."""
    value = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if not _WHOLE.fullmatch(value):
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))
