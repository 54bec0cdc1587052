"""The engine's media resources: RTP ports, the one media clock, the prompt player.

Call legs take an RTP stream from here; the IVR's play items are translated
here into the player's. Text that a flow wants spoken and that no prompt
covers is rendered with espeak-ng once and cached, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ivr
from media import PortPool, RtpLeg
from media import player as mp
from media.clock import MediaClock

if TYPE_CHECKING:
    from media.dtls import DtlsCertificate
from sip.facing import FacingAddresses, is_wildcard

__all__ = ["MediaEngine"]

log = logging.getLogger(__name__)


class MediaEngine:
    """RTP ports, the media clock and the player, shared by every call of the engine."""

    def __init__(
        self,
        address: str,
        ports: tuple[int, int],
        *,
        prompts_dir: Path | None,
        cache_dir: Path,
        timeout: float = 30.0,
        voice: str = "en-us",
        advertised: str | None = None,
        facing: FacingAddresses | None = None,
        certificate: DtlsCertificate | None = None,
        handshake_timeout: float = 10.0,
        consent_timeout: float = 30.0,
    ) -> None:
        self.address = address
        """Where RTP sockets bind."""
        self.advertised = advertised
        """What SDP says instead of ``address`` (NAT); None: ``address`` itself."""
        self.facing = facing if facing is not None else FacingAddresses()
        self.pool = PortPool(*ports)
        self.timeout = timeout
        self.voice = voice
        self.clock = MediaClock(asyncio.get_running_loop())
        library = (
            mp.PromptLibrary.from_directory(prompts_dir)
            if prompts_dir is not None and (prompts_dir / mp.PROMPT_MANIFEST).is_file()
            else mp.PromptLibrary({})
        )
        self.player = mp.Player(self.clock, library)
        self.cache_dir = cache_dir
        self.legs_opened = 0
        self.on_leg_opened: Callable[[RtpLeg], None] | None = None
        """Told of every leg opened: the metrics count RTP streams through it."""
        self._certificate = certificate
        self.handshake_timeout = handshake_timeout
        self.consent_timeout = consent_timeout

    @property
    def certificate(self) -> DtlsCertificate:
        """The DTLS identity of every WebRTC leg: the configured one, or one made on first use."""
        if self._certificate is None:
            from media.dtls import DtlsCertificate

            self._certificate = DtlsCertificate.generate()
            log.info(
                "media: DTLS certificate generated, fingerprint %s", self._certificate.fingerprint
            )
        return self._certificate

    def sdp_address(self, peer_host: str) -> str:
        """The address for our SDP to the peer at ``peer_host``: the advertised one, the
        bound one, or for a wildcard bind the one on the route to the peer."""
        if self.advertised:
            return self.advertised
        if is_wildcard(self.address):
            return self.facing.toward(peer_host, v6=":" in self.address)
        return self.address

    async def open_leg(self, *, webrtc: bool = False) -> RtpLeg:
        """A plain RTP leg, or with ``webrtc`` one with ICE-lite and DTLS-SRTP (a browser's)."""
        leg: RtpLeg
        if webrtc:
            from media.webrtc import WebRtcLeg  # OpenSSL and libsrtp: loaded for browsers only

            leg = await WebRtcLeg.open_webrtc(
                self.pool,
                self.address,
                self.certificate,
                media_timeout=self.timeout,
                handshake_timeout=self.handshake_timeout,
                consent_timeout=self.consent_timeout,
            )
        else:
            leg = await RtpLeg.open(self.pool, self.address, media_timeout=self.timeout)
        self.legs_opened += 1
        if self.on_leg_opened is not None:
            self.on_leg_opened(leg)
        return leg

    def items(self, items: Sequence[ivr.PlayItem]) -> list[mp.PlayItem]:
        """The player's items for an IVR playlist (text must be rendered first)."""
        out: list[mp.PlayItem] = []
        for item in items:
            if isinstance(item, ivr.Prompt):
                out.append(mp.Prompt(item.name))
            elif isinstance(item, ivr.Number):
                out.append(mp.Number(item.value))
            elif isinstance(item, ivr.Digits):
                out.append(mp.Digits(item.value))
            elif isinstance(item, ivr.Silence):
                out.append(mp.Silence(item.ms))
            elif isinstance(item, ivr.Wav):
                out.append(mp.WavFile(item.path))
            elif isinstance(item, ivr.Text):
                out.append(mp.WavFile(self._text_path(item)))
        return out

    def _text_path(self, item: ivr.Text) -> Path:
        voice = item.voice or self.voice
        digest = hashlib.sha256(f"{voice}\0{item.text}".encode()).hexdigest()[:24]
        return self.cache_dir / f"tts-{digest}.wav"

    async def render(self, items: Sequence[ivr.PlayItem]) -> None:
        """Render every Text item that is not cached yet (espeak-ng, in a worker thread)."""
        for item in items:
            if isinstance(item, ivr.Text):
                path = self._text_path(item)
                if not path.is_file():
                    await asyncio.to_thread(self._espeak, item.text, item.voice or self.voice, path)

    def _espeak(self, text: str, voice: str, path: Path) -> None:
        import subprocess

        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise FileNotFoundError("espeak-ng is not installed (Debian package espeak-ng)")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".wav", delete=False) as tmp:
            subprocess.run(
                [espeak, "-v", voice, "-w", tmp.name, text],
                check=True,
                capture_output=True,
                timeout=30,
            )
        Path(tmp.name).replace(path)

    def close(self) -> None:
        self.player.close()
        self.clock.close()
        self.pool.close_parked()
