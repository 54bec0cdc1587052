"""The ICE and DTLS-SRTP lines of a WebRTC audio stream (RFC 8839, RFC 8842, RFC 5761).

A browser's audio is ``m=audio … UDP/TLS/RTP/SAVPF`` with ``a=ice-ufrag``,
``a=ice-pwd``, ``a=fingerprint``, ``a=setup``, ``a=rtcp-mux`` and its
candidates. :class:`SecureMedia` is one side's set of those values, read
from a description (media level first, then session level, as RFC 8839 5.4
and RFC 8122 5 allow) or written into one. The values stay text here: what
they mean (the ICE agent, the DTLS handshake) is media's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from ._sdp_parse import Attribute, Attributed, SdpError

__all__ = [
    "SECURE_PROTOS",
    "WEBRTC_PROTO",
    "SecureMedia",
    "Setup",
    "answer_setup",
    "has_ice",
]

WEBRTC_PROTO: Final = "UDP/TLS/RTP/SAVPF"
"""The profile browsers offer and we offer them (RFC 5764 8, JSEP 5.1.2)."""
SECURE_PROTOS: Final = frozenset({WEBRTC_PROTO, "RTP/SAVPF", "UDP/TLS/RTP/SAVP"})
"""Profiles answered as DTLS-SRTP: JSEP's, and the older spellings some stacks still send."""

Setup = Literal["actpass", "active", "passive"]
_SETUPS: Final = ("actpass", "active", "passive")


def answer_setup(offered: str) -> Setup:
    """Our ``a=setup`` in an answer to ``offered`` (RFC 5763 5, RFC 8842 5.2).

    ``actpass`` gets ``active``: RFC 5763 recommends it, so the handshake
    starts without waiting for the answer to arrive. Raises :class:`SdpError`
    for ``holdconn`` or anything unknown.
    """
    value = offered.lower()
    if value in ("actpass", "passive"):
        return "active"
    if value == "active":
        return "passive"
    raise SdpError(f"a=setup:{offered} cannot be answered (RFC 8842 5.2)")


@dataclass(frozen=True, slots=True)
class SecureMedia:
    """One side's ICE credentials, DTLS fingerprint and role, and candidates, as SDP text.

    ``fingerprint`` is an ``a=fingerprint`` value (``sha-256 AB:CD:…``),
    ``candidates`` ``a=candidate`` values. ``ice_lite`` goes at session
    level (RFC 8839 5.3). ``mid`` echoes the offer's ``a=mid`` in an answer.
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    setup: Setup
    candidates: tuple[str, ...] = ()
    ice_lite: bool = False
    mid: str | None = None
    rtcp_mux: bool = True

    @classmethod
    def read(cls, session: Attributed, media: Attributed) -> SecureMedia | None:
        """The stream's parameters; None when it has no ICE credentials or fingerprint.

        Raises :class:`SdpError` when some are there but not all, or a value
        is unusable: a stream that names DTLS-SRTP half-way cannot be set up.
        """

        def value(name: str) -> str | None:
            found = media.attribute(name) or session.attribute(name)
            return None if found is None else (found.value or "").strip()

        ufrag, pwd, fingerprint = value("ice-ufrag"), value("ice-pwd"), value("fingerprint")
        if ufrag is None and pwd is None and fingerprint is None:
            return None
        if not ufrag or not pwd:
            raise SdpError("a=ice-ufrag and a=ice-pwd are both needed (RFC 8839 5.4)")
        if not fingerprint or " " not in fingerprint:
            raise SdpError("a DTLS-SRTP stream needs a=fingerprint (RFC 8122 5)")
        # Absent, an offer's is actpass as browsers read it; an answerer that
        # leaves it out is active (RFC 4145 4), which answer_setup's caller decides.
        setup = (value("setup") or "actpass").lower()
        if setup not in _SETUPS:
            raise SdpError(f"a=setup:{setup} is not actpass, active or passive")
        mid = media.attribute("mid")
        return cls(
            ice_ufrag=ufrag,
            ice_pwd=pwd,
            fingerprint=fingerprint,
            setup=setup,  # type: ignore[arg-type]
            candidates=tuple((a.value or "").strip() for a in media.attributes_named("candidate")),
            ice_lite=session.attribute("ice-lite") is not None,
            mid=None if mid is None else (mid.value or "").strip(),
            rtcp_mux=media.attribute("rtcp-mux") is not None,
        )

    def media_attributes(self) -> list[Attribute]:
        """The media-level lines for our side of the stream."""
        lines: list[Attribute] = []
        if self.mid is not None:
            lines.append(Attribute("mid", self.mid))
        lines += [
            Attribute("ice-ufrag", self.ice_ufrag),
            Attribute("ice-pwd", self.ice_pwd),
            Attribute("fingerprint", self.fingerprint),
            Attribute("setup", self.setup),
        ]
        if self.rtcp_mux:
            lines.append(Attribute("rtcp-mux"))
        lines += (Attribute("candidate", c) for c in self.candidates)
        lines.append(Attribute("end-of-candidates"))
        return lines

    def session_attributes(self) -> list[Attribute]:
        """The session-level lines: ``a=ice-lite`` for a lite agent."""
        return [Attribute("ice-lite")] if self.ice_lite else []


def has_ice(levels: Iterable[Attributed]) -> bool:
    """Whether any of the levels carries ICE credentials (c=0.0.0.0 is then no hold)."""
    return any(level.attribute("ice-ufrag") is not None for level in levels)
