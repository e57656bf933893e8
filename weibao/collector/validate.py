"""Request bodies and fields checked at the edge: what pydantic refuses becomes a ``Refused`` naming each field.

    parse(body, Model)        400 for text that is not JSON, 422 listing each bad field (at most 20)
    bad_field(field, msg)     a 422 about one field
    parse_time(text, field)   an ISO 8601 time with an offset, 1970 to 9999, else 422
    in_range(ts, field)       a time already parsed, 1970 to 9999, else 422
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from weibao.collector.errors import Refused

M = TypeVar("M", bound=BaseModel)
MAX_PROBLEMS = 20
_MESSAGES = {"timezone_aware": "timestamp needs an offset (a naive timestamp is refused)",
             "extra_forbidden": "unknown field", "finite_number": "value must be a finite number"}


def problems_of(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False)[:MAX_PROBLEMS]:
        field = ".".join(str(p) for p in err["loc"])
        out.append({"field": field, "message": _MESSAGES.get(err["type"], err["msg"])})
    return out


def parse(body: bytes, model: type[M]) -> M:
    """The validated body, or Refused: 400 for text that is not JSON, 422 naming each bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
            first = exc.errors(include_url=False)[0]
            raise Refused(400, "malformed_json", f"body is not valid JSON: {first['msg']}") from exc
        raise invalid(exc) from exc


def invalid(exc: ValidationError) -> Refused:
    """The 422 of a validation error, naming each field."""
    problems = problems_of(exc)
    return Refused(422, "invalid_field", "invalid fields: " + ", ".join(p["field"] or "(body)" for p in problems),
                   problems)


def bad_field(field: str, message: str) -> Refused:
    return Refused(422, "invalid_field", f"{field}: {message}", [{"field": field, "message": message}])


# times a query may name: every one can be shifted by a day and written in any offset without leaving the
# calendar (year 1 at +18:00 is year 0 in UTC, which datetime cannot hold)
QUERY_MIN = datetime(1970, 1, 1, tzinfo=UTC)
QUERY_MAX = datetime(9999, 1, 1, tzinfo=UTC)


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 time with an offset (``Z`` too) between 1970 and 9999; 422 naming ``field`` otherwise."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_field(field, "not an ISO 8601 time") from exc
    if ts.tzinfo is None:
        raise bad_field(field, "needs an offset (a naive time is refused)")
    return in_range(ts, field)


def in_range(ts: datetime, field: str) -> datetime:
    """``ts`` if it lies between QUERY_MIN and QUERY_MAX, else 422 naming ``field``."""
    try:
        inside = QUERY_MIN <= ts.astimezone(UTC) < QUERY_MAX
    except OverflowError:
        inside = False
    if not inside:
        raise bad_field(field, f"outside {QUERY_MIN.date()} .. {QUERY_MAX.date()} (UTC)")
    return ts
