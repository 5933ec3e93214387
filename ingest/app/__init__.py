"""The Azure Functions adapter: the logic behind `function_app.py`, testable without the host.

- `schedule`: the DST-safe 02:00 America/New_York decision for the UTC timer.
- `orchestration`: the Durable orchestrator of a run (plan -> batches -> audit).
- `batch_orchestration`: the sub-orchestrator of one batch (a sliding window of tables).
- `batching`: how a run is split into batches and lanes.
- `activities`: the activity bodies (plan_run, ingest_table, ingest_chunk, hold_snapshot,
  record_failure, write_audit, find_active_runs).
- `http_api`: the HTTP starters and the timer starter; `run_status`: GET /api/runs/{id}.

Importing this package is cheap: Azure Functions / Durable libraries are imported inside the
functions that need them, the engine's heavy dependencies (dlt, pyarrow, drivers) only inside
the activities.
"""

#: the orchestrator's function name (also the `name` filter of the one-run-at-a-time check)
ORCHESTRATOR = "ingest_run"
#: the sub-orchestrator of one batch of tables
ORCHESTRATOR_BATCH = "ingest_batch"
ACTIVITY_PLAN = "plan_run"
ACTIVITY_TABLE = "ingest_table"
#: one chunk of a split table (ingest.job.split)
ACTIVITY_CHUNK = "ingest_chunk"
#: holds the exported snapshot the chunks of a split table read (ingest.job.split_snapshot)
ACTIVITY_HOLD = "hold_snapshot"
ACTIVITY_FAILURE = "record_failure"
ACTIVITY_AUDIT = "write_audit"
ACTIVITY_ACTIVE_RUNS = "find_active_runs"
#: the fixed Durable instance id of on-demand runs (Durable's singleton pattern: a second
#: start while it is Pending/Running/Suspended is refused with 409)
MANUAL_INSTANCE = "manual-run"
