"""ICE-lite (RFC 8445 2.5, 7.3) for the engine's side of a WebRTC leg, sans-I/O.

The engine has an address the browser can reach, so it offers one host
candidate per stream and never checks connectivity itself: the browser (a
full agent, always controlling against a lite one) sends Binding requests,
and :class:`IceLiteResponder` answers them. What it learns is where the
browser is: the source of the first valid check, replaced by the source of
a check that nominates (USE-CANDIDATE). Media and DTLS go there.

Consent (RFC 7675): the browser keeps sending checks on the selected pair
(every 5 s or so); when none has come for ``consent_timeout`` seconds the
responder reports :class:`ConsentExpired`, and the leg ends. A lite agent
sends no checks of its own, so the browser's checks are the only evidence
that it still wants our packets.

Bytes, addresses and ``now`` in; a response to send and events out;
:meth:`IceLiteResponder.get_timer` is the consent deadline.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections import deque
from dataclasses import dataclass

from .stun import (
    BINDING_ERROR,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    ICE_CONTROLLED,
    PRIORITY,
    USE_CANDIDATE,
    StunError,
    StunMessage,
    verify_fingerprint,
    verify_integrity,
)

__all__ = [
    "CandidateSelected",
    "ConsentExpired",
    "IceCredentials",
    "IceEvent",
    "IceLiteResponder",
    "host_candidate",
]

logger = logging.getLogger(__name__)

Address = tuple[str, int]
_ICE_CHARS = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True, slots=True)
class IceCredentials:
    """An ICE username fragment and password (RFC 8445 5.3; ice-char, 4+ and 22+ long)."""

    ufrag: str
    pwd: str

    @classmethod
    def generate(cls) -> IceCredentials:
        """Fresh random credentials: 8 characters of ufrag, 24 of password (144 bits)."""
        return cls(
            "".join(secrets.choice(_ICE_CHARS) for _ in range(8)),
            "".join(secrets.choice(_ICE_CHARS) for _ in range(24)),
        )


@dataclass(frozen=True, slots=True)
class CandidateSelected:
    """The browser is at ``address`` (learnt from a valid check; ``nominated`` by USE-CANDIDATE)."""

    address: Address
    nominated: bool


@dataclass(frozen=True, slots=True)
class ConsentExpired:
    """No valid check came for the consent timeout: the browser has gone (RFC 7675)."""

    address: Address | None


IceEvent = CandidateSelected | ConsentExpired


def host_candidate(host: str, port: int, *, foundation: str = "1") -> str:
    """The ``a=candidate`` value of our one host candidate (RFC 8839 5.1), component 1.

    The priority is RFC 8445 5.1.2.1's formula with type preference 126
    (host), local preference 65535 and component 1.
    """
    priority = (126 << 24) | (65535 << 8) | (256 - 1)
    return f"{foundation} 1 udp {priority} {host} {port} typ host"


class IceLiteResponder:
    """Answers the browser's connectivity checks and says where the browser is.

    ``local`` are our credentials (in our SDP). ``remote_ufrag``, once the
    browser's SDP is known, must match the second half of each check's
    USERNAME; before that (a check can overtake the SDP answer) only our
    half and the MESSAGE-INTEGRITY keyed with our password are checked,
    which is what authenticates a check (RFC 8445 7.3).
    """

    def __init__(self, local: IceCredentials, *, consent_timeout: float = 30.0) -> None:
        self.local = local
        self.remote_ufrag: str | None = None
        self.consent_timeout = consent_timeout
        self.selected: Address | None = None
        self.nominated = False
        self.checks_answered = 0
        self.checks_refused = 0
        self._integrity_key = local.pwd.encode()
        self._last_check: float | None = None
        self._expired = False
        self._events: deque[IceEvent] = deque()

    def receive(self, data: bytes, address: Address, now: float) -> bytes | None:
        """Handle one STUN datagram from ``address``; returns the response to send, if any."""
        try:
            request = StunMessage.parse(data)
        except StunError as exc:
            logger.debug("ICE: unreadable STUN from %s: %s", address, exc)
            return None
        if request.message_type != BINDING_REQUEST:
            return None  # indications, and responses to requests we never send
        refusal = self._refusal(request, data)
        if refusal is not None:
            self.checks_refused += 1
            code, reason, signed = refusal
            logger.debug("ICE: check from %s refused %d %s", address, code, reason)
            error = StunMessage(BINDING_ERROR, request.transaction_id).add_error(code, reason)
            return error.serialize(self._integrity_key if signed else None)
        self.checks_answered += 1
        self._last_check = now
        nominate = request.has(USE_CANDIDATE)
        if self.selected is None or (nominate and (address != self.selected or not self.nominated)):
            self.selected = address
            self.nominated = self.nominated or nominate
            self._events.append(CandidateSelected(address, self.nominated))
        response = StunMessage(BINDING_SUCCESS, request.transaction_id)
        response.add_xor_mapped_address(address)
        return response.serialize(self._integrity_key)

    def _refusal(self, request: StunMessage, data: bytes) -> tuple[int, str, bool] | None:
        """Why a Binding request is refused (code, reason, signed), or None when it is good."""
        if request.has_fingerprint and not verify_fingerprint(data):
            return 400, "Bad FINGERPRINT", False
        username = request.username
        if username is None or not request.has_integrity:
            return 400, "USERNAME and MESSAGE-INTEGRITY required", False
        ours, _, theirs = username.partition(":")
        if ours != self.local.ufrag or (
            self.remote_ufrag is not None and theirs != self.remote_ufrag
        ):
            return 401, "Unknown USERNAME", False
        if not verify_integrity(data, self._integrity_key):
            return 401, "Bad MESSAGE-INTEGRITY", False
        if not request.has(PRIORITY):
            return 400, "PRIORITY required", True
        if request.has(ICE_CONTROLLED):
            # RFC 8445 7.3.1.1 with a lite agent, which is always controlled:
            # the peer must take the controlling role.
            return 487, "Role Conflict", True
        return None

    def next_event(self) -> IceEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    @property
    def connected(self) -> bool:
        """Whether a valid check has come and consent has not expired."""
        return self.selected is not None and not self._expired

    def get_timer(self) -> float | None:
        """When consent runs out, if no check comes before; None before the first check."""
        if self._last_check is None or self._expired:
            return None
        return self._last_check + self.consent_timeout

    def handle_timer(self, now: float) -> None:
        """Report :class:`ConsentExpired` once the consent deadline has passed."""
        deadline = self.get_timer()
        if deadline is not None and now >= deadline:
            self._expired = True
            self._events.append(ConsentExpired(self.selected))
