"""Pure helpers the dialog layer builds requests with: tags, Contact, route sets, routing.

Nothing here holds state; :mod:`sip.dialog` keeps the dialog and calls these to
read dialog-forming messages (RFC 3261 12.1) and to place the Request-URI and
Route headers of requests inside a dialog (12.2.1.1).
"""

from __future__ import annotations

from dataclasses import replace

from ._dialog_state import RemoteDialogError
from ._grammar import SipSyntaxError
from .headers import NameAddr
from .message import Message
from .uri import SipUri

__all__ = [
    "copy_uri",
    "parse_route_set",
    "request_uri",
    "route_request",
    "single_contact",
    "with_tag",
    "without_tag",
]


def copy_uri(uri: SipUri) -> SipUri:
    """A copy that shares no mutable state: requests we hand out must not alias dialog state."""
    return replace(uri, params=dict(uri.params))


def without_tag(addr: NameAddr) -> NameAddr:
    """The local or remote URI of a dialog: the From/To value with its tag removed (12.1.1)."""
    uri = copy_uri(addr.uri) if isinstance(addr.uri, SipUri) else addr.uri
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(uri=uri, display=addr.display, params=params)


def with_tag(addr: NameAddr, tag: str) -> NameAddr:
    """``addr`` with ``tag`` added; an empty tag stands for an RFC 2543 peer's missing one."""
    params = dict(addr.params)
    if tag:
        params["tag"] = tag
    return NameAddr(uri=addr.uri, display=addr.display, params=params)


def single_contact(message: Message, what: str) -> NameAddr | None:
    """The one Contact of a dialog-forming message, None when absent.

    RFC 3261 8.1.1.8 and 12.1.1: it must be exactly one SIP or SIPS URI, because
    it becomes the target of every later request in the dialog.
    """
    try:
        contacts = message.contacts
    except SipSyntaxError as exc:
        raise RemoteDialogError(f"bad Contact in {what}: {exc}") from None
    if contacts is None:
        raise RemoteDialogError(f"wildcard Contact in {what}")
    if not contacts:
        return None
    if len(contacts) > 1:
        raise RemoteDialogError(f"more than one Contact in {what}")
    if not isinstance(contacts[0].uri, SipUri):
        raise RemoteDialogError(f"Contact in {what} is not a SIP or SIPS URI", 416)
    return contacts[0]


def parse_route_set(message: Message, *, reverse: bool) -> list[str]:
    """The Record-Route values of ``message`` as a route set, checked to be SIP URIs.

    A UAS keeps them in order (12.1.1); a UAC reverses them (12.1.2) because the
    proxies appended themselves on the way towards the UAS.
    """
    values = message.headers.get_list("record-route")
    for value in values:
        try:
            route = NameAddr.parse(value, "Record-Route")
        except SipSyntaxError as exc:
            raise RemoteDialogError(f"bad Record-Route: {exc}") from None
        if not isinstance(route.uri, SipUri):
            raise RemoteDialogError("Record-Route is not a SIP or SIPS URI")
    return values[::-1] if reverse else list(values)


def request_uri(uri: SipUri) -> SipUri:
    """``uri`` fit for a Request-URI: the ``method`` parameter and headers are not allowed
    there (RFC 3261 19.1.1, table 1), which 12.2.1.1 says to strip."""
    params = {k: v for k, v in uri.params.items() if k != "method"}
    return replace(uri, params=params, headers=None)


def route_request(route_set: list[str], remote_target: SipUri) -> tuple[SipUri, list[str]]:
    """The Request-URI and Route values of a request inside a dialog (RFC 3261 12.2.1.1).

    With no route set the request goes straight to the remote target. When the
    first route is a loose router (``lr``) the Request-URI stays the remote
    target and the route set becomes the Route header as it is. A strict router
    (RFC 2543) expects to find itself in the Request-URI, so its URI goes there
    and the remote target is appended as the last Route for it to rewrite.
    """
    if not route_set:
        return request_uri(remote_target), []
    first = NameAddr.parse(route_set[0], "Route").uri
    if not isinstance(first, SipUri):
        raise RemoteDialogError("route set entry is not a SIP or SIPS URI")
    if "lr" in first.params:
        return request_uri(remote_target), list(route_set)
    return request_uri(first), [*route_set[1:], f"<{remote_target}>"]
