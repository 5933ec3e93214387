"""Test doubles for Durable Functions without a Functions host.

- `ReplayHost` plays the Durable extension's part for one orchestration instance: it calls the
  orchestrator's REAL replay handle (`function_app.ingest_run.build().get_user_function()`)
  with the growing history JSON, turns new actions into history events (TaskScheduled,
  SubOrchestrationInstanceCreated, TimerCreated), and lets a test deliver completions and
  failures (in any order), including the retry timers that the `*_with_retry` calls need
  (failure -> TimerCreated/TimerFired -> scheduled again). Every episode checks the determinism
  rule the extension enforces: the actions of a replay start with exactly the actions of the
  previous episode.
- `DurableSim` plays the extension for a whole run: a parent orchestration, the
  sub-orchestrations it creates (each its own `ReplayHost` and history), activities executed by
  a callable, timers fired when nothing else can progress. It measures what the issue's
  benchmark needs: CPU of the SDK's replays, events and bytes per history, payload sizes.
- `FakeDurable` is the Durable extension's HTTP management API in memory; `client()` returns a
  REAL `DurableOrchestrationClient` whose transport talks to it. Starting an instance with the
  id of a Pending/Running/Suspended instance answers 409, as the extension does with its
  default `overridableExistingInstanceStates` (`NonRunningStates`); see `_post`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 0, 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED = 7, 8, 9
TIMER_CREATED, TIMER_FIRED = 10, 11
ORCH_STARTED, ORCH_COMPLETED = 12, 13
#: actionType -> kind of the scheduled work
ACTION_KINDS = {0: "activity", 1: "activity", 2: "sub", 3: "sub", 5: "timer"}
#: kind -> (scheduled event, completed event, failed event)
KIND_EVENTS = {
    "activity": (TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED),
    "sub": (SUB_CREATED, SUB_COMPLETED, SUB_FAILED),
}
#: what the extension refuses to overwrite by default (overridableExistingInstanceStates)
NON_TERMINAL = ("Pending", "Running", "Suspended")


def flatten(actions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(action: dict[str, Any]) -> None:
        if "compoundActions" in action:
            for child in action["compoundActions"]:
                walk(child)
        else:
            out.append(action)

    for group in actions:
        for action in group:
            walk(action)
    return out


class NonDeterminism(AssertionError):
    pass


class ReplayHost:
    def __init__(
        self,
        handle: Callable[[str], str],
        input_: Any,
        instance_id: str = "run-test",
        schema_version: int = 2,
        name: str = "ingest_run",
        parent_instance_id: str | None = None,
        clock: dt.datetime | None = None,
    ):
        self.handle = handle
        self.input = input_
        self.instance_id = instance_id
        self.schema_version = schema_version
        self.name = name
        self.parent_instance_id = parent_instance_id
        self.history: list[dict[str, Any]] = []
        #: JSON of the events already played (they never change again): replays re-send them
        self._played_json: list[str] = []
        self.clock = clock or dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC)
        self.next_id = 0
        self.known_actions: list[dict[str, Any]] = []
        #: id -> {"name", "input", "retry", "attempt", "kind", "action"} for unfinished work
        self.open: dict[int, dict[str, Any]] = {}
        #: timer id -> the activity/sub-orchestration record waiting for its retry
        self.timers: dict[int, dict[str, Any]] = {}
        #: timer id -> fire time, for timers the orchestrator created itself
        self.user_timers: dict[int, dt.datetime] = {}
        self.state: dict[str, Any] = {}
        self.raw_state: str = ""
        self.error: str | None = None
        self.max_tables_in_flight = 0
        self.scheduled_log: list[dict[str, Any]] = []
        #: CPU seconds spent inside the SDK's replay handle, how many times it ran, and how many
        #: history events it was handed in all (the replay work, free of timing noise)
        self.cpu_s = 0.0
        self.episodes = 0
        self.events_replayed = 0

    # -------------------------------------------------------------------------- events
    def _event(self, event_type: int, event_id: int = -1, **extra: Any) -> dict[str, Any]:
        return {
            "EventType": event_type,
            "EventId": event_id,
            "IsPlayed": False,
            "Timestamp": self.clock.isoformat(),
            **extra,
        }

    def _history_json(self) -> str:
        played = len(self._played_json)
        fresh = [json.dumps(event) for event in self.history[played:]]
        return "[" + ",".join(self._played_json + fresh) + "]"

    def context_json(self) -> str:
        head = json.dumps(
            {
                "instanceId": self.instance_id,
                "isReplaying": False,
                "parentInstanceId": self.parent_instance_id,
                "input": self.input,
                "upperSchemaVersion": self.schema_version,
            }
        )
        return '{"history": ' + self._history_json() + ", " + head[1:]

    def history_bytes(self) -> int:
        return len(self._history_json())

    def invoke(self) -> dict[str, Any]:
        """Run the orchestrator once over the current history (no bookkeeping)."""
        context = self.context_json()
        started = time.process_time()
        try:
            self.raw_state = self.handle(context)
            self.error = None
        except Exception as exc:  # the SDK raises for an orchestrator exception
            text = str(exc)
            marker = "$OutOfProcData$:"
            self.error = text.split("\n\n" + marker)[0]
            self.raw_state = text.split(marker, 1)[1] if marker in text else "{}"
        finally:
            self.cpu_s += time.process_time() - started
            self.episodes += 1
            self.events_replayed += len(self.history)
        return json.loads(self.raw_state)

    def _mark_played(self) -> None:
        for event in self.history[len(self._played_json) :]:
            event["IsPlayed"] = True
            self._played_json.append(json.dumps(event))

    def _episode(self, new_events: list[dict[str, Any]]) -> dict[str, Any]:
        self._mark_played()
        self.clock += dt.timedelta(seconds=1)
        self.history.append(self._event(ORCH_STARTED))
        self.history.extend(new_events)
        state = self.invoke()
        actions = flatten(state.get("actions") or [])
        previous = self.known_actions
        if actions[: len(previous)] != previous:
            raise NonDeterminism(
                f"replay produced different actions:\nbefore {previous}\nnow    {actions}"
            )
        for action in actions[len(previous) :]:
            kind = ACTION_KINDS.get(action["actionType"])
            if kind is None:
                raise AssertionError(f"unexpected action {action}")
            if kind == "timer":
                self._create_timer(action)
                continue
            self._schedule(
                {
                    "name": action["functionName"],
                    "input": action.get("input"),
                    "retry": action.get("retryOptions"),
                    "attempt": 1,
                    "kind": kind,
                    "instance_id": action.get("instanceId"),
                    "action": action,
                }
            )
        self.known_actions = actions
        self.history.append(self._event(ORCH_COMPLETED))
        self.state = state
        return state

    def _create_timer(self, action: dict[str, Any]) -> None:
        timer_id = self.next_id
        self.next_id += 1
        fire_at = dt.datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
        self.user_timers[timer_id] = fire_at
        self.history.append(self._event(TIMER_CREATED, timer_id, FireAt=action["fireAt"]))

    def _schedule(self, record: dict[str, Any]) -> int:
        task_id = self.next_id
        self.next_id += 1
        self.open[task_id] = record
        scheduled, _, _ = KIND_EVENTS[record["kind"]]
        extra = {"Name": record["name"], "Input": record["input"]}
        if record["kind"] == "sub":
            extra["InstanceId"] = record["instance_id"] or f"{self.instance_id}:{task_id}"
        self.history.append(self._event(scheduled, task_id, **extra))
        self.scheduled_log.append({"id": task_id, **record})
        self.max_tables_in_flight = max(self.max_tables_in_flight, self.tables_in_flight())
        return task_id

    # -------------------------------------------------------------------------- driving
    def start(self) -> dict[str, Any]:
        """The first episode: OrchestratorStarted + ExecutionStarted."""
        self.history = []
        self._played_json = []
        extra: dict[str, Any] = {"Name": self.name, "Input": json.dumps(self.input), "Version": ""}
        if self.parent_instance_id:
            extra["ParentInstance"] = {
                "OrchestrationInstance": {"InstanceId": self.parent_instance_id}
            }
        return self._episode([self._event(EXECUTION_STARTED, **extra)])

    def pending(self, name: str | None = None) -> list[int]:
        return [i for i, r in self.open.items() if name is None or r["name"] == name]

    def input_of(self, task_id: int) -> Any:
        return json.loads(self.open[task_id]["input"])

    def sub_instance_id(self, task_id: int) -> str:
        return self.open[task_id]["instance_id"] or f"{self.instance_id}:{task_id}"

    def tables_in_flight(self) -> int:
        """Table and chunk activities (`ingest_table`, `ingest_chunk`) running or waiting to
        be retried: what the batch window bounds."""
        names = ("ingest_table", "ingest_chunk")
        tables = [r for r in self.open.values() if r["name"] in names]
        waiting = [r for r in self.timers.values() if r["name"] in names]
        return len(tables) + len(waiting)

    def complete(self, *results: tuple[int, Any]) -> dict[str, Any]:
        """Deliver completions (TaskCompleted / SubOrchestrationInstanceCompleted) for one or
        more tasks in one episode, in the given order."""
        events = []
        for task_id, result in results:
            record = self.open.pop(task_id)
            _, completed, _ = KIND_EVENTS[record["kind"]]
            events.append(
                self._event(completed, TaskScheduledId=task_id, Result=json.dumps(result))
            )
        return self._episode(events)

    def fail(self, task_id: int, reason: str, details: str = "Traceback ...") -> dict[str, Any]:
        """Deliver TaskFailed / SubOrchestrationInstanceFailed (alone in its episode). A task
        with retry options gets its retry timer (as the extension does), fired by `fire_timers`."""
        record = self.open.pop(task_id)
        _, _, failed = KIND_EVENTS[record["kind"]]
        event = self._event(failed, TaskScheduledId=task_id, Reason=reason, Details=details)
        if record["retry"]:
            timer_id = self.next_id  # the SDK numbers the retry timer when it sees the failure
            self.next_id += 1
            state = self._episode([event])
            self.history.insert(
                len(self.history) - 1,
                self._event(TIMER_CREATED, timer_id, FireAt=self.clock.isoformat()),
            )
            self.timers[timer_id] = record
            return state
        return self._episode([event])

    def fire_timers(self) -> dict[str, Any]:
        """Fire every pending timer, one episode each: retry timers (retries are rescheduled)
        and the orchestrator's own timers (the clock moves to their fire time)."""
        state = self.state
        for timer_id in sorted(self.timers):
            record = self.timers.pop(timer_id)
            event = self._event(TIMER_FIRED, TimerId=timer_id, FireAt=self.clock.isoformat())
            if record["attempt"] < record["retry"]["maxNumberOfAttempts"]:
                state = self._episode([event])
                again = {**record, "attempt": record["attempt"] + 1}
                self.history.pop()  # OrchestratorCompleted goes after the new scheduling event
                self._schedule(again)
                self.history.append(self._event(ORCH_COMPLETED))
            else:
                state = self._episode([event])
        for timer_id in sorted(self.user_timers):
            fire_at = self.user_timers.pop(timer_id)
            self.clock = max(self.clock, fire_at)
            event = self._event(TIMER_FIRED, TimerId=timer_id, FireAt=fire_at.isoformat())
            state = self._episode([event])
        return state

    @property
    def has_timers(self) -> bool:
        return bool(self.timers or self.user_timers)

    @property
    def done(self) -> bool:
        return bool(self.state.get("isDone")) or self.error is not None

    @property
    def custom_status(self) -> Any:
        return self.state.get("customStatus")


# ------------------------------------------------------------------------------ whole runs


class Deferred:
    """What `run_activity` returns for an activity that goes on while others run (a process of
    its own, e.g. `hold_snapshot`): the sim delivers its outcome once `ready()`; `outcome()`
    returns its result or raises `ActivityFailure`."""

    def __init__(self, ready: Callable[[], bool], outcome: Callable[[], Any]) -> None:
        self.ready = ready
        self.outcome = outcome


class Stuck(AssertionError):
    """Only deferred activities are left and none ends: the orchestration waits for an
    activity that waits for something it schedules only afterwards (a deadlock)."""


class ActivityFailure(Exception):
    """Raised by a DurableSim activity callable: the activity failed with this text, as the
    host reports it (`Activity function '<name>' failed: <text>`)."""


@dataclass
class ActivityCall:
    name: str
    input: Any
    instance_id: str
    task_id: int
    attempt: int


@dataclass
class SimStats:
    cpu_s: float = 0.0
    episodes: int = 0
    events_replayed: int = 0
    orchestrations: int = 0
    #: the largest history: (events, bytes, instance id)
    largest_history: tuple[int, int, str] = (0, 0, "")
    #: the largest payload: (bytes, what)
    largest_payload: tuple[int, str] = (0, "")
    payload_sizes: dict[str, int] = field(default_factory=dict)

    def payload(self, what: str, text: str | None) -> None:
        size = len(text or "")
        key = what.split(" ")[0]
        self.payload_sizes[key] = max(self.payload_sizes.get(key, 0), size)
        if size > self.largest_payload[0]:
            self.largest_payload = (size, what)


class DurableSim:
    """Plays the Durable extension for one run: the parent orchestration, every
    sub-orchestration it creates (each with its own history, as Durable keeps them), the
    activities (run by `run_activity(call) -> result`, raising `ActivityFailure` to fail), and
    timers (fired when nothing else can progress). One completion per episode, the worst case
    for replays (the extension may batch completions that arrive together)."""

    def __init__(
        self,
        orchestrators: Mapping[str, Callable[[str], str]],
        run_activity: Callable[[ActivityCall], Any],
        order: str = "fifo",
        seed: int = 0,
        crash: Callable[[ReplayHost], str | None] | None = None,
        keep_histories: bool = True,
        deferred_wait_s: float = 300.0,
    ):
        """`crash(host)`, asked after every episode of a sub-orchestration: a text makes that
        execution fail there (as a crashed orchestrator does), its unfinished work dropped.
        `keep_histories=False` drops a finished orchestration's history once measured (a
        benchmark: the extension does not keep other instances' histories in the worker
        either, and a big heap would make the garbage collector bill its work to replays)."""
        self.crash = crash
        self.keep_histories = keep_histories
        self.orchestrators = dict(orchestrators)
        self.run_activity = run_activity
        self.order = order
        self.rng = random.Random(seed)
        self.hosts: dict[str, ReplayHost] = {}
        self.all_hosts: list[ReplayHost] = []
        #: child instance id -> (parent host, task id in the parent)
        self.parents: dict[str, tuple[ReplayHost, int]] = {}
        self.launched: set[tuple[str, int]] = set()
        self.stats = SimStats()
        self.max_tables_in_flight = 0
        self.activity_log: list[ActivityCall] = []
        #: (instance id, task id) -> an activity running on its own (`Deferred`)
        self.deferred: dict[tuple[str, int], Deferred] = {}
        #: how long the sim waits for a deferred activity when nothing else can run
        self.deferred_wait_s = deferred_wait_s

    # -------------------------------------------------------------------------- instances
    def start(self, name: str, instance_id: str, input_: Any) -> ReplayHost:
        return self._start(name, instance_id, input_, None)

    def _start(
        self, name: str, instance_id: str, input_: Any, parent: ReplayHost | None
    ) -> ReplayHost:
        host = ReplayHost(
            self.orchestrators[name],
            input_,
            instance_id=instance_id,
            name=name,
            parent_instance_id=parent.instance_id if parent else None,
            clock=parent.clock if parent else None,
        )
        self.hosts[instance_id] = host
        self.all_hosts.append(host)
        self.stats.orchestrations += 1
        self.stats.payload(f"input of {instance_id}", json.dumps(input_))
        self._after(host, host.start())
        return host

    def _after(self, host: ReplayHost, state: dict[str, Any]) -> None:
        """Bookkeeping after an episode of `host`: payloads, sub-orchestrations to create,
        completion to report to the parent."""
        if state.get("customStatus") is not None:
            self.stats.payload(
                f"custom status of {host.instance_id}", json.dumps(state["customStatus"])
            )
        for task_id, record in list(host.open.items()):
            key = (host.instance_id, task_id)
            if key in self.launched:
                continue
            self.launched.add(key)
            self.stats.payload(f"{record['name']} input", record["input"])
            if record["kind"] == "sub":
                child_id = host.sub_instance_id(task_id)
                self.parents[child_id] = (host, task_id)
                self._start(record["name"], child_id, json.loads(record["input"]), host)
        self.max_tables_in_flight = max(self.max_tables_in_flight, self.tables_in_flight())
        if self.crash and not host.done and host.instance_id in self.parents:
            reason = self.crash(host)
            if reason:
                host.error = reason
                host.open.clear()
                host.timers.clear()
                host.user_timers.clear()
        if host.done:
            self._finished(host)

    def _finished(self, host: ReplayHost) -> None:
        events, size = len(host.history), host.history_bytes()
        if size > self.stats.largest_history[1]:
            self.stats.largest_history = (events, size, host.instance_id)
        if host.error is None:
            self.stats.payload(f"output of {host.instance_id}", json.dumps(host.state["output"]))
        if not self.keep_histories:
            host.history, host._played_json, host.known_actions = [], [], []
        parent = self.parents.pop(host.instance_id, None)
        if parent is None:
            return
        parent_host, task_id = parent
        if host.error is None:
            state = parent_host.complete((task_id, host.state["output"]))
        else:
            state = parent_host.fail(
                task_id,
                f"Orchestrator function '{host.name}' failed: {host.error}",
                "Traceback (most recent call last): ...",
            )
        self._after(parent_host, state)

    # -------------------------------------------------------------------------- driving
    def open_activities(self) -> list[tuple[ReplayHost, int]]:
        return [
            (host, task_id)
            for host in self.hosts.values()
            if not host.done
            for task_id, record in host.open.items()
            if record["kind"] == "activity" and (host.instance_id, task_id) not in self.deferred
        ]

    def _deliver(self, host: ReplayHost, task_id: int, name: str, run: Callable[[], Any]) -> None:
        try:
            result = run()
        except ActivityFailure as exc:
            state = host.fail(
                task_id,
                f"Activity function '{name}' failed: {exc}",
                "Traceback (most recent call last): ...",
            )
        else:
            text = json.dumps(result)
            self.stats.payload(f"{name} output", text)
            state = host.complete((task_id, result))
        self._after(host, state)

    def _deliver_ready(self) -> bool:
        for key, deferred in list(self.deferred.items()):
            if deferred.ready():
                del self.deferred[key]
                host = self.hosts[key[0]]
                name = host.open[key[1]]["name"]
                self._deliver(host, key[1], name, deferred.outcome)
                return True
        return False

    def tables_in_flight(self) -> int:
        return sum(h.tables_in_flight() for h in self.hosts.values() if not h.done)

    def step(self) -> bool:
        """One unit of work: run one activity and deliver its outcome, or fire the timers of
        every waiting orchestration. False when nothing is left to do."""
        if self._deliver_ready():
            return True
        work = self.open_activities()
        if work:
            host, task_id = work[0] if self.order == "fifo" else self.rng.choice(work)
            record = host.open[task_id]
            call = ActivityCall(
                record["name"],
                json.loads(record["input"]) if record["input"] else None,
                host.instance_id,
                task_id,
                record["attempt"],
            )
            self.activity_log.append(call)
            outcome: list[Any] = []
            try:
                outcome.append(self.run_activity(call))
            except ActivityFailure as exc:
                failure = exc

                def run() -> Any:
                    raise failure

            else:
                if isinstance(outcome[0], Deferred):  # it runs on; delivered when it ends
                    self.deferred[(host.instance_id, task_id)] = outcome[0]
                    return True

                def run() -> Any:
                    return outcome[0]

            self._deliver(host, task_id, record["name"], run)
            return True
        waiting = [h for h in self.hosts.values() if not h.done and h.has_timers]
        for host in waiting:
            self._after(host, host.fire_timers())
        if waiting or not self.deferred:
            return bool(waiting)
        deadline = time.monotonic() + self.deferred_wait_s
        while not self._deliver_ready():  # nothing else can run: wait for one to end
            if time.monotonic() > deadline:
                raise Stuck(f"{len(self.deferred)} deferred activities never ended")
            time.sleep(0.05)
        return True

    def run(self, max_steps: int = 1_000_000) -> SimStats:
        for _ in range(max_steps):
            if not self.step():
                break
        else:  # pragma: no cover - a runaway simulation
            raise AssertionError(f"simulation did not finish in {max_steps} steps")
        self.stats.cpu_s = sum(h.cpu_s for h in self.all_hosts)
        self.stats.episodes = sum(h.episodes for h in self.all_hosts)
        self.stats.events_replayed = sum(h.events_replayed for h in self.all_hosts)
        for host in self.hosts.values():
            if not host.done:  # stuck (waiting forever): still measure its history
                events, size = len(host.history), host.history_bytes()
                if size > self.stats.largest_history[1]:
                    self.stats.largest_history = (events, size, host.instance_id)
        return self.stats


# ------------------------------------------------------------------------------ management API


class FakeDurable:
    """The extension's management API in memory, behind a real DurableOrchestrationClient.

    Models the documented behaviour the app relies on: `start_new` with the id of an instance
    that is Pending, Running or Suspended fails with 409 Conflict
    (`OrchestrationAlreadyExistsException`, `overridableExistingInstanceStates` =
    `NonRunningStates`, the default); with the id of a Completed/Failed/Terminated instance it
    replaces that instance. Requests are handled one at a time, in arrival order.
    """

    RPC = "http://127.0.0.1:17071/durabletask/"

    def __init__(self, interleave: bool = False, racing_starts_accepted: bool = False) -> None:
        """`interleave`: every request yields to the event loop first, so requests awaited
        together (asyncio.gather) interleave as concurrent HTTP calls do.
        `racing_starts_accepted`: model the race Microsoft documents for the Azure Storage
        provider: a start for an instance that is still Pending (created a moment ago, not yet
        running) is accepted too, but only the first instance runs (its input stays)."""
        self.interleave = interleave
        self.racing_starts_accepted = racing_starts_accepted
        self.instances: dict[str, dict[str, Any]] = {}
        self.started: list[tuple[str, str, Any]] = []
        self.accepted_not_started: list[tuple[str, str, Any]] = []
        self.refused: list[tuple[str, str, Any]] = []
        self.queries: list[str] = []

    def add(self, instance_id: str, status: str, name: str = "ingest_run", **extra: Any) -> None:
        now = dt.datetime(2026, 5, 1, 6, 0, tzinfo=dt.UTC).isoformat()
        self.instances[instance_id] = {
            "name": name,
            "instanceId": instance_id,
            "runtimeStatus": status,
            "createdTime": now,
            "lastUpdatedTime": now,
            "input": None,
            "output": None,
            "customStatus": None,
            **extra,
        }

    def set_status(self, instance_id: str, status: str) -> None:
        self.instances[instance_id]["runtimeStatus"] = status

    def client(self) -> Any:
        from azure.durable_functions import DurableOrchestrationClient

        base = "http://localhost:7071/runtime/webhooks/durabletask/instances/INSTANCEID"
        query = "?taskHub=IngestHub&connection=Storage&code=SECRETKEY"
        binding = {
            "taskHubName": "IngestHub",
            "creationUrls": {},
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": base + query,
                "sendEventPostUri": base + "/raiseEvent/{eventName}" + query,
                "terminatePostUri": base + "/terminate?reason={text}&" + query[1:],
                "rewindPostUri": base + "/rewind?reason={text}&" + query[1:],
                "purgeHistoryDeleteUri": base + query,
                "restartPostUri": base + "/restart" + query,
                "suspendPostUri": base + "/suspend?reason={text}&" + query[1:],
                "resumePostUri": base + "/resume?reason={text}&" + query[1:],
            },
            "rpcBaseUrl": self.RPC,
        }
        client = DurableOrchestrationClient(json.dumps(binding))
        client._get_async_request = self._get
        client._post_async_request = self._post
        return client

    async def _get(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        if self.interleave:
            await asyncio.sleep(0)
        self.queries.append(url)
        parsed = urllib.parse.urlparse(url)
        path = parsed.path.split("/durabletask/", 1)[1]
        assert path.startswith("instances/"), url
        instance_id = urllib.parse.unquote(path[len("instances/") :])
        params = urllib.parse.parse_qs(parsed.query)
        show_input = params.get("showInput", ["false"])[0].lower() == "true"
        if instance_id:
            found = self.instances.get(instance_id)
            if not found:
                return [404, ""]
            row = dict(found)
            if not show_input:
                row["input"] = None
            return [200, row]
        wanted = set(",".join(params.get("runtimeStatus", [])).split(",")) - {""}
        rows = [
            dict(i) for i in self.instances.values() if not wanted or i["runtimeStatus"] in wanted
        ]
        return [200, rows]

    async def _post(self, url: str, data: Any = None, *args: Any, **kwargs: Any) -> list[Any]:
        if self.interleave:
            await asyncio.sleep(0)
        self.queries.append(url)
        path = urllib.parse.urlparse(url).path.split("/durabletask/", 1)[1]
        assert path.startswith("orchestrators/"), url
        name, _, instance_id = path[len("orchestrators/") :].partition("/")
        instance_id = urllib.parse.unquote(instance_id)
        payload = json.loads(data) if data else None
        existing = self.instances.get(instance_id)
        if existing and existing["runtimeStatus"] == "Pending" and self.racing_starts_accepted:
            self.accepted_not_started.append((name, instance_id, payload))
            return [202, {"id": instance_id}]
        if existing and existing["runtimeStatus"] in NON_TERMINAL:
            self.refused.append((name, instance_id, payload))
            status = existing["runtimeStatus"]
            return [
                409,
                {"Message": f"An Orchestration instance with the status {status} already exists."},
            ]
        self.started.append((name, instance_id, payload))
        self.add(instance_id, "Pending", name=name, input=payload)
        return [202, {"id": instance_id}]
