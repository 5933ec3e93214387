"""The nightly timer: 02:00 America/New_York from a UTC schedule, once per New York day."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

import function_app
from ingest.app import schedule
from ingest.app.runstore import RunStore
from tests.durable_harness import FakeDurable
from tests.fixtures.app import activity, job_row, write_config

NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def timer_slots(first_day: dt.date, last_day: dt.date):
    day = first_day
    while day <= last_day:
        for hour in schedule.TIMER_HOURS_UTC:
            yield dt.datetime.combine(day, dt.time(hour), tzinfo=UTC)
        day += dt.timedelta(days=1)


def all_days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def test_exactly_one_start_per_new_york_day_2026_2027():
    starts = [
        s
        for s in timer_slots(dt.date(2026, 1, 1), dt.date(2027, 12, 31))
        if schedule.should_start(s)
    ]
    per_day = Counter(schedule.run_date(s) for s in starts)
    assert set(per_day) == set(all_days(dt.date(2026, 1, 1), dt.date(2027, 12, 31)))
    assert set(per_day.values()) == {1}
    local_times = Counter(s.astimezone(NY).strftime("%H:%M") for s in starts)
    # 02:00 every day except the two spring-forward days (02:00 does not exist): 03:00
    assert local_times == {"02:00": 730 - 2, "03:00": 2}


@pytest.mark.parametrize(
    ("day", "start_utc", "local"),
    [
        (dt.date(2026, 3, 8), 7, "03:00 EDT"),  # spring forward: 02:00 does not exist
        (dt.date(2026, 11, 1), 7, "02:00 EST"),  # fall back: 01:00 happens twice
        (dt.date(2027, 3, 14), 7, "03:00 EDT"),
        (dt.date(2027, 11, 7), 7, "02:00 EST"),
        (dt.date(2026, 7, 4), 6, "02:00 EDT"),
        (dt.date(2026, 1, 15), 7, "02:00 EST"),
        (dt.date(2026, 3, 7), 7, "02:00 EST"),  # the day before spring forward
        (dt.date(2026, 3, 9), 6, "02:00 EDT"),  # the day after
    ],
)
def test_dst_days(day, start_utc, local):
    slots = {h: dt.datetime.combine(day, dt.time(h), tzinfo=UTC) for h in (6, 7)}
    assert [h for h, s in slots.items() if schedule.should_start(s)] == [start_utc]
    assert slots[start_utc].astimezone(NY).strftime("%H:%M %Z") == local


def test_naive_hour_rule_would_miss_spring_forward():
    """Why the rule is not `hour == 2`: that check never fires on spring-forward day."""
    day = dt.date(2026, 3, 8)
    naive = [
        h
        for h in (6, 7)
        if dt.datetime.combine(day, dt.time(h), tzinfo=UTC).astimezone(NY).hour == 2
    ]
    assert naive == []
    assert schedule.should_start(dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC))


def test_late_invocations_belong_to_their_slot():
    assert schedule.should_start(dt.datetime(2026, 7, 4, 6, 0, 41, tzinfo=UTC))
    assert schedule.should_start(dt.datetime(2026, 7, 4, 6, 59, 59, tzinfo=UTC))
    assert not schedule.should_start(dt.datetime(2026, 7, 4, 7, 0, 3, tzinfo=UTC))
    assert schedule.should_start(dt.datetime(2026, 1, 4, 7, 0, 3))  # naive means UTC


def test_instance_id_and_weekday_are_new_york_dates():
    fire = dt.datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # Friday 02:00 EST
    assert schedule.instance_id(fire) == "nightly-2026-11-27"
    assert schedule.weekday(fire) == "FRI"
    summer = dt.datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # Monday 02:00 EDT
    assert (schedule.instance_id(summer), schedule.weekday(summer)) == ("nightly-2026-06-01", "MON")


def test_next_start():
    assert schedule.next_start(dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == dt.datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )
    assert schedule.next_start(dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)) == dt.datetime(
        2026, 3, 9, 6, 0, tzinfo=UTC
    )


# ------------------------------------------------------------------------------ the timer function


def timer_function():
    return function_app.nightly_timer.build().get_user_function().client_function


def fire(durable: FakeDurable, when: dt.datetime, monkeypatch, past_due=False):
    """Invoke the timer function as the host would at `when` (UTC)."""
    from azure.functions.timer import TimerRequest

    class FrozenClock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return when if tz is None else when.astimezone(tz)

    monkeypatch.setattr(function_app.dt, "datetime", FrozenClock)
    asyncio.run(timer_function()(TimerRequest(past_due=past_due), client=durable.client()))


def test_timer_starts_once_per_new_york_day_for_two_years(monkeypatch):
    durable = FakeDurable()
    for slot in timer_slots(dt.date(2026, 1, 1), dt.date(2027, 12, 31)):
        before = len(durable.started)
        fire(durable, slot + dt.timedelta(seconds=2), monkeypatch)
        for _name, instance_id, _ in durable.started[before:]:
            durable.set_status(instance_id, "Completed")  # the night's run finishes
    ids = [instance_id for _, instance_id, _ in durable.started]
    days = all_days(dt.date(2026, 1, 1), dt.date(2027, 12, 31))
    assert ids == [f"nightly-{d.isoformat()}" for d in days]
    assert {name for name, _, _ in durable.started} == {"ingest_run"}
    for _, instance_id, payload in durable.started:
        day = dt.date.fromisoformat(instance_id.removeprefix("nightly-"))
        assert payload["run_id"] == instance_id and payload["trigger"] == "timer"
        assert payload["scheduled_weekday"] == day.strftime("%a").upper()  # MON..SUN


def test_double_fire_starts_one_run(monkeypatch, caplog):
    durable = FakeDurable()
    slot = dt.datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    fire(durable, slot, monkeypatch)
    durable.set_status("nightly-2026-11-01", "Completed")
    with caplog.at_level(logging.WARNING):
        fire(durable, slot + dt.timedelta(seconds=30), monkeypatch, past_due=True)
    assert [i for _, i, _ in durable.started] == ["nightly-2026-11-01"]
    assert "already exists" in caplog.text


def test_an_active_run_delays_the_night_instead_of_skipping_it(monkeypatch, caplog):
    """A manual run still active at 02:00: the nightly run starts anyway and waits for it
    (its orchestration polls; tests/test_orchestration.py replays that wait)."""
    monkeypatch.setenv("INGEST_SCHEDULE_MAX_WAIT_MIN", "120")
    durable = FakeDurable()
    durable.add("manual-run", "Running", input=json.dumps({"run_id": "run-20260601T050000Z-abc"}))
    with caplog.at_level(logging.INFO):
        fire(durable, dt.datetime(2026, 6, 1, 6, 0, tzinfo=UTC), monkeypatch)
    [(name, instance_id, payload)] = durable.started
    assert (name, instance_id) == ("ingest_run", "nightly-2026-06-01")
    assert payload["wait"] == {"max_wait_s": 7200, "poll_s": 300}
    assert payload["scheduled_for"] == "2026-06-01T06:00:00+00:00"
    assert "it waits for run-20260601T050000Z-abc to finish (at most 120 min)" in caplog.text


# ------------------------------------------------------------------------------ late fires


@pytest.mark.parametrize(
    ("fire_utc", "expected"),
    [
        # winter (EST): the day's start slot is 07:00 UTC
        (dt.datetime(2026, 1, 15, 5, 30), None),  # 00:30 EST: before the day's 02:00
        (dt.datetime(2026, 1, 15, 6, 0), None),  # 01:00 EST
        (dt.datetime(2026, 1, 15, 7, 0), dt.datetime(2026, 1, 15, 7, 0)),
        (dt.datetime(2026, 1, 15, 8, 30), dt.datetime(2026, 1, 15, 7, 0)),  # late, same day
        (dt.datetime(2026, 1, 16, 4, 59), dt.datetime(2026, 1, 15, 7, 0)),  # 23:59 EST
        (dt.datetime(2026, 1, 16, 5, 0), None),  # 00:00 EST the next day: that day's is due later
        # summer (EDT): 06:00 UTC
        (dt.datetime(2026, 7, 4, 6, 0), dt.datetime(2026, 7, 4, 6, 0)),
        (dt.datetime(2026, 7, 4, 7, 0), dt.datetime(2026, 7, 4, 6, 0)),  # second slot: same day
        (dt.datetime(2026, 7, 4, 5, 59), None),
        # spring forward: 03:00 EDT = 07:00 UTC; fall back: 02:00 EST = 07:00 UTC
        (dt.datetime(2026, 3, 8, 6, 0), None),
        (dt.datetime(2026, 3, 8, 9, 15), dt.datetime(2026, 3, 8, 7, 0)),
        (dt.datetime(2026, 11, 1, 6, 0), None),  # the second 01:00
        (dt.datetime(2026, 11, 1, 7, 0), dt.datetime(2026, 11, 1, 7, 0)),
    ],
)
def test_the_due_run_follows_the_new_york_day(fire_utc, expected):
    due = schedule.due_slot(fire_utc.replace(tzinfo=UTC))
    assert due == (expected.replace(tzinfo=UTC) if expected else None)
    if due is not None:
        assert schedule.should_start(due)  # always a day's start slot


def test_past_due_fire_at_0830_in_winter_starts_the_days_run_once(monkeypatch, caplog):
    """The host was down at 06:00 and 07:00 UTC; the timer's past-due fire comes at 08:30.
    Rounding that fire to its own hour (08:00, not a start slot) would skip the night."""
    late = dt.datetime(2026, 1, 15, 8, 30, tzinfo=UTC)
    assert not schedule.should_start(late)  # the old rule: skipped
    durable = FakeDurable()
    with caplog.at_level(logging.INFO):
        fire(durable, late, monkeypatch, past_due=True)
    [(_, instance_id, payload)] = durable.started
    assert instance_id == "nightly-2026-01-15" and payload["scheduled_weekday"] == "THU"
    assert payload["scheduled_for"] == "2026-01-15T07:00:00+00:00"
    assert "fired 90 min late (past due)" in caplog.text
    fire(durable, late + dt.timedelta(minutes=1), monkeypatch, past_due=True)  # again: once
    durable.set_status("nightly-2026-01-15", "Completed")
    fire(durable, late + dt.timedelta(hours=3), monkeypatch, past_due=True)
    assert [i for _, i, _ in durable.started] == ["nightly-2026-01-15"]
    # the next day runs at its own slot
    fire(durable, dt.datetime(2026, 1, 16, 7, 0, 1, tzinfo=UTC), monkeypatch)
    assert [i for _, i, _ in durable.started] == ["nightly-2026-01-15", "nightly-2026-01-16"]


def test_a_fire_after_the_new_york_day_ended_does_not_start_it(monkeypatch):
    durable = FakeDurable()
    fire(durable, dt.datetime(2026, 1, 16, 5, 30, tzinfo=UTC), monkeypatch, past_due=True)
    assert durable.started == []  # 00:30 EST on the 16th: the 15th is over, the 16th not due


def test_a_missed_first_summer_slot_is_started_by_the_second(monkeypatch):
    durable = FakeDurable()
    fire(durable, dt.datetime(2026, 7, 4, 7, 0, 2, tzinfo=UTC), monkeypatch)
    assert [i for _, i, _ in durable.started] == ["nightly-2026-07-04"]


def test_weekly_jobs_run_only_on_their_new_york_day(tmp_path, monkeypatch):
    rows = [
        job_row("001", "daily"),
        job_row("002", "weekly_wed", schedule="WEEKLY:WED"),
        job_row("003", "weekly_sun", schedule="WEEKLY:SUN"),
    ]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "w.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", (tmp_path / "lake").as_uri())
    durable = FakeDurable()
    # two weeks around the fall-back weekend (Sunday 2026-11-01)
    for slot in timer_slots(dt.date(2026, 10, 26), dt.date(2026, 11, 8)):
        fire(durable, slot, monkeypatch)
        for _name, instance_id, _ in durable.started:
            durable.set_status(instance_id, "Completed")

    def planned_jobs(payload):
        planned = activity("plan_run")(payload)
        tasks = RunStore(planned["destination"], payload["run_id"]).tasks()
        return [t.job.job_id for t in tasks]

    included = {}
    for _, instance_id, payload in durable.started:
        included[instance_id] = planned_jobs(payload)
    assert len(included) == 14
    for instance_id, jobs in included.items():
        day = dt.date.fromisoformat(instance_id.removeprefix("nightly-"))
        expected = (
            ["001"]
            + (["002"] if day.weekday() == 2 else [])
            + (["003"] if day.weekday() == 6 else [])
        )
        assert jobs == expected, instance_id
    # on-demand runs are not filtered by weekday
    assert planned_jobs({"run_id": "r"}) == [
        "001",
        "002",
        "003",
    ]
