"""Source columns named like the columns the framework adds (`_load_id`, `_load_date`,
`_deleted`, `_valid_from`, `_valid_to`, `_lsn`: `ingest.vocabulary.RESERVED_COLUMNS`).

Such a column would shadow ours in every view (DuckDB would return the source's value as
`_load_id` and rename ours `_load_id_1`; Synapse would name the column twice). It lands renamed,
`<name>_source` (`_load_id_source`, with a number added should that name be taken too), and the
job's `schema_changes` says so the first time the renamed column lands. It cannot be the job's
key or watermark: those keep their names in every view; the job is refused, saying to rename it
in a source view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ingest.errors import JobError
from ingest.identifiers import lake_name
from ingest.vocabulary import RESERVED_COLUMNS

SUFFIX = "_source"


def renames(names: Iterable[str]) -> dict[str, str]:
    """source name -> the name it lands as, for the reserved ones among `names`."""
    names = list(names)
    taken = {lake_name(n) for n in names}
    renamed: dict[str, str] = {}
    for name in names:
        if lake_name(name) not in RESERVED_COLUMNS:
            continue
        candidate, number = f"{name}{SUFFIX}", 1
        while lake_name(candidate) in taken:
            number += 1
            candidate = f"{name}{SUFFIX}{number}"
        taken.add(lake_name(candidate))
        renamed[name] = candidate
    return renamed


def check_key_and_watermark(
    job_id: str, renamed: Mapping[str, str], primary_key: Iterable[str], watermark: str | None
) -> None:
    """A reserved name as the key or the watermark: refused (see module doc)."""
    used = [c for c in (*primary_key, *((watermark,) if watermark else ())) if c]
    clashes = [c for c in used if any(c.lower() == r.lower() for r in renamed)]
    if clashes:
        raise JobError(
            f"job {job_id}: column(s) {', '.join(clashes)} used as key or watermark carry a "
            f"name the framework adds to every table ({', '.join(RESERVED_COLUMNS)}); read the "
            "table through a source view that renames them"
        )


def note(renamed: Mapping[str, str]) -> str:
    """The schema note: `renamed: _load_id -> _load_id_source (...)`."""
    pairs = ", ".join(f"{old} -> {new}" for old, new in renamed.items())
    return f"renamed: {pairs} (names the framework adds to every table)"
