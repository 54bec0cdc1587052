"""The principal a request acts as, as the access middleware left it.

Handlers that filter by reach (an agent sees their own calls, a team lead
their team's) ask ``principal_of(request)``. A request that reached a
handler without passing the middleware is a wiring mistake, and is refused
rather than served as if it could see everything.
"""

from __future__ import annotations

from aiohttp import web

from ..identity import Principal
from ._params import error

__all__ = ["PRINCIPAL", "principal_of"]

PRINCIPAL = web.RequestKey("principal", Principal)
"""The request key under which the access middleware stores the Principal."""


def principal_of(request: web.Request) -> Principal:
    principal = request.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        error(web.HTTPUnauthorized, "unauthenticated", "sign in first")
    return principal
