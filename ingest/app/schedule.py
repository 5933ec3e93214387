"""When does the nightly run start? 02:00 America/New_York, every day, from a UTC timer.

Linux Consumption and Flex Consumption ignore `WEBSITE_TIME_ZONE`, so the timer fires at
06:00 and 07:00 UTC (`0 0 6,7 * * *`) and this module decides which of the two slots starts
the run: the first slot whose New York time is at or after 02:00 while an hour earlier it was
still before 02:00.

- Summer (EDT, UTC-4): 06:00 UTC = 02:00 EDT starts; 07:00 UTC = 03:00 EDT does not.
- Winter (EST, UTC-5): 06:00 UTC = 01:00 EST does not; 07:00 UTC = 02:00 EST starts.
- Spring-forward day: 02:00 does not exist; 06:00 UTC = 01:00 EST, 07:00 UTC = 03:00 EDT
  (an hour earlier it was 01:00) starts: the run is at 03:00 EDT. A plain `hour == 2` misses it.
- Fall-back day: 06:00 UTC = 01:00 EST (the second 01:00) does not; 07:00 UTC = 02:00 EST does.

The timer decides on the scheduled time, not on when it happens to run (`due_slot`): any fire
at or after the New York day's start slot, within that New York day, is due that day's run,
so a past-due fire (host down at 06:00 and 07:00 UTC, fire at 08:30) still starts it; the
run's fixed instance id makes sure it starts once.

Pure standard library; no clock is read here (callers pass the fire time).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ingest.vocabulary import WEEKDAYS

NEW_YORK = ZoneInfo("America/New_York")
RUN_AT = dt.time(2, 0)
#: NCRONTAB (seconds first) of the timer trigger, in UTC
TIMER_SCHEDULE = "0 0 6,7 * * *"
TIMER_HOURS_UTC = (6, 7)
INSTANCE_PREFIX = "nightly-"


def utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:  # the Functions host hands out naive UTC in places
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def slot_of(fire_time: dt.datetime) -> dt.datetime:
    """The timer slot an invocation belongs to: its UTC time floored to the hour
    (an invocation a few seconds or minutes late still belongs to its slot)."""
    return utc(fire_time).replace(minute=0, second=0, microsecond=0)


def new_york_time(moment: dt.datetime) -> dt.datetime:
    return utc(moment).astimezone(NEW_YORK)


def should_start(fire_time: dt.datetime) -> bool:
    """True for exactly one timer slot per New York day: the first at or after 02:00."""
    slot = slot_of(fire_time)
    now_local = new_york_time(slot).replace(tzinfo=None)  # wall-clock times
    before_local = new_york_time(slot - dt.timedelta(hours=1)).replace(tzinfo=None)
    threshold = dt.datetime.combine(now_local.date(), RUN_AT)
    return before_local < threshold <= now_local


def run_date(fire_time: dt.datetime) -> dt.date:
    """The New York calendar date a slot belongs to."""
    return new_york_time(slot_of(fire_time)).date()


def weekday(fire_time: dt.datetime) -> str:
    """The New York weekday (MON..SUN) of a slot: what `WEEKLY:<DAY>` jobs are matched with."""
    return WEEKDAYS[run_date(fire_time).weekday()]


def instance_id(fire_time: dt.datetime) -> str:
    """Deterministic Durable instance id (and run id) of a scheduled run:
    one per New York date, so a double fire cannot start two runs."""
    return f"{INSTANCE_PREFIX}{run_date(fire_time).isoformat()}"


def start_slot(day: dt.date) -> dt.datetime:
    """The UTC timer slot that starts New York date `day`'s run (06:00 or 07:00 UTC)."""
    for hour in TIMER_HOURS_UTC:
        candidate = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
        if should_start(candidate):
            return candidate
    raise AssertionError(f"no start slot on {day}")  # pragma: no cover - impossible


def due_slot(fire_time: dt.datetime) -> dt.datetime | None:
    """The start slot of the nightly run a timer fire at `fire_time` is due to start: that of
    the fire's New York day once its start time has come, else None (before 02:00 New York).

    On time, the start slot itself; later the same New York day (the 07:00 UTC slot in summer,
    a past-due fire after the host was down), still that day's slot: starting is idempotent
    through the run's instance id, so only a missing run is started.
    """
    day = new_york_time(fire_time).date()
    slot = start_slot(day)
    return slot if slot <= utc(fire_time) else None


def next_start(after: dt.datetime) -> dt.datetime:
    """The UTC time of the next timer slot (strictly after `after`) that starts a run."""
    slot = slot_of(after)
    for hours in range(1, 24 * 3):
        candidate = slot + dt.timedelta(hours=hours)
        if candidate.hour in TIMER_HOURS_UTC and should_start(candidate):
            return candidate
    raise AssertionError("no start within three days")  # pragma: no cover - impossible
