"""The RTP port pool: even ports, RTCP above, never twice, oldest-freed first."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.portpool import PortPool, PortPoolExhausted


def test_allocates_even_ports_with_rtcp_inside_the_range() -> None:
    pool = PortPool(10000, 10009)
    ports = [pool.allocate() for _ in range(pool.capacity)]
    assert ports == [10000, 10002, 10004, 10006, 10008]
    assert all(port + 1 <= 10009 for port in ports)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (10001, 10010, [10002, 10004, 10006, 10008]),  # odd low rounds up; 10010 has no 10011
        (10000, 10001, [10000]),
        (65534, 65535, [65534]),
    ],
)
def test_range_edges(low: int, high: int, expected: list[int]) -> None:
    pool = PortPool(low, high)
    assert pool.capacity == len(expected)
    assert [pool.allocate() for _ in expected] == expected


@pytest.mark.parametrize(("low", "high"), [(10000, 10000), (10001, 10002), (0, 10), (20, 10)])
def test_rejects_a_range_without_a_pair(low: int, high: int) -> None:
    with pytest.raises(ValueError, match=f"{low}-{high}"):
        PortPool(low, high)


def test_exhaustion_raises_and_a_release_makes_room() -> None:
    pool = PortPool(20000, 20005)
    first, second, third = pool.allocate(), pool.allocate(), pool.allocate()
    assert (pool.in_use, pool.available) == (3, 0)
    with pytest.raises(PortPoolExhausted, match="all 3 RTP port pairs in 20000-20005"):
        pool.allocate()
    pool.release(second)
    assert pool.allocate() == second
    assert {first, third} <= {20000, 20002, 20004}


def test_a_released_port_is_reused_last() -> None:
    pool = PortPool(30000, 30009)
    first = pool.allocate()
    pool.release(first)
    # Every other free port comes first, so stray packets of the old call
    # have had time to stop before the port carries a new one.
    assert [pool.allocate() for _ in range(4)] == [30002, 30004, 30006, 30008]
    assert pool.allocate() == first


def test_release_of_a_port_not_allocated_is_an_error() -> None:
    pool = PortPool(40000, 40009)
    port = pool.allocate()
    assert port in pool
    pool.release(port)
    assert port not in pool
    with pytest.raises(ValueError, match="40000 is not allocated"):
        pool.release(port)
    with pytest.raises(ValueError, match="40001 is not allocated"):
        pool.release(40001)


@given(st.lists(st.booleans(), max_size=200), st.randoms(use_true_random=False))
def test_never_hands_out_a_port_twice(ops: list[bool], rnd: random.Random) -> None:
    pool = PortPool(50000, 50019)
    held: set[int] = set()
    for allocate in ops:
        if allocate:
            if len(held) == pool.capacity:
                with pytest.raises(PortPoolExhausted):
                    pool.allocate()
                continue
            port = pool.allocate()
            assert port not in held
            assert port % 2 == 0 and 50000 <= port < port + 1 <= 50019
            held.add(port)
        elif held:
            port = rnd.choice(sorted(held))
            pool.release(port)
            held.remove(port)
        assert pool.in_use == len(held)
        assert pool.available == pool.capacity - len(held)


class Bound:
    """A stand-in for a closed leg's sockets: counts its closing."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_parked_pair_is_reused_after_its_rest_oldest_first() -> None:
    pool = PortPool(10000, 10011, rest=4.0, max_age=30.0)
    a, b = pool.allocate(), pool.allocate()
    first, second = Bound(), Bound()
    pool.park(a, "127.0.0.1", first, now=100.0)
    pool.park(b, "127.0.0.1", second, now=101.0)
    assert (pool.in_use, pool.parked, a in pool) == (0, 2, False)
    assert pool.unpark("127.0.0.1", now=103.9) is None  # not rested yet
    assert pool.unpark("::1", now=104.0) is None  # another address has none
    assert pool.unpark("127.0.0.1", now=104.0) == (a, first)
    assert (pool.in_use, pool.parked, a in pool) == (1, 1, True)
    assert first.closed == 0
    pool.release(a)  # a reused pair ends as any allocated one
    assert pool.unpark("127.0.0.1", now=105.0) == (b, second)


def test_parked_pairs_close_when_old_too_many_or_their_ports_are_needed() -> None:
    pool = PortPool(10000, 10005, rest=0.0, max_age=30.0, max_parked=2)  # three pairs
    ports = [pool.allocate() for _ in range(3)]
    bound = [Bound() for _ in ports]
    for i, (port, item) in enumerate(zip(ports, bound, strict=True)):
        pool.park(port, "127.0.0.1", item, now=float(i))
    # Over max_parked: the oldest is closed and its port freed.
    assert [b.closed for b in bound] == [1, 0, 0]
    assert (pool.parked, pool.available) == (2, 1)
    # The pool is short of free ports: allocate() closes the oldest parked pair.
    assert pool.allocate() == ports[0]
    assert pool.allocate() == ports[1] and bound[1].closed == 1
    # Older than max_age: closed on the next look.
    pool.expire(now=40.0)
    assert bound[2].closed == 1 and pool.parked == 0 and pool.available == 1
    with pytest.raises(ValueError):
        pool.park(ports[2], "127.0.0.1", Bound(), now=41.0)  # not allocated


def test_closing_the_parked_pairs_frees_every_port() -> None:
    pool = PortPool(10000, 10005)
    bound = []
    for _ in range(3):
        item = Bound()
        pool.park(pool.allocate(), "127.0.0.1", item, now=0.0)
        bound.append(item)
    pool.close_parked()
    assert [b.closed for b in bound] == [1, 1, 1]
    assert (pool.parked, pool.in_use, pool.available) == (0, 0, 3)
