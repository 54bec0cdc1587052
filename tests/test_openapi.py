"""The OpenAPI description at /api/v1/openapi.json: valid, complete, and true of the engine.

Valid: openapi-spec-validator passes it as OpenAPI 3.1. Complete: its
operations are exactly ``ROUTE_RULES``' routes, each with the rule as its
``x-permission``, so an endpoint cannot be added undocumented. True:
schemathesis generates requests from it (valid ones and, per operation,
ones that break it) against a running engine with an admin's token, and
every answer must be no 5xx, a documented status, a documented content type,
a body and headers matching their schemas. A few requests that once made a
handler fail are replayed by hand at the end, since random generation finds
them only sometimes.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, strategies
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from acd.api._access import ROUTE_RULES
from acd.api._openapi import OPENAPI_PATH, openapi_document

from .conftest import RunningEngine, write_config

EngineFactory = Callable[[Path], RunningEngine]

EXAMPLES = 12
"""Requests per operation and generation mode: about 1,300 in all, some 30 s on 2 cores."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NOT_FUZZED = {
    # An event stream answers 200 and then never ends: a request would wait
    # for a body that does not come. Checked by hand below instead.
    ("GET", "/api/v1/events"),
}
OWN_TOKEN = {
    # Signing out revokes the token it is sent with: fuzzed with the admin's,
    # it would turn every later request into a 401. It gets a token of its own
    # (revoked by the first example; the rest check the 401 it then answers).
    ("POST", "/api/v1/auth/logout"),
}
# Names that exist, so requests reach past the 404 into the handlers' checks.
KNOWN = {
    "/api/v1/agents/": {"username": "1001"},
    "/api/v1/config/agents/": {"name": "1002"},
    "/api/v1/config/queues/": {"name": "sales"},
    "/api/v1/config/routes/": {"name": "200"},
    "/api/v1/users/": {"username": "fuzzed"},
}
CONFIG = """queues:
  sales: {skills: {sales: 1}, join_empty: true}
  support: {skills: {}}
routes:
  - {match: "200", queue: sales}
  - {match: "_3XX", queue: support}
pause_reasons: [break, lunch]
"""
FUZZED_PASSWORD = "fuzzed-Password-8831"
LEAD_PASSWORD = "lead-Password-5520"


def document() -> dict[str, Any]:
    return openapi_document(ROUTE_RULES)


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document(), cls=OpenAPIV31SpecValidator)


def test_the_document_names_every_route_with_its_rule() -> None:
    paths = document()["paths"]
    described = {
        (method.upper(), path): operation
        for path, item in paths.items()
        for method, operation in item.items()
    }
    assert set(described) == set(ROUTE_RULES)
    for route, operation in described.items():
        assert operation["x-permission"] == ROUTE_RULES[route].value, route
        assert operation["summary"], route
        open_route = ROUTE_RULES[route].value == "open"
        assert (operation["security"] == []) is open_route, route


def _engine(tmp_path: Path, engine_factory: EngineFactory) -> RunningEngine:
    return engine_factory(write_config(tmp_path / "acd.yaml", agents=2, extra=CONFIG))


def test_the_engine_serves_it_and_the_event_streams_answer_as_described(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = _engine(tmp_path, engine_factory)
    status, served = engine.request("GET", OPENAPI_PATH)
    assert status == 200
    assert served == json.loads(json.dumps(document()))
    status, refused = engine.request("GET", OPENAPI_PATH, token=None)
    assert status == 401 and isinstance(refused, dict) and refused["error"] == "unauthenticated"

    schema = schemathesis.openapi.from_dict(document())
    auth = {"Authorization": f"Bearer {engine.token}"}
    # SSE: the headers and the first event, then the client goes away.
    request = urllib.request.Request(engine.url + "/api/v1/events", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        first = response.readline()
    assert json.loads(first.removeprefix(b"data: "))["type"] == "hello"
    # A refused stream answers at once, so schemathesis can judge it.
    sse = schema["/api/v1/events"]["GET"]
    case = sse.Case(query={"since": "-1"})
    case.call_and_validate(base_url=engine.url, headers=auth, checks=CHECKS, timeout=10)
    assert case.call(base_url=engine.url, headers=auth, timeout=10).status_code == 400

    async def websocket() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(engine.url + "/api/v1/events/ws", headers=auth) as ws,
        ):
            hello: dict[str, Any] = await ws.receive_json(timeout=10)
            return hello

    assert asyncio.run(websocket())["type"] == "hello"


def _setup(engine: RunningEngine) -> str:
    """A user the fuzzing may change, and a team lead's token for signing out."""
    for body in (
        {"username": "fuzzed", "role": "agent", "password": FUZZED_PASSWORD},
        {"username": "lead", "role": "team_lead", "team": "red", "password": LEAD_PASSWORD},
    ):
        status, answer = engine.request("POST", "/api/v1/users", body)
        assert status == 201, answer
    return engine.sign_in("lead", LEAD_PASSWORD)


def _strategy(operation: Any, mode: GenerationMode) -> Any:
    generated = operation.as_strategy(generation_mode=mode)
    for prefix, names in KNOWN.items():
        if operation.path.startswith(prefix):
            known = operation.as_strategy(generation_mode=mode, path_parameters=names)
            return strategies.one_of(generated, known)
    return generated


def _fuzz(cases: Any, call: Callable[[Any], Any], statuses: set[int]) -> None:
    """Send EXAMPLES requests drawn from ``cases``, noting the statuses answered."""

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests on every run
        database=None,
        deadline=timedelta(seconds=5),
        phases=[Phase.generate],  # no shrinking against a live engine
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        statuses.add(call(case).status_code)

    run()


def test_schemathesis_finds_the_engine_true_to_its_description(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = _engine(tmp_path, engine_factory)
    admin = {"Authorization": f"Bearer {engine.token}"}
    lead = {"Authorization": f"Bearer {_setup(engine)}"}  # before sign-ins are fuzzed
    schema = schemathesis.openapi.from_dict(document())
    session = requests.Session()
    statuses: dict[str, set[int]] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        route = (operation.method.upper(), operation.path)
        if route in NOT_FUZZED:
            continue
        headers = lead if route in OWN_TOKEN else admin
        label = f"{route[0]} {route[1]}"
        has_input = operation.body or any(True for _ in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])

        def call(case: Any, headers: dict[str, str] = headers) -> Any:
            return case.call_and_validate(
                base_url=engine.url, session=session, headers=headers, checks=CHECKS, timeout=10
            )

        for mode in modes:
            try:
                _fuzz(_strategy(operation, mode), call, statuses.setdefault(label, set()))
            # Collected, so one run reports every operation's failures; schemathesis
            # raises a FailureGroup, a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    fuzzed = {f"{m} {p}" for m, p in ROUTE_RULES if (m, p) not in NOT_FUZZED}
    assert set(statuses) == fuzzed, f"not reached: {fuzzed - set(statuses)}"
    # Some requests got past the refusals: the fuzzing reached the handlers' work.
    assert {200, 201, 204, 400, 401, 404, 409} <= set().union(*statuses.values())


# Requests that once answered 500 (or 503, or were taken as valid), each now a 400.
REGRESSIONS: list[tuple[str, str, object]] = [
    ("GET", "/api/v1/calls?since=9999-12-31T12:00:00%2B00:00", None),  # since + 1 day
    ("GET", "/api/v1/audit?until=0001-01-01T00:00:00Z", None),  # until - 1 day
    ("GET", "/api/v1/calls?since=0001-01-01T00:00:00%2B05:00", None),  # year 0 in UTC
    ("POST", "/api/v1/api-keys", {"name": "x", "scopes": [["calls:read"]]}),  # unhashable
    ("POST", "/api/v1/users", {"username": "bob\n", "role": "agent", "password": "bob-Pass-1234"}),
    ("POST", "/api/v1/users", {"username": "eve", "role": "agent", "team": "red\n"}),
    ("POST", "/api/v1/agents/1001/pause", b"\xff\xfe"),  # not UTF-8
    ("POST", "/api/v1/auth/token", b'{"username": "admin", "password": "\\ud800"}'),
    ("POST", "/api/v1/users", b'{"username": "sam", "role": "agent", "password": "\\ud800_long_"}'),
    ("POST", "/api/v1/config/agents", b"[" * 100_000),  # nested beyond the parser's depth
]  # fmt: skip


def test_requests_that_once_failed_are_refused_with_a_400(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = _engine(tmp_path, engine_factory)
    for method, path, body in REGRESSIONS:
        if isinstance(body, bytes):
            status, raw, kind = engine.send(method, path, body)
            answer: object = json.loads(raw) if "json" in kind else raw
        else:
            status, answer = engine.request(method, path, body)
        assert status == 400, (method, path, status, answer)
        assert isinstance(answer, dict) and answer["error"] in (
            "bad_request",
            "bad_field",
            "bad_parameter",
        )
    # A merge patch's nulls inside an object the entry does not have remove nothing.
    status, patched = engine.request("PATCH", "/api/v1/config/agents/1001", {"skills": {"x": None}})
    assert status == 200 and isinstance(patched, dict) and patched["skills"] == {}, patched
