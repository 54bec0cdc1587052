"""pyVoIP 1.6.8 made into a well-behaved agent softphone for this engine.

pyVoIP is a small pure-Python SIP and RTP stack, which is why the simulator
uses it: nothing to build, and a second implementation to interoperate with.
Its 1.6 line has quirks against a strict registrar; each is handled here, in
the one place, rather than by every caller:

* **REGISTER Request-URI.** pyVoIP hashes the digest ``uri``
  ``sip:<server>;transport=UDP`` but sends ``sip:<server>`` as the
  Request-URI; the engine rightly refuses a digest uri that is not the
  Request-URI (RFC 2617 3.2.2.5). :class:`AgentSipClient` sends the request
  with the Request-URI it hashed.
* **OPTIONS keep-alives.** pyVoIP only knows INVITE, ACK, BYE and CANCEL and
  drops anything else unanswered, so the engine's keep-alive pings fail and
  it removes the binding after ``keepalive_failures`` of them. Re-registering
  faster than pings fail would hide the problem behind more traffic and
  still lose a binding whenever a REGISTER is slow; answering the pings is
  what a phone should do, and keeps the engine's dead-phone detection
  meaningful (a stopped simulator is noticed in one ping). So the socket
  pyVoIP reads from, :class:`SipSocket`, answers OPTIONS itself with
  ``200 OK`` built by this project's own SIP stack (:mod:`sip`), and answers
  other methods pyVoIP cannot handle with ``405`` instead of silence.
* **Requests during registration.** pyVoIP refreshes its registration on a
  timer thread that reads the very next datagram as the REGISTER's
  response. An INVITE or ping arriving in that window would be taken for the
  response (a failed registration) and lost. :class:`SipSocket` hands
  requests only to pyVoIP's receive thread, keeping any another thread reads
  until the receive thread asks, and waits on for the response.
* **CANCEL.** pyVoIP answers ``200`` to a CANCEL but never ends the INVITE
  with ``487`` and keeps the call ringing, so it would answer a call the
  caller has left. :class:`SipSocket` sends both responses and reports the
  cancelled Call-ID, so the agent does not answer it.
* **Closing under the receive thread.** pyVoIP closes its socket while its
  receive thread may still be reading it, which ends that thread with
  ``EBADF``. Reads and mode changes on the closed socket end the thread's
  loop quietly instead.

Everything else (the digest answer, INVITE, BYE, RTP) is pyVoIP's own.
"""

from __future__ import annotations

import collections
import errno
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pyVoIP.SIP import SIPClient
from pyVoIP.VoIP import CallState

from sip import Address, MessageError, Request, make_response, new_tag, parse_message
from sip.transaction import response_destination

__all__ = ["AgentSipClient", "SipSocket"]

log = logging.getLogger(__name__)

RECEIVE_THREAD = "SIP Recieve"
"""pyVoIP's name for its receive thread (sic), kept so tools that look for it still do."""

_HANDED_TO_PYVOIP = frozenset({b"INVITE", b"ACK", b"BYE"})
_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
_DATAGRAM = 65535


class SipSocket(socket.socket):
    """The UDP socket pyVoIP reads SIP from, answering what pyVoIP cannot.

    ``answer(data, source)`` is given every request other than INVITE, ACK
    and BYE and returns whether it dealt with it (the owner answers OPTIONS,
    CANCEL and the rest); ``receiver`` is pyVoIP's receive thread, the only
    reader requests are handed to.
    """

    def __init__(self, answer: Callable[[bytes, tuple[str, int]], bool], wait: float) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self._answer = answer
        self._wait = wait
        self._held: collections.deque[bytes] = collections.deque()
        self.receiver: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        return self.fileno() == -1

    def setblocking(self, flag: bool) -> None:
        if not self.closed:  # pyVoIP toggles the mode after it has closed the socket
            super().setblocking(flag)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """The next datagram pyVoIP should see, from the socket or held for the receiver.

        A reader other than the receive thread has just seen the socket
        readable (pyVoIP selects first) and wants a response; if what was
        readable was a request, it is held and the wait goes on, for as long
        as pyVoIP itself would wait.
        """
        on_receiver = threading.current_thread() is self.receiver
        taken = False
        while True:
            if on_receiver and self._held:
                return self._held.popleft()
            if self.closed:
                # The receive loop takes this as "nothing yet" and sees pyVoIP stopped.
                raise BlockingIOError(errno.EAGAIN, "socket closed")
            if taken and not on_receiver and self.gettimeout() == 0.0:
                readable, _, _ = select.select([self], [], [], self._wait)
                if not readable:
                    raise TimeoutError(f"no SIP response within {self._wait} s")
            try:
                data, source = self.recvfrom(max(bufsize, _DATAGRAM), flags)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise BlockingIOError(errno.EAGAIN, "socket closed") from None
                raise
            method = data.split(b" ", 1)[0]
            if data.startswith(b"SIP/2.0 "):
                return data[:bufsize]
            if not data.strip():
                taken = True  # a CRLF keep-alive (RFC 5626 4.4.1): nothing to answer
                continue
            if method in _HANDED_TO_PYVOIP:
                if on_receiver:
                    return data[:bufsize]
                self._held.append(data[:bufsize])
            elif not self._answer(data, source):
                return data[:bufsize]
            taken = True


class AgentSipClient(SIPClient):
    """pyVoIP's ``SIPClient`` with the fixes listed in this module's docstring.

    ``on_cancel(call_id)`` is called (on a pyVoIP thread) when the engine
    cancels a ringing call. Port 0 binds a free port, read back before the
    first REGISTER so the Contact is right.
    """

    def __init__(self, *args: Any, on_cancel: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_cancel = on_cancel
        self._user_agent = "acd-simulate-agents (pyVoIP 1.6)"
        self._invites: dict[str, tuple[bytes, float]] = {}

    # -- the REGISTER Request-URI --------------------------------------------------------

    def _with_digest_request_uri(self, message: str) -> str:
        sent = f"REGISTER sip:{self.server} SIP/2.0\r\n"
        if not message.startswith(sent):
            raise RuntimeError(
                "this pyVoIP builds REGISTER differently from 1.6.8; the simulator needs 1.6.x"
            )
        return f"REGISTER sip:{self.server};transport=UDP SIP/2.0\r\n{message[len(sent) :]}"

    def gen_first_response(self, deregister: bool = False) -> str:
        return self._with_digest_request_uri(super().gen_first_response(deregister))

    def gen_register(self, request: Any, deregister: bool = False) -> str:
        return self._with_digest_request_uri(super().gen_register(request, deregister))

    # -- start: the answering socket -----------------------------------------------------

    def start(self) -> None:
        """Bind the answering socket, register, then start the receive thread."""
        if self.NSD:
            raise RuntimeError("this SIP client is already started")
        self.NSD = True
        sock = SipSocket(self._answer, float(self.register_timeout))
        sock.bind((self.myIP, self.myPort))
        self.myPort = sock.getsockname()[1]
        self.s = self.out = sock
        self.register()
        receiver = threading.Thread(target=self.recv_loop, name=RECEIVE_THREAD)
        sock.receiver = receiver
        receiver.start()

    def parse_message(self, message: Any) -> None:
        # Remember each INVITE as sent and when it came, to answer a CANCEL
        # of it with 487 and to time the answer from the first ring.
        if getattr(message, "method", None) == "INVITE":
            call_id = message.headers["Call-ID"]
            self._invites.setdefault(call_id, (message.raw, time.monotonic()))
        super().parse_message(message)

    def ringing_since(self, call_id: str) -> float | None:
        """When the INVITE of ``call_id`` arrived (``time.monotonic``), if it is known."""
        entry = self._invites.get(call_id)
        return None if entry is None else entry[1]

    def forget_call(self, call_id: str) -> None:
        """The call is over: nothing to CANCEL any more."""
        self._invites.pop(call_id, None)

    def _answer(self, data: bytes, source: tuple[str, int]) -> bool:
        """Answer a request pyVoIP does not handle; False lets pyVoIP see it."""
        try:
            request = parse_message(data)
        except MessageError as exc:
            log.debug("unparseable SIP datagram from %s: %s", source, exc)
            return True
        if not isinstance(request, Request):
            return False
        if request.method == "OPTIONS":
            response = make_response(request, 200, to_tag=new_tag())
            response.headers.add("Allow", _ALLOW)
            response.headers.add("Accept", "application/sdp")
            self._send(response.serialize(), request, source)
        elif request.method == "CANCEL":
            self._cancel(request, source)
        else:
            response = make_response(request, 405, to_tag=new_tag())
            response.headers.add("Allow", _ALLOW)
            self._send(response.serialize(), request, source)
        return True

    def _cancel(self, cancel: Request, source: tuple[str, int]) -> None:
        call_id = cancel.call_id
        entry = self._invites.pop(call_id, None)
        raw = None if entry is None else entry[0]
        call = self.phone.calls.get(call_id)
        # RFC 3261 9.2: 481 when nothing matches; a call already answered
        # only gets its 200 for the CANCEL (the caller will send BYE).
        status = 200 if raw is not None else 481
        self._send(make_response(cancel, status, to_tag=new_tag()).serialize(), cancel, source)
        if raw is None or call is None or call.state != CallState.RINGING:
            return
        invite = parse_message(raw)
        assert isinstance(invite, Request)
        tag = self.tagLibrary.get(call_id) or new_tag()
        self._send(make_response(invite, 487, to_tag=tag).serialize(), invite, source)
        self._on_cancel(call_id)

    def _send(self, data: bytes, request: Request, source: tuple[str, int]) -> None:
        destination = response_destination(request.top_via, Address("UDP", *source))
        try:
            self.out.sendto(data, (destination.host, destination.port))
        except OSError as exc:
            log.warning("cannot answer %s from %s: %s", request.method, source, exc)
