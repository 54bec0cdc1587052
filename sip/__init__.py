"""SIP as a sans-I/O core: messages, URIs, headers, transactions, dialogs, digest auth.

Bytes and time go in, events and bytes come out; the asyncio transports in
``sip.transport`` are the only part that touches sockets.
"""

from ._grammar import SipSyntaxError
from .dialog import Dialog, DialogId, DialogSet, DialogState
from .events import (
    AckReceived,
    Address,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
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
from .transaction import TransactionLayer, new_branch, new_tag, response_destination, stamp_via
from .uri import AbsoluteUri, SipUri, Uri, parse_uri

__all__ = [
    "REASONS",
    "AbsoluteUri",
    "AckReceived",
    "Address",
    "CSeq",
    "CancelReceived",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "Event",
    "Headers",
    "Message",
    "MessageError",
    "NameAddr",
    "ParseFailure",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "SipSyntaxError",
    "SipUri",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
    "Uri",
    "Via",
    "make_response",
    "new_branch",
    "new_tag",
    "parse_message",
    "parse_uri",
    "response_destination",
    "stamp_via",
]
