"""Stream framing: Content-Length framing, fragments, pipelining, RFC 5626 keep-alives."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.framing import FramingError, KeepAlive, StreamFramer
from sip.message import Request, Response, parse_message


def _message(n: int, body: bytes = b"", compact: bool = False) -> bytes:
    length = b"l" if compact else b"Content-Length"
    return (
        b"OPTIONS sip:agent%d@example.com SIP/2.0\r\n" % n
        + b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-%d\r\n" % n
        + b"From: <sip:caller@example.com>;tag=%d\r\n" % n
        + b"To: <sip:agent@example.com>\r\n"
        + b"Call-ID: framing-%d\r\n" % n
        + b"CSeq: %d OPTIONS\r\n" % (n + 1)
        + length
        + b": %d\r\n\r\n" % len(body)
        + body
    )


OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-ok\r\n"
    b"From: <sip:caller@example.com>;tag=1\r\n"
    b"To: <sip:agent@example.com>;tag=2\r\n"
    b"Call-ID: framing-ok\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _feed_all(framer: StreamFramer, pieces: list[bytes]) -> list[bytes | KeepAlive]:
    out: list[bytes | KeepAlive] = []
    for piece in pieces:
        out.extend(framer.feed(piece))
    return out


def test_one_message_in_one_feed() -> None:
    message = _message(1, b"hello")
    assert StreamFramer(65535).feed(message) == [message]
    parsed = parse_message(message, stream=True)
    assert isinstance(parsed, Request) and parsed.body == b"hello"


def test_message_fed_one_octet_at_a_time() -> None:
    message = _message(2, b"v=0\r\n\r\n" * 20)
    framer = StreamFramer(65535)
    out = _feed_all(framer, [message[i : i + 1] for i in range(len(message))])
    assert out == [message]
    assert framer.buffered == 0


def test_pipelined_messages_in_one_feed() -> None:
    messages = [_message(i, b"x" * i) for i in range(5)] + [OK]
    out = StreamFramer(65535).feed(b"".join(messages))
    assert out == messages
    assert isinstance(parse_message(out[-1], stream=True), Response)  # type: ignore[arg-type]


def test_body_may_contain_blank_lines_and_message_like_text() -> None:
    inner = _message(9)
    message = _message(3, inner)
    assert StreamFramer(65535).feed(message + OK) == [message, OK]


def test_compact_and_folded_content_length() -> None:
    compact = _message(4, b"abc", compact=True)
    folded = _message(5, b"abcd").replace(b"Content-Length: 4", b"content-LENGTH  :\r\n  4")
    assert StreamFramer(65535).feed(compact + folded) == [compact, folded]


def test_bare_lf_header_block() -> None:
    message = b"OPTIONS sip:a@example.com SIP/2.0\nl: 2\nVia: x\n\nhi"
    assert StreamFramer(65535).feed(message) == [message]


def test_double_crlf_is_a_ping_between_messages() -> None:
    first, second = _message(1), _message(2)
    out = StreamFramer(65535).feed(b"\r\n\r\n" + first + b"\r\n\r\n\r\n\r\n" + second)
    assert out == [KeepAlive(), first, KeepAlive(), KeepAlive(), second]


def test_single_crlf_between_messages_is_skipped() -> None:
    first, second = _message(1), _message(2)
    assert StreamFramer(65535).feed(first + b"\r\n" + second) == [first, second]


def test_ping_split_across_feeds() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KeepAlive()]
    assert framer.buffered == 0


def test_lone_crlf_waits_until_the_next_octet_decides() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(b"\r\n") == []
    message = _message(7)
    assert framer.feed(message) == [message]


def test_missing_content_length_closes_the_connection() -> None:
    message = _message(1).replace(b"Content-Length: 0\r\n", b"")
    framer = StreamFramer(65535)
    with pytest.raises(FramingError, match="missing Content-Length"):
        framer.feed(message)
    # The framer stays broken: the transport must close the connection.
    with pytest.raises(FramingError):
        framer.feed(_message(2))


@pytest.mark.parametrize("value", [b"-999", b"abc", b"1 2", b"", b"99999999999", b"\xb2"])
def test_invalid_content_length(value: bytes) -> None:
    message = _message(1).replace(b"Content-Length: 0", b"Content-Length: " + value)
    with pytest.raises(FramingError):
        StreamFramer(65535).feed(message)


def test_conflicting_content_lengths_rfc4475_mcl01() -> None:
    message = _message(1, b"hello").replace(
        b"Content-Length: 5\r\n", b"Content-Length: 13\r\nContent-Length: 5\r\n"
    )
    with pytest.raises(FramingError, match="conflicting"):
        StreamFramer(65535).feed(message)


def test_repeated_equal_content_length_frames_and_the_parser_answers_400() -> None:
    message = _message(1, b"hello").replace(
        b"Content-Length: 5\r\n", b"Content-Length: 5\r\nl: 5\r\n"
    )
    assert StreamFramer(65535).feed(message) == [message]


def test_content_length_beyond_the_limit() -> None:
    message = _message(1).replace(b"Content-Length: 0", b"Content-Length: 70000")
    with pytest.raises(FramingError, match="exceeds"):
        StreamFramer(65535).feed(message)


def test_header_block_beyond_the_limit() -> None:
    framer = StreamFramer(1000)
    framer.feed(b"OPTIONS sip:a@example.com SIP/2.0\r\n")
    with pytest.raises(FramingError, match="header block"):
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"a" * 50 + b"\r\n")


def test_limit_counts_from_the_message_start_not_the_connection() -> None:
    framer = StreamFramer(400)
    message = _message(1, b"z" * 100)
    assert len(message) < 400
    out = _feed_all(framer, [message] * 20)
    assert out == [message] * 20


def test_byte_by_byte_feeding_is_linear() -> None:
    # A 60 kB body fed one octet at a time: with a re-scan of the growing buffer
    # per feed this would be quadratic (seconds); linear it takes milliseconds.
    body = b"a" * 60000
    message = _message(1, body)
    framer = StreamFramer(65535)
    pieces = [message[i : i + 1] for i in range(len(message))]
    start = time.perf_counter()
    out = _feed_all(framer, pieces)
    elapsed = time.perf_counter() - start
    assert out == [message]
    assert elapsed < 2.0


def test_header_block_fed_byte_by_byte_is_linear() -> None:
    head = _message(1).replace(b"\r\n\r\n", b"\r\n" + b"X-Pad: aaaaaaaaaaaa\r\n" * 2500 + b"\r\n")
    framer = StreamFramer(len(head) + 1)
    start = time.perf_counter()
    out = _feed_all(framer, [head[i : i + 1] for i in range(len(head))])
    assert out == [head]
    assert time.perf_counter() - start < 2.0


def test_zero_or_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        StreamFramer(0)


_SEPARATORS = st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[bytes | KeepAlive], list[int]]:
    count = draw(st.integers(1, 5))
    stream = b""
    expected: list[bytes | KeepAlive] = []
    for i in range(count):
        separator = draw(_SEPARATORS)
        stream += separator
        if separator == b"\r\n\r\n":
            expected.append(KeepAlive())
        body = draw(st.binary(max_size=80))
        message = draw(st.sampled_from([_message(i, body), _message(i, body, compact=True)]))
        stream += message
        expected.append(message)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return stream, expected, cuts


@settings(max_examples=200, deadline=None)
@given(_streams())
def test_any_split_yields_exactly_the_messages(
    case: tuple[bytes, list[bytes | KeepAlive], list[int]],
) -> None:
    stream, expected, cuts = case
    bounds = [0, *cuts, len(stream)]
    pieces = [stream[a:b] for a, b in pairwise(bounds)]
    framer = StreamFramer(65535)
    assert _feed_all(framer, pieces) == expected
    assert framer.buffered == 0
    for item in expected:
        if isinstance(item, bytes):
            parse_message(item, stream=True)
