"""What a caller asks a run to do, validated in one place: the body of `POST /api/runs` and
the `run` / `backfill` arguments of the command line go through the same schema (pydantic).

The rules:
- every rejection is a `RequestError` naming the field (`'jobs[2]'`, `'backfill.from'`, or the
  CLI flag: `--from`) and quoting at most a short prefix of the bad value: HTTP 400, exit 2;
- types are strict: `"full_refresh": "yes"` is not true, `"jobs": [1]` holds no job id;
- job ids and source names must look like job ids and source names (`ingest.identifiers`);
- an empty selection is an error, never "everything": `"jobs": []`, `"jobs": null` (and the
  same for `sources`) are refused; leaving the key out selects every enabled job;
- backfill bounds are checked by `ingest.checks.backfill.check_bounds` (numbers or ISO dates,
  both of one kind, `from` before `to`) before anything is planned;
- the body is at most `MAX_BODY_BYTES`, JSON nested at most as deep as the parser allows
  (a deeper body is invalid JSON, not a crash), at most `MAX_SELECTION` names per list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.checks.backfill import check_bounds
from ingest.errors import RequestError
from ingest.identifiers import is_job_id, is_source_name
from ingest.limits import MAX_BODY_BYTES, MAX_SELECTION, quote

#: a run id (given with --run-id, or in a URL): path-safe, short
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_WORKERS = 64


def _empty_selection(key: str) -> str:
    return (
        f"an empty selection is not allowed: list at least one {key[:-1]}, or leave "
        f"'{key}' out to run every enabled job"
    )


class BackfillRequest(BaseModel):
    """`{"job": id, "from": watermark, "to": watermark (optional)}`: `[from, to)` of one job."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    job: StrictStr
    #: types are checked by check_bounds (a string or a whole number, see _bounds)
    start: Any = Field(alias="from")
    end: Any = Field(default=None, alias="to")

    @field_validator("job")
    @classmethod
    def _job_id(cls, value: str) -> str:
        value = value.strip()
        if not is_job_id(value):
            raise ValueError(f"{quote(value)} is not a job id")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> BackfillRequest:
        start, end = check_bounds(self.start, self.end)
        self.start, self.end = start, end
        return self


class RunRequest(BaseModel):
    """A run: every enabled job, or a selection, or one job's backfill."""

    model_config = ConfigDict(extra="forbid", strict=True)

    jobs: Annotated[list[StrictStr], Field(max_length=MAX_SELECTION)] | None = None
    sources: Annotated[list[StrictStr], Field(max_length=MAX_SELECTION)] | None = None
    full_refresh: StrictBool = False
    backfill: BackfillRequest | None = None

    @field_validator("jobs", "sources", mode="before")
    @classmethod
    def _not_empty(cls, value: Any, info: Any) -> Any:
        if value is None or value == []:
            raise ValueError(_empty_selection(info.field_name))
        return value

    @field_validator("jobs")
    @classmethod
    def _job_ids(cls, value: list[str]) -> list[str]:
        return [_name(item, is_job_id, "a job id") for item in value]

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: list[str]) -> list[str]:
        return [_name(item, is_source_name, "a source name") for item in value]

    @model_validator(mode="after")
    def _backfill_alone(self) -> RunRequest:
        if self.backfill is not None:
            others = [k for k in ("jobs", "sources", "full_refresh") if k in self.model_fields_set]
            if others:
                raise ValueError(f"'backfill' cannot be combined with {', '.join(others)}")
        return self

    def as_plan_request(self) -> dict[str, Any]:
        """The small dict the planner and the Durable payload carry."""
        if self.backfill is not None:
            return {
                "backfill": {
                    "job": self.backfill.job,
                    "from": self.backfill.start,
                    "to": self.backfill.end,
                }
            }
        return {
            "jobs": list(self.jobs or []),
            "sources": list(self.sources or []),
            "full_refresh": self.full_refresh,
        }


def _name(item: str, valid: Any, what: str) -> str:
    text = item.strip()
    if not text or not valid(text):
        raise ValueError(f"{quote(item)} is not {what}")
    return text


class RunOptions(BaseModel):
    """The command line's own options of `run` / `backfill`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    workers: Annotated[StrictInt, Field(ge=1, le=MAX_WORKERS)] = 1
    run_id: StrictStr | None = None

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID.fullmatch(value):
            raise ValueError(
                f"{quote(value)} is not a run id: letters, digits and . _ : - (at most 128)"
            )
        return value


# ------------------------------------------------------------------------------ errors

#: pydantic's error types -> what to say instead (the rest: pydantic's own short message)
_MESSAGES = {
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list of strings",
    "int_type": "must be a whole number",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "missing": "is required",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "too_long": "holds more than {max_length} names",
}


def _where(loc: tuple[Any, ...], flags: Mapping[str, str] | None) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        elif part in ("str", "int") or str(part).startswith(("constrained-", "function-")):
            continue  # the branch of a union: not a field
        else:
            parts.append(str(part))
    path = ".".join(parts)
    if flags is not None:
        return flags.get(path.split("[")[0], f"--{path}")
    return f"'{path}'" if path else "body"


def _explain(error: Mapping[str, Any], flags: Mapping[str, str] | None) -> str:
    kind = error.get("type", "")
    where = _where(tuple(error.get("loc") or ()), flags)
    if kind == "json_invalid":
        return f"body is not valid JSON: {error.get('ctx', {}).get('error') or error['msg']}"
    if kind == "extra_forbidden":
        inside = tuple(error.get("loc") or ())[:1] == ("backfill",)
        keys = ("job", "from", "to") if inside else tuple(RunRequest.model_fields)
        return f"{where}: unknown key; allowed: {', '.join(repr(k) for k in keys)}"
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error") or error["msg"])
    elif kind in _MESSAGES:
        message = _MESSAGES[kind].format(**(error.get("ctx") or {}))
        if "input" in error and kind.endswith("_type"):
            message += f", got {_shown(error['input'])}"
    else:
        message = str(error.get("msg") or kind)
    if flags is not None:
        message = _cli_bound(message, flags)
        return f"{where}: {message}" if where != "--" else message
    return f"{where}: {message}"


def _shown(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return quote(value) if isinstance(value, str) else type(value).__name__
    return type(value).__name__


def _request_error(exc: ValidationError, flags: Mapping[str, str] | None = None) -> RequestError:
    problems = [_explain(error, flags) for error in exc.errors(include_url=False)]
    unique = list(dict.fromkeys(problems))
    return RequestError("; ".join(unique[:10]))


def _checked(model: type[BaseModel], data: Any, flags: Mapping[str, str] | None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _request_error(exc, flags) from None
    except RequestError as exc:  # a backfill bound: name the field
        raise RequestError(_cli_bound(str(exc), flags)) from None


def _cli_bound(message: str, flags: Mapping[str, str] | None) -> str:
    if flags is None:
        return f"'backfill': {message}"
    for name in ("from", "to"):
        message = message.replace(f"'{name}'", flags.get(f"backfill.{name}", f"--{name}"))
    return message


# ------------------------------------------------------------------------------ entry points


def parse_body(body: bytes | str | None) -> dict[str, Any]:
    """The POST /api/runs body -> the plan request (`RunRequest.as_plan_request`).
    An empty body means: every enabled job. RequestError (HTTP 400) names what is wrong."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise RequestError(f"body is larger than {MAX_BODY_BYTES} bytes")
    if not body or not body.strip():
        return RunRequest().as_plan_request()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("body is not UTF-8 text") from None
    try:
        request = RunRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _request_error(exc) from None
    except RequestError as exc:
        raise RequestError(f"'backfill': {exc}") from None
    return request.as_plan_request()


CLI_FLAGS = {
    "jobs": "--job",
    "sources": "--source",
    "full_refresh": "--full-refresh",
    "workers": "--workers",
    "run_id": "--run-id",
    "backfill.job": "--job",
    "backfill.from": "--from",
    "backfill.to": "--to",
    "job": "--job",
    "from": "--from",
    "to": "--to",
}


def cli_run(
    jobs: list[str], sources: list[str], full_refresh: bool, workers: int, run_id: str | None
) -> tuple[RunRequest, RunOptions]:
    """`run`'s arguments (repeated --job/--source; none given: every enabled job)."""
    data: dict[str, Any] = {"full_refresh": full_refresh}
    if jobs:
        data["jobs"] = jobs
    if sources:
        data["sources"] = sources
    return (
        _checked(RunRequest, data, CLI_FLAGS),
        _checked(RunOptions, {"workers": workers, "run_id": run_id}, CLI_FLAGS),
    )


def cli_backfill(job: str, start: str, end: str | None, run_id: str | None) -> BackfillRequest:
    """`backfill`'s arguments."""
    _checked(RunOptions, {"run_id": run_id}, CLI_FLAGS)
    data = {"job": job, "from": start} | ({"to": end} if end is not None else {})
    return _checked(BackfillRequest, data, CLI_FLAGS)
