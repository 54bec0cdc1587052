"""``/api/v1/config``: the runtime sections over HTTP, applied to the running engine at once.

Agents, queues and routes are collections of entries (``GET`` the list,
``POST`` a new one; ``GET``, ``PUT``, ``PATCH``, ``DELETE`` one by its
name); pause reasons are one list (``GET``, ``PUT``). ``PATCH`` is a JSON
merge patch (RFC 7396): the fields given replace those stored, ``null``
takes one back to its default, and objects such as ``skills`` merge key by
key. Every answer carries the revision as its ``ETag``; a change sent with
``If-Match`` is refused with 412 when the configuration has moved on since.

An agent's password is written, never read back. A bad body is a 400 that
names the field (``skills.sales: Input should be less than or equal to
10``), a name already taken or a queue still holding callers a 409, and a
database that is down a 503 with nothing changed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from aiohttp import web

from ..api._params import error, json_body
from ..api._principal import principal_of
from ._service import (
    KEYS,
    AdminService,
    ConfigInvalid,
    ConfigUnavailable,
    StaleRevision,
    validate_entry,
)
from ._store import RevisionConflict

__all__ = ["ConfigApi", "merge_patch"]

log = logging.getLogger(__name__)

_COLLECTIONS = ("agents", "queues", "routes")
_SECRET = "password"


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396: ``patch`` applied to ``target`` (null removes, objects merge).

    An object patches an empty object where the target has none, so the
    nulls inside it remove nothing rather than being stored as values.
    """
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = value
    return result


class ConfigApi:
    """The ``/api/v1/config`` endpoints over one ``AdminService``."""

    def __init__(self, admin: AdminService) -> None:
        self.admin = admin

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.get("/api/v1/config", self.get_all),
            web.get("/api/v1/config/pause-reasons", self.get_pause_reasons),
            web.put("/api/v1/config/pause-reasons", self.put_pause_reasons),
        ]
        for section in _COLLECTIONS:
            base = f"/api/v1/config/{section}"
            routes += [
                web.get(base, self.list_entries),
                web.post(base, self.create_entry),
                web.get(base + "/{name}", self.get_entry),
                web.put(base + "/{name}", self.put_entry),
                web.patch(base + "/{name}", self.patch_entry),
                web.delete(base + "/{name}", self.delete_entry),
            ]
        return routes

    # -- reading ---------------------------------------------------------------------

    def _answer(self, body: object, status: int = 200) -> web.Response:
        response = web.json_response(body, status=status)
        if self.admin.revision is not None:
            response.headers["ETag"] = f'"{self.admin.revision}"'
        return response

    def _public(self, section: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One entry as shown: every field with its default, the password left out."""
        model = self.admin.model(section, name, body)
        shown: dict[str, Any] = json.loads(model.model_dump_json())
        shown.pop(_SECRET, None)
        if section == "queues":
            shown = {"name": name, **shown}
        return shown

    def _listing(self, section: str) -> list[dict[str, Any]]:
        return [self._public(section, name, body) for name, body in self.admin.entries[section]]

    async def get_all(self, request: web.Request) -> web.Response:
        body: dict[str, object] = {"revision": self.admin.revision}
        for section in _COLLECTIONS:
            body[section] = self._listing(section)
        body["pause_reasons"] = [name for name, _ in self.admin.entries["pause_reasons"]]
        return self._answer(body)

    async def list_entries(self, request: web.Request) -> web.Response:
        section = _section_of(request)
        return self._answer({section: self._listing(section), "revision": self.admin.revision})

    def _stored(self, section: str, name: str) -> dict[str, Any]:
        body = self.admin.entry(section, name)
        if body is None:
            error(web.HTTPNotFound, "not_found", f"no {_singular(section)} {name!r}")
        return body

    async def get_entry(self, request: web.Request) -> web.Response:
        section, name = _section_of(request), request.match_info["name"]
        return self._answer(self._public(section, name, self._stored(section, name)))

    async def get_pause_reasons(self, request: web.Request) -> web.Response:
        reasons = [name for name, _ in self.admin.entries["pause_reasons"]]
        return self._answer({"pause_reasons": reasons, "revision": self.admin.revision})

    # -- changing --------------------------------------------------------------------

    async def create_entry(self, request: web.Request) -> web.Response:
        section = _section_of(request)
        body = await _json_object(request)
        key = KEYS[section]
        name = body.pop(key, None)
        if not isinstance(name, str) or not name:
            _bad(key, "required, a non-empty string")
        position = _position(body.pop("position", None), section)
        if self.admin.entry(section, name) is not None:
            error(web.HTTPConflict, "conflict", f"{_singular(section)} {name!r} exists")
        stored = self._stored_shape(section, name, body)
        await self._change(request, section, name, stored, position)
        return self._answer(self._public(section, name, stored), status=201)

    async def put_entry(self, request: web.Request) -> web.Response:
        section, name = _section_of(request), request.match_info["name"]
        body = await _json_object(request)
        position = _position(body.pop("position", None), section)
        given = body.pop(KEYS[section], name)
        if given != name:
            _bad(KEYS[section], f"is {given!r} but the path names {name!r}")
        old = self.admin.entry(section, name)
        if section == "agents" and _SECRET not in body and old is not None:
            body[_SECRET] = old[_SECRET]  # a PUT that leaves the password out keeps it
        stored = self._stored_shape(section, name, body)
        await self._change(request, section, name, stored, position)
        return self._answer(self._public(section, name, stored), status=200 if old else 201)

    async def patch_entry(self, request: web.Request) -> web.Response:
        section, name = _section_of(request), request.match_info["name"]
        patch = await _json_object(request)
        position = _position(patch.pop("position", None), section)
        if patch.get(KEYS[section], name) != name:
            _bad(KEYS[section], "cannot be changed; remove the entry and create another")
        patch.pop(KEYS[section], None)
        if patch.get(_SECRET, "") is None:
            _bad(_SECRET, "cannot be removed, only replaced")
        old = self._stored(section, name)
        stored = self._stored_shape(section, name, merge_patch(old, patch))
        await self._change(request, section, name, stored, position)
        return self._answer(self._public(section, name, stored))

    async def delete_entry(self, request: web.Request) -> web.Response:
        section, name = _section_of(request), request.match_info["name"]
        self._stored(section, name)
        await self._change(request, section, name, None, None)
        response = web.Response(status=204)
        response.headers["ETag"] = f'"{self.admin.revision}"'
        return response

    async def put_pause_reasons(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if set(body) != {"pause_reasons"}:
            _bad("pause_reasons", "required, and the only field")
        reasons = body["pause_reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            _bad("pause_reasons", "must be a list of names")
        by = principal_of(request).username
        with _refusals():
            await self.admin.put_section(
                "pause_reasons",
                [(reason, {}) for reason in reasons],
                by=by,
                expected=_if_match(request),
            )
        return await self.get_pause_reasons(request)

    def _stored_shape(self, section: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as it is stored: checked against the schema, the key put back."""
        if section != "queues":
            body = {**body, KEYS[section]: name}
        with _refusals():
            validate_entry(section, body)
        return body

    async def _change(
        self,
        request: web.Request,
        section: str,
        name: str,
        body: dict[str, Any] | None,
        position: int | None,
    ) -> None:
        by = principal_of(request).username
        with _refusals():
            await self.admin.put(
                section, name, body, by=by, expected=_if_match(request), position=position
            )


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Turn the service's refusals into HTTP answers a person can act on."""
    try:
        yield
    except ConfigInvalid as exc:
        problems = [{"field": f, "message": m} for f, m in exc.problems]
        error(web.HTTPBadRequest, "bad_field", str(exc), field=exc.field, problems=problems)
    except StaleRevision as exc:
        error(web.HTTPPreconditionFailed, "revision_changed", str(exc), revision=exc.found)
    except RevisionConflict as exc:
        # Another admin or node changed it meanwhile; this node has their revision now.
        error(web.HTTPConflict, "revision_changed", f"{exc}; try again", revision=exc.found)
    except ConfigUnavailable as exc:
        error(web.HTTPServiceUnavailable, "storage_unavailable", str(exc))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("API: the configuration change could not be written")
        error(web.HTTPServiceUnavailable, "storage_unavailable", "the database did not answer")


def _section_of(request: web.Request) -> str:
    return request.path.split("/")[4]


def _singular(section: str) -> str:
    return section.removesuffix("s")


def _bad(field: str, message: str) -> NoReturn:
    error(web.HTTPBadRequest, "bad_field", f"{field}: {message}", field=field)


def _position(value: object, section: str) -> int | None:
    if value is None:
        return None
    if section != "routes":
        _bad("position", "only routes have a place in order (the first matching pattern wins)")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _bad("position", "must be a whole number >= 0 (0 is first)")
    return value


def _if_match(request: web.Request) -> int | None:
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        error(web.HTTPBadRequest, "bad_header", 'If-Match: expected an ETag such as "12"')
    return int(text)


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        error(web.HTTPBadRequest, "bad_request", "the body must be a JSON object")
    return body
