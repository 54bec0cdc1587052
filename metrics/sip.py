"""SIP metrics: counted in plain dicts on the hot path, exposed at scrape time.

``SipCounters`` is the endpoint's message observer; ``SipCollector`` turns it
and the live state of the stack into Prometheus families when /metrics is
scraped, so no Prometheus object is touched per message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sip import Request, Response

__all__ = ["SipCollector", "SipCounters"]

METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO")
"""Methods whose series exist from start-up (others appear when first seen)."""
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")


class SipCounters:
    """Counts requests by method and responses by method and code class.

    The common methods and every code class start at zero, so that a ratio
    such as 5xx over all responses has both series from the first scrape
    (a missing series would make the alert on it silently empty).
    """

    def __init__(self) -> None:
        self.requests_in: Counter[str] = Counter(dict.fromkeys(METHODS, 0))
        self.requests_out: Counter[str] = Counter(dict.fromkeys(METHODS, 0))
        answered = [(m, c) for m in METHODS if m != "ACK" for c in CODE_CLASSES]
        self.responses_in: Counter[tuple[str, str]] = Counter(dict.fromkeys(answered, 0))
        self.responses_out: Counter[tuple[str, str]] = Counter(dict.fromkeys(answered, 0))

    def incoming(self, message: Request | Response) -> None:
        """Count a parsed message."""
        if isinstance(message, Request):
            self.requests_in[message.method] += 1
        else:
            self.responses_in[(message.cseq.method, f"{message.status // 100}xx")] += 1

    def outgoing(self, data: bytes) -> None:
        """Count serialised bytes from their start line and CSeq, without parsing them."""
        if data.startswith(b"SIP/2.0 "):
            code_class = f"{data[8:9].decode('ascii', 'replace')}xx"
            self.responses_out[(_cseq_method(data), code_class)] += 1
        else:
            self.requests_out[data[: data.find(b" ")].decode("ascii", "replace")] += 1


def _cseq_method(data: bytes) -> str:
    # Our serialiser always writes "CSeq: <n> <METHOD>\r\n".
    start = data.find(b"\r\nCSeq: ")
    if start < 0:
        return "unknown"
    end = data.find(b"\r\n", start + 8)
    return data[start + 8 : end].rpartition(b" ")[2].decode("ascii", "replace")


class SipCollector(Collector):
    """Exposes SIP counters and gauges read from the running stack."""

    def __init__(
        self,
        counters: SipCounters,
        *,
        transactions_active: Callable[[], int],
        retransmissions: Callable[[], int],
        registrations_active: Callable[[], int],
        auth_failures: Callable[[], int],
        malformed: Callable[[], int],
        scanners_dropped: Callable[[], int],
        requests_throttled: Callable[[], int],
        source_blocks: Callable[[], int],
        sources_blocked: Callable[[], int],
    ) -> None:
        self.counters = counters
        self._gauges = {
            "sip_transactions_active": ("SIP transactions in progress", transactions_active),
            "sip_registrations_active": ("Registered contacts", registrations_active),
            "sip_sources_blocked": (
                "Source addresses whose requests are dropped for flooding",
                sources_blocked,
            ),
        }
        self._counters = {
            "sip_retransmissions": ("SIP messages retransmitted", retransmissions),
            "sip_auth_failures": ("Failed digest authentications", auth_failures),
            "sip_malformed_messages": ("Messages that failed to parse", malformed),
            "sip_scanner_requests_dropped": ("Requests from scanner user agents", scanners_dropped),
            "sip_requests_throttled": (
                "Requests dropped unparsed from flooding sources",
                requests_throttled,
            ),
            "sip_source_blocks": ("Times a source address was blocked for flooding", source_blocks),
        }

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Build the families for one scrape."""
        c = self.counters
        requests = CounterMetricFamily(
            "sip_requests", "SIP requests by method and direction", labels=["method", "direction"]
        )
        for direction, table in (("in", c.requests_in), ("out", c.requests_out)):
            for method, n in table.items():
                requests.add_metric([method, direction], n)
        yield requests
        responses = CounterMetricFamily(
            "sip_responses",
            "SIP responses by method, code class and direction",
            labels=["method", "code_class", "direction"],
        )
        for direction, rtable in (("in", c.responses_in), ("out", c.responses_out)):
            for (method, code_class), n in rtable.items():
                responses.add_metric([method, code_class, direction], n)
        yield responses
        for name, (doc, gauge_read) in self._gauges.items():
            yield GaugeMetricFamily(name, doc, value=gauge_read())
        for name, (doc, counter_read) in self._counters.items():
            yield CounterMetricFamily(name, doc, value=counter_read())
