"""The values a run hands from step to step, as types: a `Task` (what `plan` hands to
`run_job`), a `JobResult` (exactly the audit row), a `Tally` of a run's results (one rule per
status). JSON only where a value leaves the process, through each type's `to_dict` /
`from_dict` (dataclasses and one codec per type)."""
