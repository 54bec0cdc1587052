# Types of the C extension media/_fastrtp_src/ (see module.c).
from collections.abc import Callable
from typing import Any

class ReceiverStatsCore:
    ssrc: int
    @property
    def clock_rate(self) -> int: ...
    @property
    def fraction_lost(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def jitter(self) -> float: ...
    @property
    def valid(self) -> bool: ...
    @property
    def expected(self) -> int: ...
    @property
    def cumulative_lost(self) -> int: ...
    @property
    def extended_highest_sequence(self) -> int: ...
    @property
    def jitter_seconds(self) -> float: ...
    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        *,
        min_sequential: int = 2,
        max_dropout: int = 3000,
        max_misorder: int = 100,
    ) -> None: ...
    def update(self, sequence_number: int, timestamp: int, arrival: float, /) -> bool: ...
    def sender_report_received(self, ntp_timestamp: int, arrival: float) -> None: ...
    def _report(self, now: float, /) -> tuple[int, int, int, int, int, int, int] | None: ...

class SenderStateCore:
    ssrc: int
    sequence_number: int
    timestamp: int
    packet_count: int
    octet_count: int
    @property
    def clock_rate(self) -> int: ...
    def __init__(self, clock_rate: int) -> None: ...
    def build(
        self, payload: bytes, payload_type: int, samples: int, *, marker: bool = False
    ) -> bytes: ...
    def skip(self, samples: int, /) -> None: ...
    def _advance(self, octets: int, samples: int, /) -> None: ...

class Relay:
    @property
    def relayed(self) -> int: ...
    @property
    def send_errors(self) -> int: ...
    def __init__(
        self,
        *,
        slow: Callable[[bytes, tuple[str, int]], None],
        stats: ReceiverStatsCore,
        source_target: tuple[str, int] | None,
        source_pt: int,
        source_te: int | None,
        peer_ssrc: int | None,
        sender: SenderStateCore,
        fd: int,
        target: tuple[str, int] | None,
        sending: bool,
        out_pt: int,
        out_te: int | None,
        table: bytes | None,
        channel: Any,
        restamp: Any,
    ) -> None: ...
    def forward(self, data: bytes, arrival: float, /) -> None: ...

class Port:
    handler: Relay | Callable[[bytes, tuple[str, int]], None] | None
    @property
    def fd(self) -> int: ...
    @property
    def fast_packets(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def last_arrival(self) -> float: ...
    def __init__(self, fd: int) -> None: ...
    def readable(self) -> None: ...
    def reset(self) -> None: ...

def place(
    items: list[float | bytes],
    table: bytes,
    origin: float,
    rate: int,
    tolerance: int,
    next_pos: int | None,
    next_ts: int,
    /,
) -> tuple[list[tuple[int, bytes]], int | None, int]: ...
def mix(
    written: int,
    upto: int,
    pendings: list[Any],
    runs: list[list[tuple[int, Any]]],
    /,
) -> tuple[bytes, list[bytes]]: ...
