"""SIP call legs: one dialog plus its RTP stream, as the B2BUA sees it.

``InboundLeg`` is the caller's INVITE that we answer (UAS); ``OutboundLeg`` is
an INVITE we send, to an agent's phone or an extension (UAC). Both share
``SipLeg``: the dialog, in-dialog requests either way (BYE, re-INVITE and
UPDATE for hold and session refresh, INFO for DTMF, OPTIONS), RFC 4028 session
timers, and the media stream's configuration from each offer/answer.

A leg never blocks: it reacts to transaction events handed in by
``CallControl`` and reports what happened through ``on_event`` and the
``answered`` / ``ended`` futures that the call script awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from media import DtmfReceived, PortPoolExhausted, RtpLeg, codec_for, parse_info_body
from media.ice import host_candidate
from sip import (
    DEFAULT_FORMATS,
    REASONS,
    SECURE_PROTOS,
    Address,
    Dialog,
    DialogState,
    Headers,
    NameAddr,
    Negotiation,
    Request,
    Response,
    SdpError,
    SecureMedia,
    SessionDescription,
    Setup,
    SipSyntaxError,
    SipUri,
    is_hold,
    make_offer,
    make_response,
    negotiate,
    new_tag,
    parse_answer,
    revise,
    token_hex,
)
from sip.dialog import DialogError

from ._events import (
    EndReason,
    LegAnswered,
    LegEnd,
    LegEnded,
    LegEvent,
    LegHeld,
    LegModified,
    LegReferred,
    LegRinging,
    LegUnheld,
)

if TYPE_CHECKING:
    from media.webrtc import WebRtcLeg

    from ._control import CallControl

__all__ = ["InboundLeg", "OutboundLeg", "SipLeg"]

log = logging.getLogger(__name__)

_SDP: Final = "application/sdp"
# Browsers' SIP runs over WebSocket, and their media is WebRTC (RFC 7118, RFC 8827).
_BROWSER_TRANSPORTS: Final = frozenset({"WS", "WSS"})
# RFC 4028 4: the refresher sends its refresh at half the interval; the other
# side gives up at the interval minus min(32, interval/3).
_SESSION_GRACE: Final = 32


class SipLeg:
    """One dialog and its media, inbound or outbound.

    ``destination`` is where in-dialog requests go: the address the caller's
    INVITE came from (so NATed phones are reached through their own pinhole),
    or the registered contact's destination for an outbound leg.
    """

    direction: str = "?"

    def __init__(self, control: CallControl, call_id: str, destination: Address) -> None:
        self.control = control
        self.call_id = call_id
        self.destination = destination
        self.dialog: Dialog | None = None
        self.rtp: RtpLeg | None = None
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.negotiation: Negotiation | None = None
        self.held = False
        self.on_event: Callable[[LegEvent], None] | None = None
        loop = asyncio.get_running_loop()
        # Neither future's value names the leg: a done future that pointed
        # back at its leg would keep every finished leg (and its call, RTP
        # leg and SDP) for the cycle collector instead of freeing it at once.
        self.answered: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[LegEnd] = loop.create_future()
        self._session_id = secrets.randbelow(2**31)
        self._session_timer: asyncio.TimerHandle | None = None
        self._session_expires: int | None = None
        self._pending: set[str] = set()  # our in-dialog client transactions
        self.sip_status: int | None = None  # the final status of the dialog's INVITE

    # -- common state --------------------------------------------------------------------

    @property
    def is_ended(self) -> bool:
        return self.ended.done()

    @property
    def is_answered(self) -> bool:
        return self.answered.done() and not self.answered.cancelled()

    def _emit(self, event: LegEvent) -> None:
        if isinstance(event, LegAnswered) and not self.answered.done():
            self.answered.set_result(None)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("%s: event handler failed on %s", self, type(event).__name__)

    def _finish(self, reason: EndReason, status: int | None = None, *, by_remote: bool) -> None:
        """Mark the leg ended (once), release media and tell the owner."""
        if self.ended.done():
            return
        self.ended.set_result(LegEnd(reason, status, by_remote))
        if not self.answered.done():
            self.answered.cancel()
        self._cancel_session_timer()
        if self.dialog is not None:
            self.dialog.terminate(reason)
            self.control.forget_dialog(self)
        self.close_media()
        log.debug("%s ended: %s %s", self, reason, status or "")
        self._emit(LegEnded(self, reason, status, by_remote))
        # The last event: an ended leg has left the dialog map and closed its
        # media, so nothing reaches it that would report more. Dropping the
        # handler (a bound method of the owner, which holds the leg) frees leg
        # and owner by reference counting when their last user lets go.
        self.on_event = None

    def close_media(self) -> None:
        if self.rtp is not None:
            self.rtp.close()

    async def open_media(self, *, webrtc: bool = False) -> RtpLeg:
        """The leg's RTP stream: WebRTC's (ICE-lite, DTLS-SRTP) for a browser, else plain."""
        if self.rtp is None:
            self.rtp = await self.control.media.open_leg(webrtc=webrtc)
            self.rtp.on_dtmf = self._dtmf
            self.rtp.on_timeout = self._media_timeout
            if webrtc:
                cast("WebRtcLeg", self.rtp).on_failed = self._media_failed
        return self.rtp

    def _dtmf(self, event: DtmfReceived) -> None:
        self._emit(event)

    def _media_timeout(self, _leg: RtpLeg) -> None:
        log.info("%s: no RTP for %.0f s, hanging up", self, self.control.media.timeout)
        self.hangup(reason="media-timeout")

    def _media_failed(self, _leg: WebRtcLeg, reason: str) -> None:
        # ICE, DTLS or consent failed: the browser cannot be heard, as after a media timeout.
        log.info("%s: WebRTC media failed (%s), hanging up", self, reason)
        self.hangup(reason="media-timeout")

    def _secure(self, *, offering: bool) -> SecureMedia | None:
        """Our ICE/DTLS lines for a WebRTC leg's SDP; None for a plain leg.

        ``a=setup`` is ``actpass`` until the DTLS role is settled, then that
        role, so a re-offer or re-answer keeps the association (RFC 8842 5.5).
        """
        rtp = self.rtp
        if rtp is None or not rtp.is_webrtc:
            return None
        from media.dtls import DtlsRole  # WebRTC loads OpenSSL: only once a browser calls

        webrtc = cast("WebRtcLeg", rtp).webrtc
        role = webrtc.role
        setup: Setup = (
            "actpass" if role is None else "active" if role is DtlsRole.CLIENT else "passive"
        )
        host = self.control.media.sdp_address(self.destination.host)
        return SecureMedia(
            ice_ufrag=webrtc.credentials.ufrag,
            ice_pwd=webrtc.credentials.pwd,
            fingerprint=str(webrtc.fingerprint),
            setup=setup,
            candidates=(host_candidate(host, rtp.local_address[1]),),
            ice_lite=True,
            mid="0" if offering else None,
        )

    def _start_webrtc(self, negotiation: Negotiation) -> None:
        """Hand the browser's ICE credentials and fingerprint, and our DTLS role, to the leg."""
        rtp, theirs = self.rtp, negotiation.secure
        if rtp is None or not rtp.is_webrtc or theirs is None or self.local_sdp is None:
            return
        from media.dtls import DtlsRole, Fingerprint

        leg = cast("WebRtcLeg", rtp)
        index = negotiation.media_index or 0
        ours = self.local_sdp.media[index].attribute("setup") if self.local_sdp.media else None
        setup = "actpass" if ours is None else (ours.value or "actpass")
        # When we offered actpass the answerer chose (RFC 5763 5): its passive
        # makes us the client; its active (or no a=setup, RFC 4145 4) the server.
        client = theirs.setup == "passive" if setup == "actpass" else setup == "active"
        leg.webrtc.start(
            DtlsRole.CLIENT if client else DtlsRole.SERVER,
            theirs.ice_ufrag,
            Fingerprint.parse(theirs.fingerprint),
        )

    def _apply(self, negotiation: Negotiation) -> None:
        """Point the RTP stream where the latest offer/answer says."""
        self.negotiation = negotiation
        if self.rtp is None or negotiation.codec is None:
            return
        self._start_webrtc(negotiation)
        self.rtp.configure(
            negotiation.remote_rtp,
            codec_for(negotiation.codec.encoding),
            negotiation.codec.payload_type,
            telephone_event_pt=negotiation.telephone_event,
            ptime_ms=negotiation.ptime,
            sends=negotiation.sends,
            receives=negotiation.receives,
            # Without telephone-event (old trunks, analogue gateways) keys come
            # as tones in the audio: listen for them there.
            inband_dtmf=negotiation.telephone_event is None,
        )

    def _offer(self, *, direction: str = "sendrecv") -> SessionDescription:
        assert self.rtp is not None
        offer = make_offer(
            self.control.media.sdp_address(self.destination.host),
            self.rtp.local_address[1],
            direction=direction,  # type: ignore[arg-type]
            session_id=self._session_id,
            version=1,
            secure=self._secure(offering=True),
        )
        if self.local_sdp is not None:
            offer = revise(self.local_sdp, offer)
        return offer

    def _answer(self, offer: SessionDescription) -> Negotiation:
        assert self.rtp is not None
        previous = self.local_sdp
        negotiation = negotiate(
            offer,
            DEFAULT_FORMATS,
            self.control.media.sdp_address(self.destination.host),
            self.rtp.local_address[1],
            session_id=self._session_id,
            version=1,
            secure=self._secure(offering=False),
        )
        answer = negotiation.answer
        if previous is not None:
            answer = revise(previous, answer)
        self.local_sdp = answer
        return negotiation

    # -- hanging up ----------------------------------------------------------------------

    def hangup(self, reason: EndReason = "hangup", status: int | None = None) -> None:
        """End the leg from our side: BYE when connected; subclasses handle early legs."""
        if self.is_ended:
            return
        if self.dialog is not None and self.dialog.state is DialogState.CONFIRMED:
            self.send_in_dialog("BYE")
        self._finish(reason, status, by_remote=False)

    def connection_lost(self) -> None:
        """The far end's only connection (a browser's WebSocket) closed: no BYE can go."""
        if self.is_ended:
            return
        log.info("%s: its WebSocket closed, the leg ends", self)
        self._finish("connection-lost", by_remote=True)

    def send_in_dialog(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> str | None:
        """Send a request inside the dialog; returns its transaction key."""
        if self.dialog is None:
            return None
        try:
            request = self.dialog.create_request(
                method,
                via=self.control.endpoint.via_for(self.destination),
                body=body,
                content_type=content_type,
                extra_headers=extra,
            )
        except DialogError as exc:
            log.debug("%s: cannot send %s: %s", self, method, exc)
            return None
        key = self.control.send_request(self, request, self.destination)
        self._pending.add(key)
        return key

    # -- in-dialog requests from the far end ---------------------------------------------

    def request_received(self, request: Request, transaction: str) -> None:
        """A request inside our dialog, accepted by the dialog layer."""
        method = request.method
        if method == "BYE":
            self._respond(transaction, request, 200)
            self._finish("bye", by_remote=True)
        elif method in ("INVITE", "UPDATE"):
            self._refresh(request, transaction)
        elif method == "INFO":
            self._info(request, transaction)
        elif method == "OPTIONS":
            self._respond(transaction, request, 200)
        elif method == "REFER":
            self._refer(request, transaction)
        else:
            self._respond(transaction, request, 501)

    def _respond(
        self,
        transaction: str,
        request: Request,
        status: int,
        *,
        body: bytes = b"",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        response = make_response(request, status)
        if (
            self.dialog is not None
            and 100 < status < 300
            and request.method in ("INVITE", "UPDATE")
        ):
            # The dialog's target is already a name-addr (<sip:...>): a bare
            # URI's ;transport=tcp would read as a header parameter (RFC 3261
            # 20.10), and some UAs want the <>.
            response.headers.add("Contact", str(self.dialog.local_target))
        for name, value in extra:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", _SDP)
            response.body = body
        self.control.endpoint.send_response(transaction, response)
        if self.dialog is not None:
            self.dialog.response_sent(request, response)
        return response

    def _refresh(self, request: Request, transaction: str) -> None:
        """re-INVITE or UPDATE: a new offer (hold, unhold, move) and/or a session refresh."""
        if self.is_ended:
            self._respond(transaction, request, 481)
            return
        body = b""
        timer_headers = self._session_headers(request)
        if timer_headers is None:
            self._respond(transaction, request, 422, extra=self._min_se())
            return
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                negotiation = self._answer(offer)
            except SdpError as exc:
                log.info("%s: unreadable SDP in %s: %s", self, request.method, exc)
                self._respond(transaction, request, 488)
                return
            if not negotiation.accepted:
                self._respond(transaction, request, 488)
                return
            body = negotiation.answer.serialize()
            was_held = self.held
            self.remote_sdp = offer
            self._apply(negotiation)
            self.held = is_hold(offer)
            if self.held and not was_held:
                self._emit(LegHeld(self))
            elif was_held and not self.held:
                self._emit(LegUnheld(self))
            else:
                self._emit(LegModified(self))
        elif request.method == "INVITE" and self.local_sdp is not None:
            # A re-INVITE without an offer asks for ours (RFC 3264 8); the answer
            # comes in the ACK, which changes nothing we need to act on here.
            body = self.local_sdp.serialize()
        self._respond(transaction, request, 200, body=body, extra=timer_headers)

    def _info(self, request: Request, transaction: str) -> None:
        try:
            event = parse_info_body(request.headers.get("content-type") or "", request.body)
        except ValueError as exc:
            log.info("%s: unreadable DTMF in INFO: %s", self, exc)
            self._respond(transaction, request, 400)
            return
        self._respond(transaction, request, 200)
        if event is not None:
            self._emit(event)

    # -- blind transfer (REFER, RFC 3515) -----------------------------------------------

    def _refer(self, request: Request, transaction: str) -> None:
        """Accept a REFER to a SIP URI (202) and tell the owner; the owner transfers.

        Only one Refer-To naming a ``sip:`` URI is accepted: 400 otherwise,
        and 603 when nobody here carries transfers out (the owner would
        ignore the event and the referrer would wait for a NOTIFY forever).
        """
        if self.is_ended:
            self._respond(transaction, request, 481)
            return
        values = request.headers.get_all("refer-to")
        if len(values) != 1:
            self._respond(transaction, request, 400)
            return
        try:
            target = NameAddr.parse(values[0], "Refer-To").uri
        except SipSyntaxError:
            target = None
        if not isinstance(target, SipUri):
            self._respond(transaction, request, 400)
            return
        if self.on_event is None:
            self._respond(transaction, request, 603)
            return
        self._respond(transaction, request, 202)
        self.notify_refer(100)
        self._emit(LegReferred(self, target))

    def notify_refer(self, status: int) -> None:
        """NOTIFY the referrer how the transfer goes (RFC 3515 2.4.5): a sipfrag status line.

        A final status (>= 200) terminates the implicit subscription.
        """
        reason = REASONS.get(status, "Unknown")
        state = "active;expires=60" if status < 200 else "terminated;reason=noresource"
        self.send_in_dialog(
            "NOTIFY",
            body=f"SIP/2.0 {status} {reason}\r\n".encode(),
            content_type="message/sipfrag;version=2.0",
            extra=(("Event", "refer"), ("Subscription-State", state)),
        )

    # -- session timers (RFC 4028) -------------------------------------------------------

    def _session_headers(self, request: Request) -> tuple[tuple[str, str], ...] | None:
        """The Session-Expires answer to ``request``; None when its interval is too small."""
        policy = self.control.config.calls
        value = request.headers.get("session-expires")
        if value is None:
            return ()
        interval_text, _, params = value.partition(";")
        try:
            interval = int(interval_text.strip())
        except ValueError:
            return ()
        if interval < policy.min_se:
            return None
        interval = min(interval, policy.session_expires)
        refresher = "uac" if "refresher=uas" not in params.replace(" ", "") else "uas"
        self._arm_session_timer(interval, we_refresh=refresher == "uas")
        headers: list[tuple[str, str]] = [("Session-Expires", f"{interval};refresher={refresher}")]
        supported = (request.headers.get("supported") or "").replace(" ", "").split(",")
        if "timer" in supported:
            headers.append(("Require", "timer"))
        return tuple(headers)

    def _min_se(self) -> tuple[tuple[str, str], ...]:
        return (("Min-SE", str(self.control.config.calls.min_se)),)

    def _arm_session_timer(self, interval: int, *, we_refresh: bool) -> None:
        self._cancel_session_timer()
        self._session_expires = interval
        loop = asyncio.get_running_loop()
        if we_refresh:
            self._session_timer = loop.call_later(interval / 2, self._send_refresh)
        else:
            wait = interval - min(_SESSION_GRACE, interval / 3)
            self._session_timer = loop.call_later(wait, self._session_expired)

    def _cancel_session_timer(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None

    def _send_refresh(self) -> None:
        interval = self._session_expires or self.control.config.calls.session_expires
        self.send_in_dialog("UPDATE", extra=(("Session-Expires", f"{interval};refresher=uas"),))
        self._arm_session_timer(interval, we_refresh=True)

    def _session_expired(self) -> None:
        log.info("%s: session refresh never came (RFC 4028), hanging up", self)
        self.hangup(reason="session-expired")

    # -- responses to our in-dialog requests ---------------------------------------------

    def response_received(self, response: Response, transaction: str) -> None:
        if response.status < 200:
            return
        self._pending.discard(transaction)
        if self.dialog is not None:
            self.dialog.receive_response(response)
        if response.status in (408, 481) and response.cseq.method != "BYE":
            self._finish("timeout", response.status, by_remote=True)

    def transaction_failed(self, transaction: str, method: str) -> None:
        self._pending.discard(transaction)
        if method != "BYE":
            self._finish("timeout", 408, by_remote=True)

    def ack_received(self, request: Request) -> None:
        """ACK for our 2xx (subclasses act on the first one)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id}>"


class InboundLeg(SipLeg):
    """The caller's side: an INVITE we answer, reject, or see cancelled."""

    direction = "inbound"

    def __init__(
        self, control: CallControl, invite: Request, transaction: str, source: Address
    ) -> None:
        super().__init__(control, invite.call_id, source)
        self.invite = invite
        self.transaction = transaction
        self.to_tag = new_tag()
        self.started = asyncio.get_running_loop().time()  # for the setup time
        self.owner_id: str | None = None  # the engine's id of the call this leg belongs to
        self._final_sent = False
        self._ack_timer: asyncio.TimerHandle | None = None

    @classmethod
    def departed(cls, control: CallControl, invite: Request, source: Address) -> InboundLeg:
        """The leg of a caller who hung up in an earlier run: a stored callback's, taken back.

        It was answered and ended before this engine started, so it has no
        transaction and no dialog, and nothing is ever sent on it; the call
        it belongs to dials the caller again on a leg of its own.
        """
        leg = cls(control, invite, "", source)
        leg._final_sent = True
        leg.sip_status = 200
        leg.answered.set_result(None)
        leg.ended.set_result(LegEnd("hangup", None, True))
        return leg

    @property
    def final_sent(self) -> bool:
        return self._final_sent

    def _response(self, status: int, reason: str | None = None) -> Response:
        response = make_response(self.invite, status, reason, to_tag=self.to_tag)
        return response

    def ring(self, status: int = 180) -> None:
        """Tell the caller it is ringing (180) or that the call is progressing (183)."""
        if self._final_sent or self.is_ended:
            return
        self.control.endpoint.send_response(self.transaction, self._response(status))
        self._emit(LegRinging(self, status))

    async def answer(self) -> bool:
        """Answer with our SDP; False when the offer is unusable (488 sent) or the call ended."""
        if self._final_sent or self.is_ended:
            return False
        offer: SessionDescription | None = None
        if self.invite.body:
            try:
                offer = SessionDescription.parse(self.invite.body)
            except SdpError as exc:
                log.info("%s: unreadable SDP offer: %s", self, exc)
                self.reject(400)
                return False
        # A browser offers DTLS-SRTP; a browser's INVITE without an offer gets ours.
        if offer is not None:
            webrtc = any(m.proto.upper() in SECURE_PROTOS for m in offer.media)
        else:
            webrtc = self.destination.transport in _BROWSER_TRANSPORTS
        try:
            rtp = await self.open_media(webrtc=webrtc)
        except PortPoolExhausted as exc:
            # Out of capacity, not a fault: the caller (or carrier) may retry.
            log.warning("%s: refused, %s", self, exc)
            self.reject(503, extra=(("Retry-After", "5"),))
            return False
        if self.is_ended:  # cancelled while the ports were being bound
            return False
        extra: tuple[tuple[str, str], ...] = ()
        if offer is not None:
            negotiation = self._answer(offer)
            if not negotiation.accepted:
                self.reject(488)
                return False
            self.remote_sdp = offer
            self._apply(negotiation)
            self.held = is_hold(offer)
        else:
            # Delayed offer (RFC 3261 13.2.1): we offer in the 200, the answer rides the ACK.
            self.local_sdp = self._offer()
        timer_headers = self._session_headers(self.invite)
        if timer_headers is None:
            self.reject(422, extra=self._min_se())
            return False
        extra = timer_headers
        response = self._response(200)
        contact = self.control.contact_for(self.destination)
        response.headers.add("Contact", str(NameAddr(uri=contact)))
        response.headers.add("Allow", self.control.allow)
        response.headers.add("Supported", "timer")
        for name, value in extra:
            response.headers.add(name, value)
        assert self.local_sdp is not None
        response.headers.add("Content-Type", _SDP)
        response.body = self.local_sdp.serialize()
        try:
            self.dialog = Dialog.from_uas(self.invite, response, contact)
        except DialogError as exc:
            log.info("%s: INVITE cannot form a dialog: %s", self, exc)
            self.reject(400)
            return False
        self.control.remember_dialog(self)
        self._final_sent = True
        self.sip_status = 200
        self.control.endpoint.send_response(self.transaction, response)
        self.control.setup_done(self, 200)
        del rtp
        return True

    def reject(self, status: int, *, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse the INVITE with a final failure response."""
        if self._final_sent:
            return
        response = self._response(status)
        for name, value in extra:
            response.headers.add(name, value)
        self._final_sent = True
        self.sip_status = status
        self.control.endpoint.send_response(self.transaction, response)
        self.control.setup_done(self, status)
        self._finish("hangup", status, by_remote=False)

    def hangup(self, reason: EndReason = "hangup", status: int | None = None) -> None:
        if self.is_ended:
            return
        if not self._final_sent:
            self.reject(status or 480)
            return
        super().hangup(reason, status)

    def cancelled(self) -> None:
        """CANCEL arrived (the transaction layer already answered it 200)."""
        if self._final_sent:
            return  # too late: the 200 crossed the CANCEL; the caller will BYE
        self._final_sent = True
        self.sip_status = 487
        self.control.endpoint.send_response(self.transaction, self._response(487))
        self.control.setup_done(self, 487)
        self._finish("cancelled", 487, by_remote=True)

    def ack_received(self, request: Request) -> None:
        if self.is_answered or self.is_ended:
            return
        if self.negotiation is None and request.body and self.local_sdp is not None:
            try:
                self.remote_sdp = SessionDescription.parse(request.body)
                self._apply(parse_answer(self.local_sdp, self.remote_sdp))
            except SdpError as exc:
                log.info("%s: unreadable SDP answer in ACK: %s", self, exc)
                self.hangup(status=400)
                return
        self._emit(LegAnswered(self))

    def invite_timed_out(self) -> None:
        """No ACK came for our 2xx (Timer H / L): the caller is gone."""
        if self.is_answered:
            return
        if self._final_sent and self.sip_status == 200:
            # RFC 3261 13.3.1.4: a 2xx never ACKed ends the dialog with a BYE.
            self.hangup(reason="timeout")
        else:
            self._finish("timeout", 408, by_remote=True)


class OutboundLeg(SipLeg):
    """An INVITE we send (to an agent's phone or an extension), with CANCEL and ACK."""

    direction = "outbound"

    def __init__(
        self,
        control: CallControl,
        target: SipUri,
        destination: Address,
        *,
        from_addr: NameAddr,
        to_addr: NameAddr,
        call_id: str | None = None,
    ) -> None:
        super().__init__(control, call_id or token_hex(16), destination)
        self.target = target
        self.from_addr = from_addr
        self.to_addr = to_addr
        self.invite: Request | None = None
        self.transaction: str | None = None
        self._ack: Request | None = None
        self._cancel_requested = False

    async def start(self) -> None:
        """Send the INVITE with our offer (WebRTC's to a browser: a contact over WS or WSS)."""
        try:
            await self.open_media(webrtc=self.destination.transport in _BROWSER_TRANSPORTS)
        except PortPoolExhausted as exc:
            log.warning("%s: not dialled, %s", self, exc)
            self._finish("error", 503, by_remote=False)
            return
        if self.is_ended:
            return
        self.local_sdp = self._offer()
        endpoint = self.control.endpoint
        contact = self.control.contact_for(self.destination)
        from_tag = new_tag()
        via = endpoint.via_for(self.destination)
        lines = [
            ("Via", str(via)),
            ("Max-Forwards", "70"),
            ("From", f"{self.from_addr};tag={from_tag}"),
            ("To", str(self.to_addr)),
            ("Call-ID", self.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", str(NameAddr(uri=contact))),
            ("Allow", self.control.allow),
            ("Supported", "timer"),
            ("User-Agent", endpoint.policy.server_name),
            ("Content-Type", _SDP),
        ]
        headers = Headers()
        for name, value in lines:
            headers.add(name, value)
        self.invite = Request("INVITE", self.target, headers, self.local_sdp.serialize())
        self.transaction = self.control.send_request(self, self.invite, self.destination)

    def cancel(self, reason: EndReason = "hangup") -> None:
        """Stop ringing: CANCEL before an answer, BYE after (the 200 may cross the CANCEL)."""
        if self.is_ended:
            return
        if self.is_answered or (self.dialog and self.dialog.state is DialogState.CONFIRMED):
            self.hangup(reason)
            return
        self._cancel_requested = True
        if self.transaction is not None:
            self.control.endpoint.cancel(self.transaction)
        self._finish(reason, by_remote=False)

    def hangup(self, reason: EndReason = "hangup", status: int | None = None) -> None:
        if self.is_ended:
            return
        if not self.is_answered and not (
            self.dialog and self.dialog.state is DialogState.CONFIRMED
        ):
            self.cancel(reason)
            return
        super().hangup(reason, status)

    def response_received(self, response: Response, transaction: str) -> None:
        if transaction != self.transaction:
            super().response_received(response, transaction)
            return
        status = response.status
        if status < 200:
            if status in (180, 183) and not self.is_ended:
                self._emit(LegRinging(self, status))
            return
        if self._ack is not None:
            self.retransmitted_2xx()
            return
        self.sip_status = status
        if status >= 300:
            self._finish("rejected", status, by_remote=True)
            return
        self._confirmed(response)

    def _confirmed(self, response: Response) -> None:
        assert self.invite is not None
        if self.dialog is None:
            self.dialog = Dialog.from_uac(self.invite, response)
            self.control.remember_dialog(self)
        elif self.dialog.state is DialogState.EARLY:
            self.dialog.confirm(response)
        self._send_ack()
        if self.is_ended:
            # Answered after we gave up (CANCEL crossed the 200): ACK, then BYE.
            self.send_in_dialog("BYE")
            return
        if response.body and self.local_sdp is not None:
            try:
                self.remote_sdp = SessionDescription.parse(response.body)
                negotiation = parse_answer(self.local_sdp, self.remote_sdp)
            except SdpError as exc:
                log.info("%s: unreadable SDP answer: %s", self, exc)
                self.hangup(status=488)
                return
            if not negotiation.accepted:
                self.hangup(status=488)
                return
            self._apply(negotiation)
        self._emit(LegAnswered(self))

    def _send_ack(self) -> None:
        assert self.dialog is not None and self.invite is not None
        if self._ack is None:
            self._ack = self.dialog.create_ack(
                self.invite, self.control.endpoint.via_for(self.destination)
            )
        self.control.endpoint.send_stateless(self._ack, self.destination)

    def retransmitted_2xx(self) -> None:
        """A 2xx retransmission: our ACK was lost; send it again (RFC 3261 13.2.2.4)."""
        if self._ack is not None:
            with contextlib.suppress(Exception):
                self.control.endpoint.send_stateless(self._ack, self.destination)

    def transaction_failed(self, transaction: str, method: str) -> None:
        if transaction == self.transaction and not self.is_answered:
            self._finish("timeout", 408, by_remote=True)
            return
        super().transaction_failed(transaction, method)
