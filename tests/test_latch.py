"""Symmetric RTP latching and the media timeout, driven by hand-made packet sources."""

from __future__ import annotations

import pytest

from media.latch import MediaTimeout, SymmetricLatch

SDP = ("192.168.1.34", 40012)  # what the caller's SDP says: behind NAT
NAT = ("203.0.113.5", 61000)  # where its packets really come from
STRANGER = ("198.51.100.9", 5004)
PEER_SSRC = 0x1234ABCD


def test_starts_at_the_sdp_address() -> None:
    latch = SymmetricLatch(SDP)
    assert latch.target == SDP
    assert not latch.latched


def test_latches_after_three_consecutive_packets_from_the_nat_address() -> None:
    latch = SymmetricLatch(SDP)
    assert [latch.receive(NAT, PEER_SSRC) for _ in range(3)] == [False, False, True]
    assert latch.target == NAT
    assert latch.latched
    assert latch.expected_ssrc == PEER_SSRC
    assert latch.receive(NAT, PEER_SSRC)


@pytest.mark.parametrize("count", [1, 5])
def test_the_number_of_packets_is_configurable(count: int) -> None:
    latch = SymmetricLatch(SDP, packets_to_latch=count)
    for _ in range(count - 1):
        assert not latch.receive(NAT, PEER_SSRC)
    assert latch.receive(NAT, PEER_SSRC)
    assert latch.target == NAT


def test_packets_from_the_sdp_address_need_no_latch_and_teach_the_ssrc() -> None:
    latch = SymmetricLatch(SDP)
    assert latch.receive(SDP, PEER_SSRC)
    assert latch.expected_ssrc == PEER_SSRC
    assert not latch.latched
    # Now a stranger with another SSRC can never take the stream.
    for _ in range(10):
        assert not latch.receive(STRANGER, 0xBAD)
    assert latch.target == SDP


def test_after_a_latch_only_the_known_ssrc_can_move_it() -> None:
    latch = SymmetricLatch(SDP)
    for _ in range(3):
        latch.receive(NAT, PEER_SSRC)
    for _ in range(10):
        assert not latch.receive(STRANGER, 0xBAD)
    assert latch.target == NAT
    # The peer's NAT rebinds to a new port: same SSRC, so it follows.
    rebound = (NAT[0], 61002)
    for _ in range(3):
        latch.receive(rebound, PEER_SSRC)
    assert latch.target == rebound


def test_packets_must_be_consecutive() -> None:
    latch = SymmetricLatch(SDP)
    latch.receive(SDP, PEER_SSRC)
    # A stranger who guessed the SSRC, interleaved with the real peer's
    # packets, never gets three in a row.
    for _ in range(20):
        assert not latch.receive(STRANGER, PEER_SSRC)
        assert not latch.receive(STRANGER, PEER_SSRC)
        assert latch.receive(SDP, PEER_SSRC)
    assert latch.target == SDP


def test_a_run_needs_one_source_and_one_ssrc() -> None:
    latch = SymmetricLatch(SDP)
    latch.receive(NAT, 1)
    latch.receive(NAT, 2)  # a new SSRC restarts the run
    latch.receive(NAT, 2)
    assert not latch.latched
    latch.receive(STRANGER, 2)  # and so does a new source
    latch.receive(NAT, 2)
    latch.receive(NAT, 2)
    assert not latch.latched
    assert latch.receive(NAT, 2)
    assert latch.target == NAT


def test_a_packet_with_the_wrong_ssrc_breaks_a_run() -> None:
    latch = SymmetricLatch(SDP, expected_ssrc=PEER_SSRC)
    latch.receive(NAT, PEER_SSRC)
    latch.receive(NAT, PEER_SSRC)
    latch.receive(STRANGER, 0xBAD)
    assert not latch.receive(NAT, PEER_SSRC)
    assert not latch.latched


def test_an_ssrc_from_sdp_is_required_from_the_start() -> None:
    latch = SymmetricLatch(SDP, expected_ssrc=PEER_SSRC)
    for _ in range(5):
        assert not latch.receive(STRANGER, 0xBAD)
    assert not latch.latched


def test_the_ssrc_follows_the_peer_at_its_address() -> None:
    latch = SymmetricLatch(SDP)
    for _ in range(3):
        latch.receive(NAT, PEER_SSRC)
    assert latch.receive(NAT, 0x5555)  # a transfer on the far side: new SSRC
    assert latch.expected_ssrc == 0x5555


def test_rebase_starts_over_from_new_sdp() -> None:
    latch = SymmetricLatch(SDP)
    for _ in range(3):
        latch.receive(NAT, PEER_SSRC)
    latch.rebase(("10.1.1.1", 30000))
    assert latch.target == ("10.1.1.1", 30000)
    assert not latch.latched and latch.expected_ssrc is None
    for _ in range(3):
        latch.receive(STRANGER, 0x77)
    assert latch.target == STRANGER


def test_latch_rejects_zero_packets() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SymmetricLatch(SDP, packets_to_latch=0)


def test_media_timeout_expires_after_silence() -> None:
    timeout = MediaTimeout(now=100.0, timeout=30.0)
    assert timeout.deadline == 130.0
    assert not timeout.expired(129.9)
    timeout.seen(110.0)
    assert timeout.deadline == 140.0
    assert not timeout.expired(139.99)
    assert timeout.expired(140.0)


def test_media_timeout_fires_when_no_rtp_ever_arrives() -> None:
    timeout = MediaTimeout(now=0.0, timeout=5.0)
    assert timeout.expired(5.0)


def test_media_timeout_ignores_a_stale_time_and_can_be_lengthened_on_hold() -> None:
    timeout = MediaTimeout(now=0.0, timeout=10.0)
    timeout.seen(8.0)
    timeout.seen(3.0)
    assert timeout.last_seen == 8.0
    timeout.timeout = 3600.0
    assert not timeout.expired(100.0)
    assert timeout.deadline == 3608.0


def test_media_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MediaTimeout(now=0.0, timeout=0.0)
