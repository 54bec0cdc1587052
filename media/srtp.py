"""SRTP and SRTCP (RFC 3711) with the keys a DTLS handshake exported: :class:`SrtpSession`.

libsrtp does the cryptography (through pylibsrtp, a C binding); this module
names what the engine uses of it: one session per leg, protecting what we
send with our key and unprotecting what the peer sends with its own, any
SSRC either way (the browser's SSRC is not in its SDP when it uses
``a=msid`` alone, and a bridge may change ours). A packet that fails
authentication or replays raises :class:`SrtpError`, and the caller drops it.
"""

from __future__ import annotations

from typing import Final

import pylibsrtp

from .dtls import SrtpKeys

__all__ = ["SrtpError", "SrtpSession"]

_PROFILES: Final = {
    "SRTP_AES128_CM_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "SRTP_AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
}
# Packets may arrive this far out of order and still be accepted (RFC 3711 3.3.2).
_REPLAY_WINDOW: Final = 1024


class SrtpError(ValueError):
    """A packet that cannot be protected or fails authentication; libsrtp's reason."""


class SrtpSession:
    """Both directions of one SRTP association: protect ours, unprotect the peer's."""

    def __init__(self, keys: SrtpKeys) -> None:
        profile = _PROFILES.get(keys.profile)
        if profile is None:
            raise SrtpError(f"SRTP profile {keys.profile} is not supported")
        self.profile = keys.profile
        outbound = pylibsrtp.Policy(
            key=keys.local, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
        # A relay that restarts a stream (a new talkspurt from the player)
        # may resend a sequence number libsrtp has seen.
        outbound.allow_repeat_tx = True
        outbound.window_size = _REPLAY_WINDOW
        inbound = pylibsrtp.Policy(
            key=keys.remote, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
        )
        inbound.window_size = _REPLAY_WINDOW
        self._tx = pylibsrtp.Session(outbound)
        self._rx = pylibsrtp.Session(inbound)

    def protect(self, packet: bytes) -> bytes:
        """An RTP packet encrypted and authenticated for the peer."""
        try:
            return self._tx.protect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None

    def unprotect(self, packet: bytes) -> bytes:
        """The peer's SRTP packet as plain RTP; :class:`SrtpError` when it does not verify."""
        try:
            return self._rx.unprotect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        """An RTCP compound packet as SRTCP for the peer."""
        try:
            return self._tx.protect_rtcp(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """The peer's SRTCP packet as plain RTCP; :class:`SrtpError` when it does not verify."""
        try:
            return self._rx.unprotect_rtcp(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None
