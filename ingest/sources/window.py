"""Where an INCREMENTAL read starts: the stored watermark, less the job's lookback (dlt's
`lag`: seconds for a timestamp, days for a date, the number itself for a numeric watermark)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any


def read_start(last: Any, lag: float | None) -> Any:
    """The lowest watermark a run with `lag` re-reads from, for a stored value `last`."""
    if not lag or last is None:
        return last
    if isinstance(last, dt.datetime):
        return last - dt.timedelta(seconds=lag)
    if isinstance(last, dt.date):
        return last - dt.timedelta(days=lag)
    if isinstance(last, int):
        return last - int(lag)
    if isinstance(last, decimal.Decimal):
        return last - decimal.Decimal(str(lag))
    return last - lag
