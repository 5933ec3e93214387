"""The Azure Functions adapter: the logic behind `function_app.py`, testable without the host.

- `schedule`: the DST-safe 02:00 America/New_York decision for the UTC timer.
- `orchestration`: the Durable orchestrator (plan -> sliding window of tables -> audit).
- `activities`: the activity bodies (plan_run, ingest_table, write_audit).
- `http_api`: the HTTP starters and status endpoints, and the timer starter.

Importing this package is cheap: Azure Functions / Durable libraries are imported inside the
functions that need them, the engine's heavy dependencies (dlt, pyarrow, drivers) only inside
the activities.
"""

#: the orchestrator's function name (also the `name` filter of the one-run-at-a-time check)
ORCHESTRATOR = "ingest_run"
ACTIVITY_PLAN = "plan_run"
ACTIVITY_TABLE = "ingest_table"
ACTIVITY_AUDIT = "write_audit"
