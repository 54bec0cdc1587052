"""Where to send a peer's RTP (symmetric RTP), and when its silence means it is gone.

A caller behind NAT puts a private address in its SDP; its packets arrive
from the public address the NAT chose, and only packets sent back to that
address reach it. :class:`SymmetricLatch` starts at the SDP address and moves
("latches") to a source once enough consecutive packets from it carry the
stream's SSRC. Requiring consecutive packets and the known SSRC is what keeps
a stranger spraying packets at the port (the "RTP Bleed" attack) from
stealing the stream: the real peer's packets, 50 a second, keep breaking the
stranger's run.

:class:`MediaTimeout` says when no RTP has arrived for too long, so the call
layer can hang up a call whose peer vanished without a BYE.

Both are sans-I/O: sources and times are passed in.
"""

from __future__ import annotations

__all__ = ["MediaTimeout", "SymmetricLatch"]


class SymmetricLatch:
    """The address to send a peer's RTP to, learnt from where its RTP comes from.

    ``target`` starts at ``sdp_address``. :meth:`receive` is told the source
    address and SSRC of each packet from the peer. ``packets_to_latch``
    consecutive packets from one other source, all with one SSRC, move
    ``target`` there. Once the stream's SSRC is known (from the first packet
    accepted from ``target``, from a latch, or given as ``expected_ssrc``,
    say from SDP ``a=ssrc``), only packets carrying it count towards a latch;
    before that any SSRC does. The SSRC follows the peer: a new SSRC from the
    ``target`` itself (a transfer on the far side) becomes the expected one.

    Addresses are ``(host, port)`` pairs compared for equality: the adapter
    trims the IPv6 flow and scope fields asyncio adds.
    """

    def __init__(
        self,
        sdp_address: tuple[str, int],
        *,
        packets_to_latch: int = 3,
        expected_ssrc: int | None = None,
    ) -> None:
        if packets_to_latch < 1:
            raise ValueError(f"packets_to_latch {packets_to_latch} must be at least 1")
        self.packets_to_latch = packets_to_latch
        self.target = sdp_address
        self.expected_ssrc = expected_ssrc
        self.latched = False
        """Whether ``target`` was learnt from packets rather than taken from SDP."""
        self._candidate: tuple[tuple[str, int], int] | None = None
        self._run = 0

    def receive(self, source: tuple[str, int], ssrc: int) -> bool:
        """Account for one packet; ``True`` if it came from the (possibly new) ``target``.

        A relay that wants to be strict drops packets for which this is
        ``False``; before the first latch it may prefer to forward them,
        since the caller's first few packets come from the NAT's address.
        """
        if source == self.target:
            self._candidate = None
            self._run = 0
            self.expected_ssrc = ssrc
            return True
        if self.expected_ssrc is not None and ssrc != self.expected_ssrc:
            # Not the peer's stream; it also breaks any run in progress, so
            # interleaved strangers cannot add up to a latch.
            self._candidate = None
            self._run = 0
            return False
        key = (source, ssrc)
        if key == self._candidate:
            self._run += 1
        else:
            self._candidate = key
            self._run = 1
        if self._run < self.packets_to_latch:
            return False
        self.target = source
        self.expected_ssrc = ssrc
        self.latched = True
        self._candidate = None
        self._run = 0
        return True

    def rebase(self, sdp_address: tuple[str, int], *, expected_ssrc: int | None = None) -> None:
        """Start over from a new SDP address (a re-INVITE moved the media)."""
        self.target = sdp_address
        self.expected_ssrc = expected_ssrc
        self.latched = False
        self._candidate = None
        self._run = 0


class MediaTimeout:
    """Whether a peer's RTP has stopped for ``timeout`` seconds.

    The clock starts at ``now`` (the call's answer), so a peer that never
    sends anything times out too. ``timeout`` may be changed at any time,
    for instance lengthened while the call is on hold and the peer is
    entitled to send nothing; :attr:`deadline` follows it.
    """

    def __init__(self, now: float, timeout: float = 30.0) -> None:
        if timeout <= 0:
            raise ValueError(f"media timeout {timeout} must be positive")
        self.timeout = timeout
        self.last_seen = now
        """When RTP last arrived (or the clock started)."""

    def seen(self, now: float) -> None:
        """RTP arrived at ``now``."""
        # Arrival times from one loop never go backwards, but a stale time
        # passed in must not shorten the wait.
        if now > self.last_seen:
            self.last_seen = now

    def expired(self, now: float) -> bool:
        """Whether ``timeout`` seconds have passed since RTP last arrived."""
        return now >= self.last_seen + self.timeout

    @property
    def deadline(self) -> float:
        """When the timeout fires if no RTP arrives before then, for the adapter's timer."""
        return self.last_seen + self.timeout
