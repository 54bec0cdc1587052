"""Overload control: the guard on a fake clock, its RFC 7339 feedback, and call control using it.

The guard (acd/overload.py) is sans-I/O, so time and the load samples are
plain arguments here: a token bucket for the call rate, a lag and CPU
control that sheds a growing share of new calls and recovers step by step,
and the Via parameters that tell an upstream proxy how much to cut. Call
control is driven with a fake endpoint (as in tests/test_call_shutdown.py):
what matters is the response it sends to an INVITE it refuses.
tests/test_overload_sipp.py shows the same against SIPp and a real engine.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from acd.calls import CallControl
from acd.config import Config
from acd.overload import REASONS, OverloadGuard, OverloadPolicy, Refusal
from acd.sipapp import ALLOW
from metrics.loop import LoopLagProbe
from metrics.overload import OverloadCollector
from sip import Address, RequestReceived, Response, make_response
from sip.headers import Via
from sip.message import parse_message
from sip.overload import LossFeedback, offers_loss

RATE_ONLY = {"max_loop_lag": None, "max_cpu": None}


def guard(**policy: object) -> OverloadGuard:
    return OverloadGuard(OverloadPolicy(**policy))  # type: ignore[arg-type]


def admitted(g: OverloadGuard, times: list[float], active: int = 0) -> list[Refusal | None]:
    return [g.admit(t, active) for t in times]


def overload(
    g: OverloadGuard, start: float, samples: int, *, lag: float = 0.0, cpu: float = 0.0
) -> float:
    """``samples`` load samples half a second apart from ``start``; returns the next time."""
    now = start
    for _ in range(samples):
        now += 0.5
        g.sample(now, lag, cpu)
    return now


# -- the call rate: a token bucket ---------------------------------------------------------------


def test_the_bucket_admits_a_burst_then_the_rate() -> None:
    g = guard(calls_per_second=4.0, burst=4, **RATE_ONLY)
    burst = admitted(g, [0.0] * 6)
    assert burst[:4] == [None] * 4
    assert burst[4:] == [Refusal("rate", 1)] * 2
    # One token every 0.25 s: a call at each, and none in between.
    assert g.admit(0.125, 0) == Refusal("rate", 1)
    assert g.admit(0.25, 0) is None
    assert g.admit(0.375, 0) == Refusal("rate", 1)
    assert g.admit(0.5, 0) is None
    assert g.refused["rate"] == 4


def test_the_bucket_refills_to_its_burst_and_no_further() -> None:
    g = guard(calls_per_second=4.0, burst=3, **RATE_ONLY)
    assert admitted(g, [0.0] * 3) == [None] * 3
    # A minute idle earns 240 tokens, of which the bucket holds 3.
    results = admitted(g, [60.0] * 5)
    assert results.count(None) == 3
    assert results[3:] == [Refusal("rate", 1)] * 2


def test_over_a_long_run_admitted_calls_follow_the_rate() -> None:
    g = guard(calls_per_second=4.0, burst=4, **RATE_ONLY)
    arrivals = [n / 16 for n in range(400)]  # 16 calls/s for 25 s, four times the rate
    let_in = sum(1 for r in admitted(g, arrivals) if r is None)
    assert let_in == 4 + math.floor(4 * arrivals[-1])  # the burst, then 4 a second
    assert g.refused["rate"] == 400 - let_in


def test_burst_defaults_to_one_second_of_calls() -> None:
    assert OverloadPolicy(calls_per_second=20.0).bucket_size == 20
    assert OverloadPolicy(calls_per_second=0.5).bucket_size == 1  # at least one call
    assert OverloadPolicy().bucket_size == math.inf
    g = guard(calls_per_second=20.0, **RATE_ONLY)
    assert admitted(g, [0.0] * 21).count(None) == 20


def test_retry_after_says_when_the_next_call_would_pass() -> None:
    g = guard(calls_per_second=0.125, burst=1, **RATE_ONLY)
    assert g.admit(0.0, 0) is None
    assert g.admit(0.0, 0) == Refusal("rate", 8)
    assert g.admit(6.0, 0) == Refusal("rate", 2)  # 0.75 of a token by then
    assert g.admit(8.0, 0) is None


def test_max_calls_comes_first_and_takes_no_token() -> None:
    g = guard(max_calls=2, calls_per_second=1.0, burst=1, retry_after=7, **RATE_ONLY)
    assert g.admit(0.0, 2) == Refusal("calls", 7)
    assert g.admit(0.0, 1) is None  # the token was still there
    assert g.refused == {"calls": 1, "rate": 0, "lag": 0, "cpu": 0}


def test_without_limits_everything_is_admitted() -> None:
    g = guard(max_loop_lag=None, max_cpu=None)
    overload(g, 0.0, 20, lag=5.0, cpu=1.0)
    assert not g.shedding
    assert admitted(g, [10.0] * 1000) == [None] * 1000


def test_the_policy_comes_from_the_calls_section() -> None:
    assert OverloadPolicy.from_config(Config().calls) == OverloadPolicy()
    calls = Config.model_validate(
        {"calls": {"max_calls_per_second": 40, "burst": 80, "max_cpu": None, "retry_after": 2}}
    ).calls
    policy = OverloadPolicy.from_config(calls)
    assert (policy.calls_per_second, policy.bucket_size, policy.max_cpu) == (40, 80, None)
    assert (policy.max_loop_lag, policy.retry_after) == (0.25, 2)


def test_policy_errors() -> None:
    with pytest.raises(ValueError, match="burst needs calls_per_second"):
        OverloadPolicy(burst=10)
    with pytest.raises(ValueError, match="max_decrease"):
        OverloadPolicy(decrease=0.4, max_decrease=0.5)


# -- lag and CPU: shed a share, recover step by step ----------------------------------------------


def test_a_single_lag_spike_sheds_nothing() -> None:
    g = guard()
    g.sample(0.5, 0.3, 0.2)  # one probe 300 ms late: a collection, a slow disk
    g.sample(1.0, 0.0, 0.2)
    assert 0.0 < g.lag < 0.25
    assert not g.shedding and g.shed_ratio == 0.0


def test_sustained_lag_sheds_a_growing_share() -> None:
    g = guard()
    now = overload(g, 0.0, 1, lag=0.3)
    assert not g.shedding  # the average is still under 250 ms
    shares = []
    for _ in range(4):
        now = overload(g, now, 1, lag=0.3)
        shares.append(g.admitted_share)
    assert g.cause == "lag"
    assert shares[0] == pytest.approx(0.8)
    assert shares == sorted(shares, reverse=True)
    assert g.admit(now, 0) in (None, Refusal("lag", 5))


def test_cpu_over_the_limit_sheds_for_cpu() -> None:
    g = guard()
    overload(g, 0.0, 2, cpu=1.0)
    assert not g.shedding  # the average has not reached 90 % yet
    overload(g, 1.0, 2, cpu=1.0)
    assert g.cause == "cpu"
    assert g.shedding
    # Saturated CPU says nothing about how far over capacity: 20 % less a sample.
    assert g.admitted_share == pytest.approx(0.8**2)


def test_far_over_the_limit_at_most_halves_a_sample() -> None:
    g = guard()
    g.sample(0.5, 10.0, 0.0)  # a loop that stalled for ten seconds
    assert g.admitted_share == pytest.approx(0.5)


def test_the_shed_share_is_exact_and_evenly_spread() -> None:
    g = guard()
    g.admitted_share = 0.75  # as a few samples over the limit would leave it
    decisions = admitted(g, [1.0] * 1000)
    refused = [n for n, r in enumerate(decisions) if r is not None]
    assert len(refused) == 250
    assert {b - a for a, b in itertools.pairwise(refused)} == {4}
    assert g.refused["cpu"] == 250


def test_shed_calls_take_no_token_from_the_rate_limit() -> None:
    g = guard(calls_per_second=1.0, burst=2)
    g.admitted_share = 0.5
    decisions = admitted(g, [0.0] * 4)
    assert [r.reason if r else None for r in decisions] == [None, "cpu", None, "cpu"]


def test_hysteresis_holds_between_the_thresholds_then_recovers_step_by_step() -> None:
    g = guard()
    now = overload(g, 0.0, 4, cpu=1.0)
    low = g.admitted_share
    assert low < 0.8
    # At 85 % of a core (94 % of the 90 % limit) nothing changes: no flapping.
    now = overload(g, now, 10, cpu=0.85)
    assert g.admitted_share == low
    # Comfortably under: 5 points more of new calls every sample, until all.
    now = overload(g, now, 6, cpu=0.3)
    assert g.admitted_share > low
    steps = []
    while g.shedding:
        before = g.admitted_share
        now = overload(g, now, 1, cpu=0.3)
        steps.append(g.admitted_share - before)
    assert all(step <= 0.05 + 1e-9 for step in steps)
    assert g.admitted_share == 1.0
    assert admitted(g, [now] * 100) == [None] * 100


def test_overload_returning_during_recovery_sheds_again() -> None:
    g = guard()
    now = overload(g, 0.0, 5, lag=1.0)
    now = overload(g, now, 10, lag=0.0)
    recovering = g.admitted_share
    assert g.shedding
    overload(g, now, 3, lag=1.0)
    assert g.admitted_share < recovering


# -- RFC 7339 feedback -------------------------------------------------------------------------


def test_feedback_while_shedding_then_a_stop_then_nothing() -> None:
    g = guard()
    assert g.feedback(0.0) is None
    now = overload(g, 0.0, 4, cpu=1.0)
    feedback = g.feedback(now)
    assert feedback == LossFeedback(reduction=36, validity_ms=2000, seq=g.changed_at)
    while g.shedding:
        now = overload(g, now, 1, cpu=0.1)
    ended = g.changed_at
    assert ended == now
    # A proxy may still apply the last reduction for 2 s: tell it overload is over.
    assert g.feedback(now) == LossFeedback(reduction=0, validity_ms=0, seq=ended)
    assert g.feedback(ended + 1.9) == LossFeedback(reduction=0, validity_ms=0, seq=ended)
    assert g.feedback(ended + 2.0) is None


def test_oc_seq_grows_with_every_new_value() -> None:
    g = guard()
    seqs = []
    now = 0.0
    for _ in range(4):
        now = overload(g, now, 1, cpu=1.0)
        feedback = g.feedback(now)
        if feedback is not None:
            seqs.append(feedback.seq)
    assert seqs == sorted(set(seqs)) and len(seqs) >= 2


@pytest.mark.parametrize(
    "text, offers",
    [
        ("SIP/2.0/UDP p1.example.net;branch=z9hG4bK1;oc", True),
        ('SIP/2.0/UDP p1.example.net;branch=z9hG4bK1;oc;oc-algo="loss,A"', True),
        ('SIP/2.0/UDP p1.example.net;branch=z9hG4bK1;oc;oc-algo="A,B"', False),
        ("SIP/2.0/UDP p1.example.net;branch=z9hG4bK1", False),
    ],
)
def test_which_clients_offer_loss_based_overload_control(text: str, offers: bool) -> None:
    assert offers_loss(Via.parse(text)) is offers


def test_feedback_is_written_into_the_top_via_and_every_response_copies_it() -> None:
    request = parse_message(
        INVITE.replace(
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-oc-1\r\n",
            b'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-oc-1;oc;oc-algo="loss,A",'
            b" SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-first\r\n",
        )
    )
    assert LossFeedback(20, 500, 1282321615.7812).answer(request)  # type: ignore[arg-type]
    for status in (180, 200, 503):
        response = make_response(request, status)  # type: ignore[arg-type]
        top, second = response.vias
        assert top.params == {
            "branch": "z9hG4bK-oc-1",
            "oc": "20",
            "oc-algo": '"loss"',
            "oc-validity": "500",
            "oc-seq": "1282321615.781",
        }
        assert second.params == {"branch": "z9hG4bK-first"}
    wire = make_response(request, 503).serialize().decode()  # type: ignore[arg-type]
    assert (
        'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-oc-1;oc=20;oc-algo="loss";'
        "oc-validity=500;oc-seq=1282321615.781, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-first\r\n"
    ) in wire


def test_a_client_without_oc_gets_no_feedback() -> None:
    request = parse_message(INVITE)
    assert not LossFeedback(20, 500, 1.0).answer(request)  # type: ignore[arg-type]
    assert "oc" not in make_response(request, 503).top_via.params  # type: ignore[arg-type]


@pytest.mark.parametrize("reduction", [-1, 101])
def test_a_reduction_is_a_percentage(reduction: int) -> None:
    with pytest.raises(ValueError, match="percentage"):
        LossFeedback(reduction, 500, 1.0)


# -- call control --------------------------------------------------------------------------------

INVITE = (
    b"INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-oc-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+3225550100@127.0.0.1>;tag=caller-1\r\n"
    b"To: <sip:100@127.0.0.1>\r\n"
    b"Call-ID: overload-1@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:caller@127.0.0.1:5070>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


class FakeEndpoint:
    """Keeps what call control answers (no sockets needed)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Response]] = []

    def send_response(self, transaction: str, response: Response) -> None:
        self.sent.append((transaction, response))


def control(guard: OverloadGuard) -> tuple[CallControl, FakeEndpoint]:
    endpoint = FakeEndpoint()
    calls = CallControl(
        endpoint,  # type: ignore[arg-type]
        Config(),
        None,  # type: ignore[arg-type]  # no media: a refused call never gets any
        allow=ALLOW,
        overload=guard,
    )
    return calls, endpoint


def invite(transaction: str, via_params: bytes = b"") -> RequestReceived:
    text = INVITE.replace(
        b"branch=z9hG4bK-oc-1", b"branch=z9hG4bK-" + transaction.encode() + via_params
    )
    request = parse_message(text)
    return RequestReceived(request, transaction, Address("UDP", "127.0.0.1", 5070))  # type: ignore[arg-type]


def spent_bucket(rate: float, **policy: object) -> OverloadGuard:
    """A guard whose rate limit has just let its one call through."""
    g = guard(calls_per_second=rate, burst=1, **policy)
    assert g.admit(asyncio.get_running_loop().time(), 0) is None
    return g


async def test_a_new_call_over_the_rate_gets_503_with_retry_after_and_no_call() -> None:
    g = spent_bucket(1.0, **RATE_ONLY)
    calls, endpoint = control(g)
    assert calls.new_call(invite("t1"), user=None, trunk=None) is None
    ((transaction, response),) = endpoint.sent
    assert (transaction, response.status) == ("t1", 503)
    assert response.headers.get("Retry-After") == "1"
    assert "oc" not in response.top_via.params
    assert calls.calls == {} and calls.calls_refused == 1 and calls.calls_started == 0
    assert g.refused["rate"] == 1


async def test_a_shed_call_tells_an_overload_control_proxy_how_much_to_cut() -> None:
    # Every second call is shed for CPU; the others meet a spent rate limit, so that
    # no call is made: all four get 503, and all four carry the feedback.
    g = spent_bucket(0.001)
    overload(g, asyncio.get_running_loop().time() - 10.0, 5, cpu=1.0)
    g.admitted_share = 0.5
    calls, endpoint = control(g)
    for n in range(4):
        assert calls.new_call(invite(f"t{n}", b";oc"), user=None, trunk=None) is None
    retry_after = [r.headers.get("Retry-After") for _, r in endpoint.sent]
    assert retry_after == ["1000", "5", "1000", "5"]
    for _, response in endpoint.sent:
        assert response.status == 503
        via = response.top_via
        assert (via.params["oc"], via.params["oc-algo"], via.params["oc-validity"]) == (
            "50",
            '"loss"',
            "2000",
        )
        # oc-seq is wall time: a restarted node's values still grow.
        assert float(via.params["oc-seq"] or 0) > 1.7e9
    assert (g.refused["cpu"], g.refused["rate"]) == (2, 2)


async def test_refusals_show_in_the_metrics() -> None:
    g = guard(calls_per_second=1.0, burst=1, **RATE_ONLY)
    admitted(g, [0.0] * 3)
    g.admitted_share = 0.25
    registry = CollectorRegistry()
    registry.register(OverloadCollector(g))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    refused = {s.labels["reason"]: s.value for s in families["acd_calls_refused"].samples}
    assert refused == {"calls": 0, "rate": 2, "lag": 0, "cpu": 0}
    assert set(refused) == set(REASONS)
    (shed,) = families["acd_overload_shed_ratio"].samples
    assert shed.value == 0.75


# -- the probe that feeds the guard ------------------------------------------------------------


async def test_the_lag_probe_samples_cpu_share_for_the_guard() -> None:
    cpu_seconds = itertools.count(10.0, 0.04)
    seen: list[tuple[float, float, float]] = []
    got = asyncio.Event()

    def on_sample(now: float, lag: float, cpu: float) -> None:
        seen.append((now, lag, cpu))
        if len(seen) == 2:
            got.set()

    probe = LoopLagProbe(interval=0.05, on_sample=on_sample, cpu_clock=cpu_seconds.__next__)
    probe.start()
    try:
        await asyncio.wait_for(got.wait(), 10)
    finally:
        probe.stop()
    (first, lag, share), (second, _, _) = seen[:2]
    assert lag >= 0.0
    # 40 ms of CPU per sample over about the 50 ms interval.
    assert 0.5 < share < 1.0
    assert second > first
