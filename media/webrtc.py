"""WebRTC media for a browser's leg: ICE-lite, DTLS-SRTP and rtcp-mux on one UDP port.

:class:`WebRtcLeg` is an :class:`~media.leg.RtpLeg` whose RTP socket is
shared by four protocols and whose packets are SRTP on the wire. Its
:class:`WebRtcTransport` owns the socket and tells each datagram apart by
its first octet (media/demux.py, RFC 7983):

```
UDP socket ──► WebRtcTransport._datagram
                 ├─ STUN  ► IceLiteResponder: answer the check, learn where the browser is
                 ├─ DTLS  ► DtlsSession: handshake, then SRTP keys (SrtpSession)
                 ├─ SRTP  ► unprotect ► the leg's RTP handler (its own path, or a bridge's)
                 └─ SRTCP ► unprotect ► the leg's RTCP handler
leg sends RTP/RTCP ──► protect ──► the address ICE selected
```

So everything above the leg (bridge, recorder, player, DTMF) sees plain RTP
and RTCP, as from any other leg. The C fast path cannot do SRTP, so the leg
runs on the pure-Python statistics, which keeps every C relay off it; a
bridge to it relays in Python (measured: docs/performance.md).

Failure: ICE and DTLS must finish within ``handshake_timeout`` of
:meth:`WebRtcTransport.start` (the SDP exchange done), and the browser's
consent checks must keep coming (``consent_timeout``, RFC 7675); a failed
handshake, a wrong fingerprint or a close_notify count too. Any of these
calls :attr:`WebRtcLeg.on_failed` once, and its owner ends the call leg as
it ends any failed one. One ``loop.call_at`` timer serves DTLS
retransmission, the handshake deadline and consent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar

from ._stats import PyReceiverStats, PySenderState
from ._udp import Address, Handler, UdpIo, discard, open_io
from .demux import PacketKind, classify
from .dtls import (
    DtlsCertificate,
    DtlsClosed,
    DtlsConnected,
    DtlsFailed,
    DtlsRole,
    DtlsSession,
    Fingerprint,
)
from .ice import CandidateSelected, ConsentExpired, IceCredentials, IceLiteResponder
from .leg import RtpLeg, _bind_pair
from .portpool import PortPool
from .srtp import SrtpError, SrtpSession

__all__ = ["WebRtcLeg", "WebRtcTransport"]

logger = logging.getLogger(__name__)


class _MediaIo:
    """What the leg sees as its RTP (or RTCP) socket: plain packets in, plain packets out."""

    fast_packets = 0
    last_arrival = 0.0
    fileno = -1  # no C relay may write to this socket: it would send in the clear

    def __init__(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._handler: Callable[[bytes, Address], None] = discard
        self._send = send
        self._close = close

    @property
    def handler(self) -> Handler:
        return self._handler

    @handler.setter
    def handler(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"a WebRTC leg's handler must be a Python callable, not {handler!r}")
        self._handler = handler

    def sendto(self, data: bytes, address: Address) -> None:
        # Where to is ICE's business, not the SDP's (a browser's c= says little).
        self._send(data)

    def close(self) -> None:
        self._handler = discard
        self._close()


class WebRtcTransport:
    """ICE-lite, DTLS-SRTP and rtcp-mux over one UDP socket, for one leg.

    ``credentials`` and ``fingerprint`` go into our SDP; :meth:`start` takes
    the browser's once the offer/answer is done. Checks and a ClientHello
    that overtake the SDP answer are handled already: a check needs only our
    credentials, and a ClientHello before we know our role can only mean the
    browser chose ``active``, so we are the DTLS server.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socket: UdpIo,
        certificate: DtlsCertificate,
        *,
        handshake_timeout: float = 10.0,
        consent_timeout: float = 30.0,
    ) -> None:
        self.credentials = IceCredentials.generate()
        self.certificate = certificate
        self.handshake_timeout = handshake_timeout
        self.on_failed: Callable[[str], None] | None = None
        self.rtp = _MediaIo(self.send_rtp, self.close)
        self.rtcp: _MediaIo | None = None  # set by the leg, with its spare socket's close
        self.dtls: DtlsSession | None = None
        self.srtp: SrtpSession | None = None
        self.ice = IceLiteResponder(self.credentials, consent_timeout=consent_timeout)
        self.packets_sent = 0
        self.packets_unsent = 0
        self.packets_refused = 0
        self.failure: str | None = None
        self._loop = loop
        self._socket = socket
        self._socket.handler = self._datagram
        self._started = False
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # kept here: uvloop's handle for a past time has no when()
        self._closed = False

    @property
    def fingerprint(self) -> Fingerprint:
        """Our certificate's fingerprint, for ``a=fingerprint``."""
        return self.certificate.fingerprint

    @property
    def role(self) -> DtlsRole | None:
        """Our DTLS role, once known."""
        return None if self.dtls is None else self.dtls.role

    @property
    def connected(self) -> bool:
        """Whether SRTP flows: ICE has a pair and DTLS has verified the browser."""
        return self.srtp is not None and self.ice.connected and not self._closed

    def start(self, role: DtlsRole, remote_ufrag: str, remote_fingerprint: Fingerprint) -> None:
        """The SDP exchange is done: our DTLS role and the browser's credentials.

        Arms the handshake deadline. Called again on a re-INVITE, it updates
        the ICE username check; a changed role or fingerprint (a DTLS
        restart) is not supported and fails the transport.
        """
        if self._closed:
            return
        self.ice.remote_ufrag = remote_ufrag
        if self.dtls is None:
            self.dtls = DtlsSession(self.certificate, role, remote_fingerprint)
        elif self.dtls.role is not role:
            self._fail(f"DTLS role {role.value} asked for, {self.dtls.role.value} in use")
            return
        elif self.dtls.remote_fingerprint is None:
            self.dtls.set_remote_fingerprint(remote_fingerprint)
        elif self.dtls.remote_fingerprint != remote_fingerprint:
            self._fail("the browser's fingerprint changed (a DTLS restart is not supported)")
            return
        if not self._started:
            self._started = True
            self._deadline = self._loop.time() + self.handshake_timeout
        self._progress()

    # -- receiving ----------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Address) -> None:
        kind = classify(data)
        if kind is PacketKind.RTP:
            srtp = self.srtp
            if srtp is None:
                self.packets_refused += 1
                return
            try:
                plain = srtp.unprotect(data)
            except SrtpError:
                self.packets_refused += 1
                return
            self.rtp._handler(plain, addr)
        elif kind is PacketKind.RTCP:
            if self.srtp is None or self.rtcp is None:
                self.packets_refused += 1
                return
            try:
                plain = self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.packets_refused += 1
                return
            self.rtcp._handler(plain, addr)
        elif kind is PacketKind.STUN:
            response = self.ice.receive(data, addr, self._loop.time())
            if response is not None:
                self._socket.sendto(response, addr)
            self._progress()
        elif kind is PacketKind.DTLS:
            if self.dtls is None:
                # Only a ClientHello can come before we know our role: be the server.
                self.dtls = DtlsSession(self.certificate, DtlsRole.SERVER)
            self.dtls.receive_datagram(data)
            self._progress()
        else:
            self.packets_refused += 1

    def _progress(self) -> None:
        """Act on what ICE and DTLS say, flush DTLS output, re-arm the timer."""
        if self._closed:
            return
        ice, dtls = self.ice, self.dtls
        while (event := ice.next_event()) is not None:
            if isinstance(event, CandidateSelected):
                logger.debug("WebRTC: the browser is at %s:%d", *event.address)
            elif isinstance(event, ConsentExpired):
                self._fail(f"no ICE consent from the browser for {ice.consent_timeout:g} s")
                return
        if dtls is not None:
            if dtls.role is DtlsRole.CLIENT and self._started and ice.selected is not None:
                dtls.start()
            while (dtls_event := dtls.next_event()) is not None:
                if isinstance(dtls_event, DtlsConnected):
                    self.srtp = SrtpSession(dtls_event.keys)
                    self._deadline = None
                    logger.debug("WebRTC: DTLS-SRTP up (%s)", dtls_event.keys.profile)
                elif isinstance(dtls_event, DtlsFailed):
                    self._flush()
                    self._fail(dtls_event.reason)
                    return
                elif isinstance(dtls_event, DtlsClosed):
                    self._fail("the browser closed DTLS")
                    return
            self._flush()
        self._arm()

    def _flush(self) -> None:
        dtls, target = self.dtls, self.ice.selected
        if dtls is None:
            return
        datagrams = dtls.datagrams_to_send()
        if target is None:
            return  # nowhere to send yet; OpenSSL retransmits once ICE has a pair
        for datagram in datagrams:
            self._socket.sendto(datagram, target)

    # -- timers -------------------------------------------------------------------------

    def _arm(self) -> None:
        now = self._loop.time()
        deadlines = [self._deadline, self.ice.get_timer()]
        if self.dtls is not None:
            deadlines.append(self.dtls.get_timer(now))
        due = min((d for d in deadlines if d is not None), default=None)
        if self._timer is not None:
            if due is not None and abs(self._timer_due - due) < 0.001:
                return
            self._timer.cancel()
            self._timer = None
        if due is not None:
            self._timer_due = due
            self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        now = self._loop.time()
        if self._deadline is not None and now >= self._deadline:
            what = "ICE" if self.ice.selected is None else "DTLS"
            self._fail(f"{what} did not complete within {self.handshake_timeout:g} s")
            return
        self.ice.handle_timer(now)
        if self.dtls is not None:
            self.dtls.handle_timer()
        self._progress()

    # -- sending ------------------------------------------------------------------------

    def send_rtp(self, data: bytes) -> None:
        """Protect and send one RTP packet to the browser; dropped until SRTP is up."""
        srtp, target = self.srtp, self.ice.selected
        if srtp is None or target is None or self._closed:
            self.packets_unsent += 1
            return
        try:
            protected = srtp.protect(data)
        except SrtpError as exc:
            logger.debug("WebRTC: RTP not protected: %s", exc)
            return
        self._socket.sendto(protected, target)
        self.packets_sent += 1

    def send_rtcp(self, data: bytes) -> None:
        """Protect and send one RTCP compound packet on the RTP port (rtcp-mux)."""
        srtp, target = self.srtp, self.ice.selected
        if srtp is None or target is None or self._closed:
            return
        try:
            protected = srtp.protect_rtcp(data)
        except SrtpError as exc:
            logger.debug("WebRTC: RTCP not protected: %s", exc)
            return
        self._socket.sendto(protected, target)

    # -- the end ------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if self.failure is not None or self._closed:
            return
        self.failure = reason
        logger.info("WebRTC leg failed: %s", reason)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        callback, self.on_failed = self.on_failed, None
        if callback is not None:
            callback(reason)

    def close(self) -> None:
        """Send close_notify (when connected), stop the timer, close the socket. Idempotent."""
        if self._closed:
            return
        if self.dtls is not None:
            self.dtls.close()
            self._flush()
        self._closed = True
        self.on_failed = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._socket.handler = discard
        self._socket.close()


class WebRtcLeg(RtpLeg):
    """An RTP leg whose stream is ICE-lite + DTLS-SRTP + rtcp-mux on its RTP port.

    Made by :meth:`open_webrtc`; configured, bridged, recorded and closed as
    any :class:`RtpLeg`. :attr:`webrtc` holds the credentials and
    fingerprint for our SDP and takes the browser's (:meth:`WebRtcTransport.start`).
    :attr:`on_failed` is called once with a reason if ICE, DTLS or consent fails.
    """

    is_webrtc: ClassVar[bool] = True

    _receiver_stats = PyReceiverStats
    _sender_state = PySenderState
    webrtc: WebRtcTransport

    @classmethod
    async def open_webrtc(
        cls,
        pool: PortPool,
        host: str,
        certificate: DtlsCertificate,
        *,
        media_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        handshake_timeout: float = 10.0,
        consent_timeout: float = 30.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> WebRtcLeg:
        """Bind a port pair from ``pool`` on ``host`` and return the leg.

        RTCP shares the RTP port (rtcp-mux); the odd port above stays bound,
        unused, so the pool's pairs stay whole for plain legs.
        """
        loop = loop or asyncio.get_running_loop()
        port, rtp_sock, rtcp_sock = _bind_pair(pool, host)
        try:
            socket = await open_io(loop, rtp_sock)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            pool.release(port)
            raise
        spare = rtcp_sock
        transport = WebRtcTransport(
            loop,
            socket,
            certificate,
            handshake_timeout=handshake_timeout,
            consent_timeout=consent_timeout,
        )
        transport.rtcp = _MediaIo(transport.send_rtcp, spare.close)
        leg = cls(
            loop,
            pool,
            host,
            port,
            transport.rtp,
            transport.rtcp,
            media_timeout=media_timeout,
            rtcp_interval=rtcp_interval,
        )
        leg.webrtc = transport
        transport.on_failed = leg._failed
        return leg

    on_failed: Callable[[WebRtcLeg, str], None] | None = None

    def _failed(self, reason: str) -> None:
        callback = self.on_failed
        if callback is not None and not self.closed:
            callback(self, reason)

    def close(self) -> None:
        """Close as any leg (an RTCP BYE, over SRTCP), then DTLS and the socket."""
        self.on_failed = None
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"-> {self.webrtc.ice.selected}"
        return f"<WebRtcLeg {self.local_address[0]}:{self.local_address[1]} {state}>"
