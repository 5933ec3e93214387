"""Test doubles for Durable Functions without a Functions host.

- `ReplayHost` plays the Durable extension's part for one orchestration instance: it calls the
  orchestrator's REAL replay handle (`function_app.ingest_run.build().get_user_function()`)
  with the growing history JSON, turns new actions into TaskScheduled events, and lets a test
  deliver TaskCompleted / TaskFailed events (in any order), including the retry timers that
  `call_activity_with_retry` needs (TaskFailed -> TimerCreated/TimerFired -> TaskScheduled).
  Every episode checks the determinism rule the extension enforces: the actions of a replay
  start with exactly the actions of the previous episode.
- `FakeDurable` is the Durable extension's HTTP management API in memory; `client()` returns a
  REAL `DurableOrchestrationClient` whose transport talks to it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

ORCH_STARTED, ORCH_COMPLETED = 12, 13
EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 0, 4, 5, 6
TIMER_CREATED, TIMER_FIRED = 10, 11
ATOMIC_ACTIONS = {0: "CallActivity", 1: "CallActivityWithRetry"}


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
    ):
        self.handle = handle
        self.input = input_
        self.instance_id = instance_id
        self.schema_version = schema_version
        self.history: list[dict[str, Any]] = []
        self.clock = dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC)
        self.next_id = 0
        self.known_actions: list[dict[str, Any]] = []
        #: id -> {"name", "input", "retry", "attempt", "job"} for scheduled, unfinished activities
        self.open: dict[int, dict[str, Any]] = {}
        #: timer id -> the activity record waiting for its retry
        self.timers: dict[int, dict[str, Any]] = {}
        self.state: dict[str, Any] = {}
        self.raw_state: str = ""
        self.error: str | None = None
        self.max_tables_in_flight = 0
        self.scheduled_log: list[dict[str, Any]] = []

    # -------------------------------------------------------------------------- events
    def _event(self, event_type: int, event_id: int = -1, **extra: Any) -> dict[str, Any]:
        return {
            "EventType": event_type,
            "EventId": event_id,
            "IsPlayed": False,
            "Timestamp": self.clock.isoformat(),
            **extra,
        }

    def context_json(self) -> str:
        return json.dumps(
            {
                "history": self.history,
                "instanceId": self.instance_id,
                "isReplaying": False,
                "parentInstanceId": None,
                "input": self.input,
                "upperSchemaVersion": self.schema_version,
            }
        )

    def invoke(self) -> dict[str, Any]:
        """Run the orchestrator once over the current history (no bookkeeping)."""
        try:
            self.raw_state = self.handle(self.context_json())
            self.error = None
        except Exception as exc:  # the SDK raises for an orchestrator exception
            text = str(exc)
            marker = "$OutOfProcData$:"
            self.error = text.split("\n\n" + marker)[0]
            self.raw_state = text.split(marker, 1)[1] if marker in text else "{}"
        return json.loads(self.raw_state)

    def _episode(self, new_events: list[dict[str, Any]]) -> dict[str, Any]:
        for event in self.history:
            event["IsPlayed"] = True
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
            if action["actionType"] not in ATOMIC_ACTIONS:
                raise AssertionError(f"unexpected action {action}")
            self._schedule(
                {
                    "name": action["functionName"],
                    "input": action.get("input"),
                    "retry": action.get("retryOptions"),
                    "attempt": 1,
                    "action": action,
                }
            )
        self.known_actions = actions
        self.history.append(self._event(ORCH_COMPLETED))
        self.state = state
        return state

    def _schedule(self, record: dict[str, Any]) -> int:
        task_id = self.next_id
        self.next_id += 1
        self.open[task_id] = record
        self.history.append(
            self._event(TASK_SCHEDULED, task_id, Name=record["name"], Input=record["input"])
        )
        self.scheduled_log.append({"id": task_id, **record})
        self.max_tables_in_flight = max(self.max_tables_in_flight, self.tables_in_flight())
        return task_id

    # -------------------------------------------------------------------------- driving
    def start(self) -> dict[str, Any]:
        """The first episode: OrchestratorStarted + ExecutionStarted."""
        self.history = []
        started = self._event(
            EXECUTION_STARTED, Name="ingest_run", Input=json.dumps(self.input), Version=""
        )
        return self._episode([started])

    def pending(self, name: str | None = None) -> list[int]:
        return [i for i, r in self.open.items() if name is None or r["name"] == name]

    def input_of(self, task_id: int) -> Any:
        return json.loads(self.open[task_id]["input"])

    def tables_in_flight(self) -> int:
        tables = [r for r in self.open.values() if r["name"] == "ingest_table"]
        waiting = [r for r in self.timers.values() if r["name"] == "ingest_table"]
        return len(tables) + len(waiting)

    def complete(self, *results: tuple[int, Any]) -> dict[str, Any]:
        """Deliver TaskCompleted for one or more tasks in one episode, in the given order."""
        events = []
        for task_id, result in results:
            self.open.pop(task_id)
            events.append(
                self._event(TASK_COMPLETED, TaskScheduledId=task_id, Result=json.dumps(result))
            )
        return self._episode(events)

    def fail(self, task_id: int, reason: str, details: str = "Traceback ...") -> dict[str, Any]:
        """Deliver TaskFailed (alone in its episode). A task with retry options gets its retry
        timer (as the extension does), fired by `fire_timers`."""
        record = self.open.pop(task_id)
        event = self._event(TASK_FAILED, TaskScheduledId=task_id, Reason=reason, Details=details)
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
        """Fire every pending retry timer, one episode each; retries are rescheduled."""
        state = self.state
        for timer_id in sorted(self.timers):
            record = self.timers.pop(timer_id)
            event = self._event(TIMER_FIRED, TimerId=timer_id, FireAt=self.clock.isoformat())
            if record["attempt"] < record["retry"]["maxNumberOfAttempts"]:
                state = self._episode([event])
                again = {**record, "attempt": record["attempt"] + 1}
                self.history.pop()  # OrchestratorCompleted goes after the new TaskScheduled
                self._schedule(again)
                self.history.append(self._event(ORCH_COMPLETED))
            else:
                state = self._episode([event])
        return state

    @property
    def custom_status(self) -> Any:
        return self.state.get("customStatus")


class FakeDurable:
    """The extension's management API in memory, behind a real DurableOrchestrationClient."""

    RPC = "http://127.0.0.1:17071/durabletask/"

    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.started: list[tuple[str, str, Any]] = []
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
        self.queries.append(url)
        parsed = urllib.parse.urlparse(url)
        path = parsed.path.split("/durabletask/", 1)[1]
        assert path.startswith("instances/"), url
        instance_id = urllib.parse.unquote(path[len("instances/") :])
        if instance_id:
            found = self.instances.get(instance_id)
            return [200, dict(found)] if found else [404, ""]
        params = urllib.parse.parse_qs(parsed.query)
        wanted = set(",".join(params.get("runtimeStatus", [])).split(",")) - {""}
        rows = [
            dict(i) for i in self.instances.values() if not wanted or i["runtimeStatus"] in wanted
        ]
        return [200, rows]

    async def _post(self, url: str, data: Any = None, *args: Any, **kwargs: Any) -> list[Any]:
        path = urllib.parse.urlparse(url).path.split("/durabletask/", 1)[1]
        assert path.startswith("orchestrators/"), url
        name, _, instance_id = path[len("orchestrators/") :].partition("/")
        payload = json.loads(data) if data else None
        self.started.append((name, instance_id, payload))
        self.add(instance_id, "Pending", name=name, input=payload)
        return [202, {"id": instance_id}]
