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
from .sdp import (
    DEFAULT_FORMATS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Format,
    MediaDescription,
    Negotiation,
    SdpError,
    SessionDescription,
    is_hold,
    make_offer,
    negotiate,
    parse_answer,
    revise,
)
from .transaction import TransactionLayer, new_branch, new_tag, response_destination, stamp_via
from .uri import AbsoluteUri, SipUri, Uri, parse_uri

__all__ = [
    "DEFAULT_FORMATS",
    "PCMA",
    "PCMU",
    "REASONS",
    "TELEPHONE_EVENT",
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
    "Format",
    "FramingError",
    "Headers",
    "KeepAlive",
    "MediaDescription",
    "Message",
    "MessageError",
    "NameAddr",
    "Negotiation",
    "ParseFailure",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "SdpError",
    "SessionDescription",
    "SipSyntaxError",
    "SipUri",
    "StreamFramer",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
    "Uri",
    "Via",
    "is_hold",
    "make_offer",
    "make_response",
    "negotiate",
    "new_branch",
    "new_tag",
    "parse_answer",
    "parse_message",
    "parse_sip_date",
    "parse_uri",
    "request_uri_is_sip",
    "response_destination",
    "revise",
    "salvage_response",
    "stamp_via",
]
