"""SIP as a sans-I/O core: messages, URIs, headers, transactions, dialogs, digest auth.

Bytes and time go in, events and bytes come out; the asyncio transports in
``sip.transport`` are the only part that touches sockets.
"""

from ._grammar import SipSyntaxError
from .headers import CSeq, Headers, NameAddr, Via
from .message import (
    REASONS,
    Message,
    MessageError,
    ParseFailure,
    Request,
    Response,
    make_response,
    parse_message,
)
from .uri import AbsoluteUri, SipUri, Uri, parse_uri

__all__ = [
    "REASONS",
    "AbsoluteUri",
    "CSeq",
    "Headers",
    "Message",
    "MessageError",
    "NameAddr",
    "ParseFailure",
    "Request",
    "Response",
    "SipSyntaxError",
    "SipUri",
    "Uri",
    "Via",
    "make_response",
    "parse_message",
    "parse_uri",
]
