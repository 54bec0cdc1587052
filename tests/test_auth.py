"""Digest authentication: RFC 7616 vectors, server/client round trips, nonce and nc rules."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.auth import (
    AuthHeaderError,
    AuthResult,
    Challenge,
    Credentials,
    DigestAuthenticator,
    NonceManager,
    NonceStatus,
    build_authorization,
    ha1,
    parse_challenge,
    parse_credentials,
)

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "pbx.example.com"
URI = "sip:pbx.example.com"
USERS = {"alice": "correct horse"}

# RFC 7616 §3.9.1
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_RESPONSES = {
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = USERS.get(username)
    return None if password is None else ha1(username, realm, password, algorithm)


def make_server(**kwargs: object) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, NonceManager(SECRET), **kwargs)  # type: ignore[arg-type]


def answer(
    challenge: str,
    username: str = "alice",
    password: str = "correct horse",
    nc: int = 1,
    method: str = "REGISTER",
) -> Credentials:
    value = build_authorization(
        parse_challenge(challenge), method, URI, username, password, "0a4f113b", nc
    )
    return parse_credentials(value)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_rfc7616_example(algorithm: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="{RFC_REALM}",\r\n qop="auth, auth-int",\r\n'
        f" algorithm={algorithm},\r\n"
        f' nonce="{RFC_NONCE}",\r\n opaque="{RFC_OPAQUE}"'
    )
    assert challenge == Challenge(RFC_REALM, RFC_NONCE, algorithm, ("auth", "auth-int"), RFC_OPAQUE)
    value = build_authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC_CNONCE
    )
    creds = parse_credentials(value)
    assert creds == Credentials(
        username="Mufasa",
        realm=RFC_REALM,
        nonce=RFC_NONCE,
        uri="/dir/index.html",
        response=RFC_RESPONSES[algorithm],
        algorithm=algorithm,
        cnonce=RFC_CNONCE,
        nc="00000001",
        qop="auth",
        opaque=RFC_OPAQUE,
    )
    assert "qop=auth," in value and "nc=00000001" in value  # unquoted, as RFC 7616 §3.4


def test_parses_rfc7616_authorization_header() -> None:
    creds = parse_credentials(
        'Digest username="Mufasa",\r\n realm="http-auth@example.org",\r\n'
        ' uri="/dir/index.html",\r\n algorithm=MD5,\r\n'
        f' nonce="{RFC_NONCE}",\r\n nc=00000001,\r\n cnonce="{RFC_CNONCE}",\r\n'
        f' qop=auth,\r\n response="{RFC_RESPONSES["MD5"]}",\r\n opaque="{RFC_OPAQUE}"'
    )
    assert creds.response == RFC_RESPONSES["MD5"]
    assert (creds.nc, creds.qop, creds.algorithm) == ("00000001", "auth", "MD5")


def test_challenges_follow_the_configured_order_with_one_nonce() -> None:
    md5_first = DigestAuthenticator(REALM, NonceManager(b"k" * 32), ("MD5", "SHA-256"))
    assert [parse_challenge(v).algorithm for v in md5_first.challenges(0.0)] == ["MD5", "SHA-256"]
    values = make_server().challenges(now=1000.0)
    parsed = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in parsed] == ["SHA-256", "MD5"]
    assert all(c.qop == ("auth",) and c.realm == REALM and not c.stale for c in parsed)
    assert parsed[0].nonce == parsed[1].nonce
    assert values[0].startswith(f'Digest realm="{REALM}", nonce="')
    assert values[0].endswith('algorithm=SHA-256, qop="auth"')
    stale = make_server().challenges(now=1000.0, stale=True)
    assert all(v.endswith(", stale=true") and parse_challenge(v).stale for v in stale)


@pytest.mark.parametrize("index", [0, 1])
def test_round_trip(index: int) -> None:
    server = make_server()
    challenge = server.challenges(now=1000.0)[index]
    result = server.verify("REGISTER", answer(challenge), lookup, now=1001.0)
    assert result == AuthResult(ok=True, stale=False, username="alice", reason="authenticated")


@pytest.mark.parametrize("algorithm", ["SHA-256-sess", "MD5-sess"])
def test_sess_variants_round_trip(algorithm: str) -> None:
    server = make_server(algorithms=(algorithm,))
    (challenge,) = server.challenges(now=0.0)
    assert server.verify("INVITE", answer(challenge, method="INVITE"), lookup, 1.0).ok


def test_method_is_part_of_the_digest() -> None:
    server = make_server()
    creds = answer(server.challenges(now=0.0)[0], method="REGISTER")
    assert not server.verify("INVITE", creds, lookup, 1.0).ok


def test_legacy_md5_without_qop_is_accepted() -> None:
    server = make_server()
    nonce = parse_challenge(server.challenges(now=0.0)[1]).nonce
    legacy = parse_challenge(f'Digest realm="{REALM}", nonce="{nonce}"')  # RFC 2069 style
    creds = parse_credentials(
        build_authorization(legacy, "REGISTER", URI, "alice", "correct horse", "unused")
    )
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert server.verify("REGISTER", creds, lookup, 1.0).ok
    no_qop_sha = dataclasses.replace(creds, algorithm="SHA-256")
    assert server.verify("REGISTER", no_qop_sha, lookup, 1.0).reason == "qop missing"


def test_stale_nonce_gives_stale_only_with_right_password() -> None:
    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    result = server.verify("REGISTER", answer(challenge), lookup, now=301.0)
    assert (result.ok, result.stale, result.username) == (False, True, None)
    wrong = server.verify("REGISTER", answer(challenge, password="guess"), lookup, now=301.0)
    assert (wrong.ok, wrong.stale) == (False, False)


def test_nonce_manager_statuses() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0)
    nonce = nonces.issue(now=100.0, realm=REALM)
    assert nonces.check(nonce, 100.0, REALM) is NonceStatus.VALID
    assert nonces.check(nonce, 400.0, REALM) is NonceStatus.VALID
    assert nonces.check(nonce, 400.5, REALM) is NonceStatus.STALE
    assert nonces.check(nonce, 50.0, REALM) is NonceStatus.STALE  # issued "in the future"
    assert nonces.check(nonce, 100.0, "other.realm") is NonceStatus.INVALID
    other = NonceManager(b"another secret, 32 bytes long!!!")
    assert other.check(nonce, 100.0, REALM) is NonceStatus.INVALID


@pytest.mark.parametrize(
    "forge",
    [
        lambda n: n[:-1] + ("A" if n[-1] != "A" else "B"),  # MAC altered
        lambda n: ("A" if n[0] != "A" else "B") + n[1:],  # timestamp altered
        lambda n: n + "AAAA",
        lambda n: "",
        lambda n: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        lambda n: "é" * len(n),
    ],
)
def test_forged_nonce_is_invalid(forge: object) -> None:
    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    nonce = parse_challenge(challenge).nonce
    forged = forge(nonce)  # type: ignore[operator]
    assert server.nonces.check(forged, 1.0, REALM) is NonceStatus.INVALID
    forged_challenge = challenge.replace(nonce, forged)
    result = server.verify("REGISTER", answer(forged_challenge), lookup, 1.0)
    assert (result.ok, result.stale, result.reason) == (False, False, "nonce not issued here")


def test_nc_replay_rejected_and_increasing_accepted() -> None:
    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    first = answer(challenge, nc=1)
    assert server.verify("REGISTER", first, lookup, 1.0).ok
    replay = server.verify("REGISTER", first, lookup, 2.0)
    assert not replay.ok and not replay.stale and "replayed" in replay.reason
    assert server.verify("REGISTER", answer(challenge, nc=2), lookup, 3.0).ok
    assert server.verify("REGISTER", answer(challenge, nc=5), lookup, 4.0).ok
    assert not server.verify("REGISTER", answer(challenge, nc=4), lookup, 5.0).ok
    assert server.verify("REGISTER", answer(challenge, nc=6), lookup, 6.0).ok


def test_bad_password_does_not_burn_nonce_counts() -> None:
    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    assert not server.verify("REGISTER", answer(challenge, "alice", "x", nc=9), lookup, 1.0).ok
    assert server.verify("REGISTER", answer(challenge, nc=1), lookup, 2.0).ok


def test_nc_table_is_bounded_and_stays_replay_safe() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0, max_tracked=3)
    issued = [nonces.issue(now=float(t), realm=REALM) for t in range(5)]
    for n in issued:
        assert nonces.accept_nc(n, 1, 10.0, REALM) is NonceStatus.VALID
    assert len(nonces) == 3
    # The evicted nonces' counts are gone, so they must not be accepted again.
    assert nonces.accept_nc(issued[0], 1, 11.0, REALM) is NonceStatus.STALE
    assert nonces.accept_nc(issued[4], 1, 11.0, REALM) is NonceStatus.INVALID
    assert nonces.accept_nc(issued[4], 2, 11.0, REALM) is NonceStatus.VALID
    late = nonces.issue(now=400.0, realm=REALM)
    assert nonces.accept_nc(late, 1, 400.0, REALM) is NonceStatus.VALID
    assert len(nonces) <= 3
    nonces.prune(now=1000.0)
    assert len(nonces) == 0


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    unknown = server.verify("REGISTER", answer(challenge, "mallory", "guess1"), lookup, 1.0)
    wrong = server.verify("REGISTER", answer(challenge, "alice", "guess1"), lookup, 1.0)
    assert unknown.reason != wrong.reason
    assert dataclasses.replace(unknown, reason="") == dataclasses.replace(wrong, reason="")
    assert "guess1" not in wrong.reason and "correct horse" not in wrong.reason


def test_unknown_user_is_hashed_like_a_known_one() -> None:
    calls: list[tuple[str, str, str]] = []

    def spy(username: str, realm: str, algorithm: str) -> str | None:
        calls.append((username, realm, algorithm))
        return lookup(username, realm, algorithm)

    server = make_server()
    challenge = server.challenges(now=0.0)[0]
    server.verify("REGISTER", answer(challenge, "mallory", "x"), spy, 1.0)
    assert calls == [("mallory", REALM, "SHA-256")]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"username": None}, "no username"),
        ({"realm": "evil.example"}, "realm 'evil.example' is not ours"),
        ({"uri": None}, "nonce, uri or response missing"),
        ({"algorithm": "SHA-512-256"}, "algorithm 'SHA-512-256' not offered"),
        ({"qop": "auth-int"}, "qop 'auth-int' not offered"),
        ({"nc": "1"}, "qop=auth needs a cnonce and an 8-digit hex nc"),
        ({"nc": "0000000g"}, "qop=auth needs a cnonce and an 8-digit hex nc"),
        ({"cnonce": None}, "qop=auth needs a cnonce and an 8-digit hex nc"),
    ],
)
def test_verify_checks_each_field(change: dict[str, str | None], reason: str) -> None:
    server = make_server()
    creds = answer(server.challenges(now=0.0)[0])
    result = server.verify("REGISTER", dataclasses.replace(creds, **change), lookup, 1.0)  # type: ignore[arg-type]
    assert result == AuthResult(ok=False, stale=False, username=None, reason=reason)


def test_md5_only_server_refuses_sha256() -> None:
    server = make_server(algorithms=("MD5",))
    assert len(server.challenges(now=0.0)) == 1
    sha_challenge = DigestAuthenticator(REALM, server.nonces).challenges(now=0.0)[0]
    assert not server.verify("REGISTER", answer(sha_challenge), lookup, 1.0).ok


def test_parser_tolerates_lws_case_and_escapes() -> None:
    creds = parse_credentials(
        'digest  username = "a\\"b\\\\c" ,realm=pbx ,, nonce="n",uri=sip:1000@pbx;x=y,'
        ' ALGORITHM=md5 , response="ABC"\t'
    )
    assert creds.username == 'a"b\\c'
    assert (creds.realm, creds.uri, creds.algorithm) == ("pbx", "sip:1000@pbx;x=y", "MD5")
    assert creds.response == "ABC"


def test_serialize_round_trips() -> None:
    creds = Credentials(
        username='bob "the" \\ phone', realm="r", nonce="n", uri="sip:x", qop="auth"
    )
    assert parse_credentials(creds.serialize()) == creds
    challenge = Challenge("r", "n", "SHA-256", ("auth", "auth-int"), "op", stale=True)
    assert parse_challenge(challenge.serialize()) == challenge
    with pytest.raises(AuthHeaderError):
        Credentials(username="evil\r\nVia: x").serialize()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "missing auth scheme at offset 0"),
        ('Basic realm="x"', "unsupported auth scheme 'Basic'"),
        ("Digest", "Digest without parameters"),
        ("Digest,realm=x", "unexpected ',' after auth scheme at offset 6"),
        ('Digest realm="x', "unterminated or invalid quoted-string at offset 13"),
        ('Digest realm="x\\', "unterminated or invalid quoted-string at offset 13"),
        ('Digest realm="a\r\nb"', "unterminated or invalid quoted-string at offset 13"),
        ("Digest realm", "expected '=' after 'realm' at offset 12"),
        ("Digest realm=", "missing value for 'realm' at offset 13"),
        ("Digest realm=a b=c", "expected ',' at offset 15, got 'b'"),
        ("Digest realm=a, realm=b", "parameter 'realm' repeated at offset 16"),
        ("Digest =x", "expected a parameter name at offset 7, got '='"),
        ('Digest realm="r"', "challenge has no nonce"),
    ],
)
def test_malformed_headers_raise_auth_header_error(value: str, message: str) -> None:
    with pytest.raises(AuthHeaderError) as error:
        parse_challenge(value)
    assert str(error.value) == message


def test_challenge_without_usable_qop_is_refused_by_client() -> None:
    challenge = Challenge("r", "n", "MD5", ("auth-conf",))
    with pytest.raises(AuthHeaderError, match="no supported qop"):
        build_authorization(challenge, "INVITE", URI, "alice", "pw", "c")
    with pytest.raises(AuthHeaderError, match="unsupported digest algorithm"):
        build_authorization(Challenge("r", "n", "SHA-512"), "INVITE", URI, "a", "pw", "c")


# Plain text rarely gets past the scheme, so half the examples start with one.
_HEADERISH = st.text(alphabet=' \t\r\n",=\\\x00\x7fé\udc80Digestrealmnoncqp-sé')


@given(st.one_of(st.text(), _HEADERISH, _HEADERISH.map(lambda s: "Digest " + s)))
def test_parsers_raise_only_auth_header_error(value: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        with contextlib.suppress(AuthHeaderError):
            parse(value)


@given(st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=40))
def test_parsers_take_any_text_as_digest_params(text: str) -> None:
    value = f"Digest realm={_quote_for_test(text)}, nonce=x, username={_quote_for_test(text)}"
    assert parse_challenge(value).realm == text
    assert parse_credentials(value).username == text


def _quote_for_test(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
