"""Query-string parsing shared by the API handlers: strict, with errors a person can act on.

Every problem is a 400 with a JSON body naming the parameter, so a typo
(``queu=sales``) is an error rather than a silently unfiltered answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from aiohttp import web

__all__ = ["DEFAULT_WINDOW", "Params", "error", "from_storage", "json_body"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_WINDOW = timedelta(days=1)
"""The span covered when a request gives neither ``since`` nor ``until``."""


def error(status: type[web.HTTPException], code: str, message: str, **extra: object) -> NoReturn:
    """Raise an HTTP error whose body is ``{"error": code, "message": ..., ...}``."""
    body = json.dumps({"error": code, "message": message, **extra})
    raise status(text=body, content_type="application/json")


async def from_storage(operation: Awaitable[_T]) -> _T:
    """Await a storage call; a database that is down is a 503, not a stack trace."""
    try:
        return await operation
    except (ValueError, web.HTTPException):
        raise
    except Exception:
        _log.exception("API: storage query failed")
        error(web.HTTPServiceUnavailable, "storage_unavailable", "the database did not answer")


async def json_body(request: web.Request) -> Any:
    """The request's body as JSON; a 400 for anything that is not JSON text in Unicode.

    Bytes that are not in the declared charset (or an unknown charset), and
    ``"\\ud800"``-style escapes that decode to lone surrogates, are refused
    here: the first would otherwise surface as a decoding error and the second
    only later, when the text is hashed or stored, both as a 500.
    """
    try:
        body = json.loads(await request.text())
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeError:
        error(
            web.HTTPBadRequest,
            "bad_request",
            "the body is not UTF-8 text, or escapes a lone surrogate",
        )
    except LookupError:
        error(web.HTTPBadRequest, "bad_request", "the body's charset is unknown")
    except (ValueError, RecursionError):
        error(web.HTTPBadRequest, "bad_request", "the body is not JSON")
    return body


class Params:
    """The query string of one request, checked against the parameters it may hold."""

    def __init__(self, request: web.Request, allowed: Collection[str]) -> None:
        self._query = request.query
        for name in self._query:
            if name not in allowed:
                self.bad(name, f"unknown parameter; expected one of {', '.join(sorted(allowed))}")
            if len(self._query.getall(name)) > 1:
                self.bad(name, "given more than once")

    @staticmethod
    def bad(name: str, message: str) -> NoReturn:
        error(web.HTTPBadRequest, "bad_parameter", f"{name}: {message}", parameter=name)

    def text(self, name: str) -> str | None:
        value = self._query.get(name)
        if value is not None and not value:
            self.bad(name, "must not be empty")
        return value

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.bad(name, f"not an ISO 8601 time: {value!r}")
        if parsed.utcoffset() is None:
            self.bad(name, "needs a time zone (Z or +hh:mm): times without one are ambiguous")
        try:
            parsed.astimezone(UTC)  # what storage does with it: year 1 at +05:00 is year 0
        except OverflowError:
            self.bad(name, "out of the range of years 1 to 9999")
        return parsed

    def window(self, longest: timedelta | None = None) -> tuple[datetime, datetime]:
        """``since`` and ``until``: a half-open range, by default the last day."""
        until = self.time("until")
        since = self.time("since")
        try:
            if until is None:
                until = datetime.now(UTC) if since is None else since + DEFAULT_WINDOW
            if since is None:
                since = until - DEFAULT_WINDOW
        except OverflowError:
            self.bad(
                "until" if until is None else "since", "give both ends this close to year 1 or 9999"
            )
        if since >= until:
            self.bad("since", "must be before until")
        if longest is not None and until - since > longest:
            self.bad("until", f"the range may span at most {longest.days} days")
        return since, until

    def integer(self, name: str, default: int, lowest: int, highest: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.bad(name, f"not a whole number: {value!r}")
        if not lowest <= number <= highest:
            self.bad(name, f"must be from {lowest} to {highest}")
        return number

    def seconds(self, name: str) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.bad(name, f"not a number of seconds: {value!r}")
        if not 0 <= number <= 86_400:
            self.bad(name, "must be from 0 to 86400 seconds")
        return number

    def choice(self, name: str, choices: Collection[str]) -> str | None:
        value = self.text(name)
        if value is not None and value not in choices:
            self.bad(name, f"must be one of {', '.join(sorted(choices))}")
        return value
