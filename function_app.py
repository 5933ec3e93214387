"""Azure Functions app (Python v2 model, Durable Functions): a thin shell over `ingest.app`.

Triggers: POST /api/runs, GET /api/runs/{id}, GET /api/runs/{id}/report (HTML), GET /api/jobs,
timer `0 0 6,7 * * *` (UTC; the 02:00 New York rule is in ingest/app/schedule.py).
Orchestrators `ingest_run` (a run) and `ingest_batch` (one batch of its tables); activities
`plan_run`, `ingest_table`, `ingest_chunk` (a chunk of a split table), `hold_snapshot` (the
exported snapshot a split table's chunks read), `record_failure`, `write_audit`,
`find_active_runs`. Heavy
libraries (dlt, pyarrow, drivers, openpyxl, azure-monitor, matplotlib) are imported inside the
activities, never at import time (cold start).
See docs/FUNCTIONS.md.
"""

import datetime as dt

import azure.durable_functions as df
import azure.functions as func

from ingest.app import activities, batch_orchestration, http_api, orchestration, schedule

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="runs", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_run(req: func.HttpRequest, client) -> func.HttpResponse:
    return await http_api.start_run(req, client)


@app.route(route="runs/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def get_run(req: func.HttpRequest, client) -> func.HttpResponse:
    return await http_api.get_run(req, client)


@app.route(route="runs/{id}/report", methods=["GET"])
def get_run_report(req: func.HttpRequest) -> func.HttpResponse:
    return http_api.get_run_report(req)


@app.route(route="jobs", methods=["GET"])
def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    return http_api.list_jobs(req)


@app.timer_trigger(schedule=schedule.TIMER_SCHEDULE, arg_name="timer", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def nightly_timer(timer: func.TimerRequest, client) -> None:
    await http_api.on_timer(client, dt.datetime.now(dt.UTC), past_due=timer.past_due)


@app.orchestration_trigger(context_name="context")
def ingest_run(context: df.DurableOrchestrationContext):
    return (yield from orchestration.ingest_run(context))


@app.orchestration_trigger(context_name="context")
def ingest_batch(context: df.DurableOrchestrationContext):
    return (yield from batch_orchestration.ingest_batch(context))


@app.activity_trigger(input_name="request")
def plan_run(request: dict) -> dict:
    return activities.plan_run(request)


@app.activity_trigger(input_name="reference")
def ingest_table(reference: dict) -> dict:
    return activities.ingest_table(reference)


@app.activity_trigger(input_name="reference")
def ingest_chunk(reference: dict) -> dict:
    return activities.ingest_chunk(reference)


@app.activity_trigger(input_name="reference")
def hold_snapshot(reference: dict) -> dict:
    return activities.hold_snapshot(reference)


@app.activity_trigger(input_name="request")
def record_failure(request: dict) -> dict:
    return activities.record_failure(request)


@app.activity_trigger(input_name="run")
def write_audit(run: dict) -> dict:
    return activities.write_audit(run)


@app.activity_trigger(input_name="request")
@app.durable_client_input(client_name="client")
async def find_active_runs(request: dict, client) -> list:
    return await activities.find_active_runs(request, client)
