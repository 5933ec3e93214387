"""How a run is split for Durable: batches of tables, lanes of batches, windows of tables.

Durable replays an orchestration from its whole history after every event, so the cost of a
history grows with the square of its length. A run is therefore split into sub-orchestrations
(`ingest_batch`), each holding at most `INGEST_BATCH_SIZE` tables: every history stays short
and the total replay work grows linearly with the number of tables.

The run's `INGEST_MAX_PARALLEL` table slots are shared by `lanes`: up to that many batches run
at once, each with a sliding window of tables (the lane's width); when a batch finishes, its
lane takes the next batch. Lanes are at least `MIN_LANE_WIDTH` tables wide: a batch holding
one slow table keeps only its own lane's other slots idle while it waits for that table, the
other lanes keep loading.

Pure functions, no Durable imports: the orchestrators and the tests use them alike.
"""

from __future__ import annotations

#: narrowest lane: a lane this wide wastes at most MIN_LANE_WIDTH - 1 slots on a slow table
MIN_LANE_WIDTH = 4


def batch_count(total: int, batch_size: int) -> int:
    return -(-total // batch_size) if total else 0


def lane_widths(total: int, batch_size: int, max_parallel: int) -> list[int]:
    """The width (tables in flight) of each lane; the widths add up to `max_parallel`, and
    there are never more lanes than batches.

    >>> lane_widths(1000, 50, 8)
    [4, 4]
    >>> lane_widths(40, 50, 8)
    [8]
    >>> lane_widths(1000, 50, 10)
    [5, 5]
    """
    max_parallel = max(1, int(max_parallel))
    batches = batch_count(total, max(1, int(batch_size)))
    lanes = max(1, min(batches, max_parallel // MIN_LANE_WIDTH))
    base, extra = divmod(max_parallel, lanes)
    return [base + (1 if lane < extra else 0) for lane in range(lanes)]


def batch_size_of(number: int, total: int, batch_size: int) -> int:
    """Tables in batch `number` (the last batch may be smaller)."""
    return max(0, min(batch_size, total - number * batch_size))


def batch_instance_id(run_id: str, number: int) -> str:
    """Durable instance id of batch `number` of a run: deterministic, so the status endpoint
    can ask Durable for a running batch's progress."""
    return f"{run_id}:batch-{number:04d}"
