"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /api/v1/openapi.json``.

The document is data built by code, next to the handlers it describes, and
checked against them: tests/test_openapi.py validates it, compares its
operations with ``ROUTE_RULES`` (a route left undocumented fails), and runs
schemathesis against a running engine so that a status, a field or a
content type the handlers do not really give fails too.

What every operation needs comes from ``ROUTE_RULES`` itself, as the
``x-permission`` extension (a permission such as ``calls:read``, or
``open``, ``signed_in``, ``metrics``) and as its security requirement, so
the description and the access control cannot disagree. The bodies of the
runtime configuration (agents, queues, routes) are the pydantic models' own
JSON Schema: a field added to ``acd.config`` appears here with no edit.

Operations are in ``_openapi_paths``, schemas in ``_openapi_schemas``; this module adds
what every operation shares (security, the refusals the middleware gives)
and serves the result.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..identity import Permission
from ._openapi_paths import operations
from ._openapi_schemas import BODY_METHODS, components, refusal
from ._params import Params

__all__ = ["OPENAPI_PATH", "OpenApiDocument", "openapi_document"]

OPENAPI_PATH = "/api/v1/openapi.json"

_SIGNED_IN: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
_SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A sign-in token from POST /api/v1/auth/token, or an API key (acd_<id>_<secret>) "
            "from POST /api/v1/api-keys, acting within its scopes."
        ),
    },
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": "acd_session",
        "description": (
            "The browser session from POST /api/v1/auth/login. A POST, PUT, PATCH or DELETE "
            "made with it must send the session's csrf_token in X-CSRF-Token; a request "
            "with a foreign Origin is refused (403 csrf)."
        ),
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "http.auth.metrics_token, when it is set; /metrics is open otherwise.",
    },
}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_UNAUTHENTICATED = refusal(
    "No credential, or one that is unknown, expired or revoked (error: unauthenticated).",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)
_STORAGE_DOWN = refusal("The database did not answer (error: storage_unavailable).")
_TOO_LARGE = {
    "description": "The body is larger than the server takes (1 MiB).",
    "content": _TEXT,
}


def _forbidden(rule: enum.Enum) -> dict[str, Any]:
    reasons = ["a cookie session with a foreign Origin or, to change, no X-CSRF-Token (csrf)"]
    if isinstance(rule, Permission):
        reasons.insert(0, f"the caller lacks {rule.value} (forbidden)")
    return refusal("Refused: " + "; ".join(reasons) + ".")


def _secured(method: str, rule: enum.Enum, operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with its security requirement and the answers of the access middleware."""
    done = dict(operation)
    responses = dict(done["responses"])
    kind = rule.value
    done["x-permission"] = kind
    if kind == "open":
        done["security"] = []
        needs = "Open: no credential needed."
    elif kind == "metrics":
        done["security"] = [{}, {"metricsToken": []}]
        responses.setdefault("401", _UNAUTHENTICATED)
        needs = "Open, unless http.auth.metrics_token is set: then that bearer token."
    else:
        done["security"] = _SIGNED_IN
        responses.setdefault("401", _UNAUTHENTICATED)
        responses.setdefault("403", _forbidden(rule))
        responses.setdefault("503", _STORAGE_DOWN)
        needs = "Any signed-in caller." if kind == "signed_in" else f"Needs `{kind}`."
    if method in BODY_METHODS:
        responses.setdefault("413", _TOO_LARGE)
    done["responses"] = dict(sorted(responses.items()))
    done["description"] = f"{done.get('description', '').strip()}\n\n{needs}".strip()
    return done


def openapi_document(rules: Mapping[tuple[str, str], enum.Enum]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes in ``rules`` (``ROUTE_RULES``).

    A route without a description is left out rather than stopping the engine;
    tests/test_openapi.py fails on it, so it cannot stay out.
    """
    described = operations()
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), rule in sorted(rules.items(), key=lambda item: item[0][::-1]):
        if (method, path) in described:
            paths.setdefault(path, {})[method.lower()] = _secured(
                method, rule, described[(method, path)]
            )
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "acd engine HTTP API",
            "version": "1",
            "description": (
                "The contact-centre engine's API: agents, queues, calls, recordings, reports, "
                "live views and events, users, API keys, the audit log and the runtime "
                'configuration. Errors are JSON: `{"error": code, "message": text}` and, '
                "where it helps, the `parameter` or `field` concerned. `x-permission` on each "
                "operation is what it needs: a permission (an API-key scope), or `open`, "
                "`signed_in`, `metrics`. docs/security.md explains roles and reach: something "
                "outside the caller's reach is answered 404, as if it did not exist."
            ),
        },
        "paths": paths,
        "components": {**components(), "securitySchemes": _SECURITY_SCHEMES},
    }


class OpenApiDocument:
    """Serves the description, encoded once: it changes only with the code."""

    def __init__(self, rules: Mapping[tuple[str, str], enum.Enum]) -> None:
        self.body = json.dumps(openapi_document(rules)).encode()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(OPENAPI_PATH, self.get)]

    async def get(self, request: web.Request) -> web.Response:
        Params(request, ())
        return web.Response(body=self.body, content_type="application/json")
