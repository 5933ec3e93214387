"""The ingestion engine: configuration -> plan -> one dlt pipeline per job -> audit.

Layers, each importing only those below it (tests/test_architecture.py checks there is no
import cycle):

- entry points: `cli` and `commands/` (the local command line), `app/` (what the Azure
  Functions app calls). They import the engine inside the functions that run it, so that
  importing `function_app` or starting the CLI stays light (cold start).
- the three steps: `plan` (step 1), `job/` (step 2: `run_job`), `audit` (step 3), with
  `runner` (the local process pool) and `telemetry`;
- what a job uses: `checks/` (reconciliation, schema drift, backfill), `sources/` (a builder
  per source type), `lake/` (where the lake is, its completed loads, leases, the task ledger,
  atomic updates, Delta, the Parquet writer), `secrets/` (resolver, Key Vault, redaction),
  `views/` (the lake read as tables), `reports/` (catalog, history);
- shared values: `config/` (the validated job configuration), `tasks` (what plan hands to a
  job), `results` (what a job returns), `vocabulary` (closed vocabularies), `errors`,
  `identifiers`, `settings` (every setting; the only module that reads the environment),
  `runtime/` (logging, warm-up, optional packages).
"""
