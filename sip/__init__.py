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
from .framing import FramingError, KeepAlive, StreamFramer
from .headers import CSeq, Headers, NameAddr, Via, parse_sip_date
from .message import (
    REASONS,
    Message,
    MessageError,
    ParseFailure,
    Request,
    Response,
    make_response,
    parse_message,
    request_uri_is_sip,
    salvage_response,
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
    "FramingError",
    "Headers",
    "KeepAlive",
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
    "StreamFramer",
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
    "parse_sip_date",
    "parse_uri",
    "request_uri_is_sip",
    "response_destination",
    "salvage_response",
    "stamp_via",
]
