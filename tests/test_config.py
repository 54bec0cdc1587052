"""Configuration loading: the example, every kind of error with its line, overrides, routes."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from acd.config import ENVIRONMENT, Config, ConfigError, DialPattern, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.yaml"

AGENT = """\
agents:
  - username: 1001
    password: correct-horse
"""


def write(tmp_path: Path, text: str, name: str = "acd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={} if env is None else env)
    lines = str(caught.value).splitlines()
    assert list(caught.value.problems) == lines
    return lines


# The example ----------------------------------------------------------------


def test_example_loads() -> None:
    config = load_config(EXAMPLE, env={})
    assert [a.username for a in config.agents] == [str(n) for n in range(1001, 1011)]
    assert all(len(a.password.get_secret_value()) >= 12 for a in config.agents)
    assert {skill for a in config.agents for skill in a.skills} == {"sales", "support", "billing"}
    assert set(config.queues) == {"sales", "support", "billing"}
    assert [t.name for t in config.trunks] == ["carrier"]
    assert config.trunk_for_address("127.0.0.1") is config.trunks[0]
    assert config.sip.listen == (ipaddress.ip_address("127.0.0.1"),)
    assert (config.sip.port, config.http.port) == (5060, 8080)
    targets = {number: config.route_for(number) for number in ("100", "200", "201", "202")}
    assert {n: r and (r.ivr or r.queue) for n, r in targets.items()} == {
        "100": "main",
        "200": "sales",
        "201": "support",
        "202": "billing",
    }


def test_example_extension_pattern_rings_the_dialled_agent() -> None:
    config = load_config(EXAMPLE, env={})
    route = config.route_for("1004")
    assert route is not None and route.action == "extension"
    assert route.extension_for("1004") == "1004"
    assert config.agent("1004") is not None


def test_empty_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, ""), env={})
    assert config.sip.transports == ("udp", "tcp")
    assert config.sip.timers.t1 == 0.5
    assert config.registrar.default_expires == 600
    assert config.security.digest_algorithms == ("MD5",)
    assert config.data_dir == tmp_path / "data"
    assert config.storage.url is None
    assert config.logging.level == "INFO"
    assert config.route_for("100") is None
    calls = config.calls
    assert (calls.max_calls_per_second, calls.burst) == (None, None)
    assert (calls.max_loop_lag, calls.max_cpu, calls.retry_after) == (0.25, 0.9, 5)


# Errors name the file, the line and the key ----------------------------------

ERROR_CASES = {
    "missing password": (
        """\
        agents:
          - username: 1001
            password: correct-horse
          - username: 1002
            name: Bob
        """,
        ":4: agents[1].password: Field required",
    ),
    "typo in a key": (
        AGENT + "    skils: {sales: 3}\n",
        ":4: agents[0].skils: unknown key; did you mean 'skills'?",
    ),
    "bad port": (
        "sip:\n  port: 70000\n",
        ":2: sip.port: Input should be less than or equal to 65535",
    ),
    "port that is not a number": (
        "http:\n  port: eighty\n",
        ":2: http.port: Input should be a valid integer",
    ),
    "bad IP address": (
        "sip:\n  listen: [127.0.0.1, 10.0.0.300]\n",
        ":2: sip.listen[1]: value is not a valid IPv4 or IPv6 address",
    ),
    "duplicate agent username": (
        AGENT + "  - username: 1001\n    password: other-secret\n",
        ":4: agents[1].username: duplicate username: '1001' is already used by entry 0",
    ),
    "duplicate YAML key": (
        AGENT + "    password: second-secret\n",
        ":4: agents[0].password: duplicate key (first on line 3)",
    ),
    "route to unknown queue": (
        """\
        queues:
          sales: {}
        routes:
          - match: "200"
            queue: sails
        """,
        ":5: routes[0].queue: unknown queue 'sails' (queues: sales)",
    ),
    "bad pattern": (
        "routes:\n  - match: _1XY\n    hangup: 404\n",
        ":2: routes[0].match: unexpected 'Y' at position 3 of '_1XY'",
    ),
    "YAML syntax error": (
        "sip:\n  port: 5060\n listen: [\n",
        ":3: YAML syntax error:",
    ),
    "route without a target": (
        "routes:\n  - match: '300'\n",
        ":2: routes[0]: a route needs exactly one of ivr, queue, extension, hangup (found none)",
    ),
    "short password": (
        "agents:\n  - {username: a1, password: short}\n",
        ":2: agents[0].password: password must be at least 8 characters",
    ),
    "unknown strategy": (
        "queues:\n  sales:\n    strategy: ring-most\n",
        ":3: queues.sales.strategy: Input should be 'ring-all'",
    ),
    "skill level out of range": (
        "queues:\n  sales:\n    skills: {sales: 11}\n",
        ":3: queues.sales.skills.sales: Input should be less than or equal to 10",
    ),
    "expires out of order": (
        "registrar:\n  min_expires: 900\n",
        ":1: registrar: need min_expires <= default_expires <= max_expires",
    ),
    "t1 not below t2": (
        "sip:\n  timers: {t1: 5}\n",
        ":2: sip.timers: t1 (5.0) must be less than t2 (4.0)",
    ),
    "tls without certificate": (
        "sip:\n  transports: [udp, tls]\n",
        ":1: sip: transports include tls, so a tls block with certificate is needed",
    ),
    "wss without certificate": (
        "sip:\n  transports: [udp, wss]\n",
        ":1: sip: transports include wss, so a tls block with certificate is needed",
    ),
    "websocket origin with a path": (
        "sip:\n  websocket:\n    origins: [https://desk.example/agents]\n",
        ":3: sip.websocket.origins[0]: 'https://desk.example/agents' is not valid here: use "
        "scheme://host[:port], no path",
    ),
    "websocket path without a slash": (
        "sip:\n  websocket: {path: ws}\n",
        ":2: sip.websocket.path: 'ws' is not valid here: use a path starting with /",
    ),
    "unknown transport": (
        "sip:\n  transports: [udp, sctp]\n",
        ":2: sip.transports[1]: Input should be 'udp', 'tcp', 'tls', 'ws' or 'wss'",
    ),
    "request limit of zero": (
        "security:\n  request_limit:\n    requests: 0\n",
        ":3: security.request_limit.requests: Input should be greater than or equal to 1",
    ),
    "storage scheme": (
        "storage:\n  url: mysql://db/acd\n",
        ":2: storage.url: use sqlite:///path/to/file.db or postgresql://user@host/db",
    ),
    "trunk network with host bits": (
        "trunks:\n  - name: carrier\n    addresses: [10.0.0.1/8]\n",
        ":3: trunks[0].addresses[0]: value is not a valid IPv4 or IPv6 network",
    ),
    "section that is not a mapping": (
        "registrar: 5\n",
        ":1: registrar: expected a mapping of keys, got int",
    ),
    "max wait to an unknown queue": (
        "queues:\n  sales:\n    on_max_wait: 'queue:sails'\n",
        ":3: queues.sales.on_max_wait: unknown queue 'sails' (queues: sales)",
    ),
    "max wait action that is not one": (
        "queues:\n  sales:\n    on_max_wait: voicemail\n",
        ":3: queues.sales.on_max_wait: 'voicemail' is not valid here: "
        "use hangup, callback or queue:<name>",
    ),
    "escalation steps out of order": (
        "queues:\n  sales:\n    escalation:\n      - {after: 60}\n      - {after: 30}\n",
        ":3: queues.sales.escalation: escalation steps must be in increasing order",
    ),
    "callback key that is not a DTMF key": (
        "queues:\n  sales:\n    callback_key: '55'\n",
        ":3: queues.sales.callback_key: '55' is not valid here",
    ),
    "weight for an unknown queue": (
        AGENT + "    weights: {sails: 2}\nqueues: {sales: {}}\n",
        ":4: agents[0].weights.sails: unknown queue 'sails' (queues: sales)",
    ),
    "pause reason listed twice": (
        "pause_reasons: [break, break]\n",
        ":1: pause_reasons: 'break' is listed twice",
    ),
    "unknown top-level key": (
        "sip: {}\nqueus: {}\n",
        ":2: queus: unknown key; did you mean 'queues'?",
    ),
    "burst without a call rate": (
        "calls:\n  burst: 20\n",
        ":1: calls: burst is set but max_calls_per_second is not",
    ),
    "CPU share over one core": (
        "calls:\n  max_cpu: 95\n",
        ":2: calls.max_cpu: Input should be less than or equal to 1",
    ),
    "call rate that is not positive": (
        "calls:\n  max_calls_per_second: 0\n",
        ":2: calls.max_calls_per_second: Input should be greater than 0",
    ),
}


@pytest.mark.parametrize("text, expected", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    lines = errors_of(path)
    assert any(line.startswith(f"{path}{expected}") for line in lines), lines


def test_every_error_is_reported_one_per_line_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        sip:
          port: -1
        agents:
          - username: 1001
          - username: 1002
            password: correct-horse
            colour: blue
        logging:
          level: chatty
        """,
    )
    assert errors_of(path) == [
        f"{path}:2: sip.port: Input should be greater than or equal to 0",
        f"{path}:4: agents[0].password: Field required",
        f"{path}:7: agents[1].colour: unknown key "
        "(known keys: username, password, name, skills, max_calls, team, weights, enabled)",
        f"{path}:9: logging.level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
        "'CRITICAL'",
    ]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert errors_of(missing) == [f"{missing}: cannot read: No such file or directory"]


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "sip: !!python/object/apply:os.system ['true']\n")
    assert "could not determine a constructor" in errors_of(path)[0]


# Values and their forms -------------------------------------------------------


def test_numbers_with_leading_zeros_stay_dial_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "routes:\n  - match: 0100\n    extension: 0800\n")
    route = load_config(path, env={}).routes[0]
    assert (route.match, route.extension) == ("0100", "0800")


def test_single_listen_address_and_ipv6(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "sip:\n  listen: '::1'\n"), env={})
    assert config.sip.listen == (ipaddress.ip_address("::1"),)


def test_agent_name_defaults_to_username(tmp_path: Path) -> None:
    agent = load_config(write(tmp_path, AGENT), env={}).agents[0]
    assert (agent.username, agent.name, agent.skills, agent.max_calls) == ("1001", "1001", {}, 1)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "cert.pem").write_text("cert")
    (tmp_path / "etc" / "key.pem").write_text("key")
    path = write(
        tmp_path / "etc",
        """\
        data_dir: ../var
        storage: {url: "sqlite:///cdr.db"}
        sip:
          transports: [tls]
          tls: {certificate: cert.pem, private_key: key.pem}
        """,
    )
    config = load_config(path, env={})
    assert config.data_dir == tmp_path / "etc" / "../var"
    assert config.storage.url == f"sqlite:///{tmp_path / 'etc' / 'cdr.db'}"
    assert config.sip.tls is not None
    assert config.sip.tls.certificate == tmp_path / "etc" / "cert.pem"
    assert config.sip.tls.port == 5061


def test_missing_tls_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  tls:\n    certificate: c.pem\n    private_key: k.pem\n")
    assert errors_of(path)[0] == f"{path}:3: sip.tls.certificate: file not found: {tmp_path}/c.pem"


def test_trunk_host_and_port(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        trunks:
          - {name: a, host: "sip.example.com:5080", addresses: [192.0.2.0/24]}
          - {name: b, host: "[2001:db8::1]:5061", transport: tls}
          - {name: c, host: pbx.example.com, username: acd, password: trunk-secret}
        """,
    )
    a, b, c = load_config(path, env={}).trunks
    assert (a.host and a.host.host, a.host and a.host.port) == ("sip.example.com", 5080)
    assert (b.host and b.host.host, b.host and b.host.port) == ("2001:db8::1", 5061)
    assert c.host is not None and c.host.port is None
    assert a.accepts_from("192.0.2.77") and not a.accepts_from("198.51.100.1")


def test_blocked_user_agents_match_substrings_ignoring_case() -> None:
    security = Config().security
    assert security.is_blocked_user_agent("Friendly-Scanner 1.0")
    assert security.is_blocked_user_agent("SIPVicious/0.3")
    assert not security.is_blocked_user_agent("Linphone/5.2")


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValidationError):
        config.data_dir = Path("/elsewhere")


# Secrets ------------------------------------------------------------------------


def test_passwords_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        AGENT + "trunks:\n  - {name: t, username: acd, password: trunk-secret-9}\n",
    )
    config = load_config(path, env={})
    for text in (repr(config), str(config), repr(config.agents), config.model_dump_json()):
        assert "correct-horse" not in text
        assert "trunk-secret-9" not in text
    assert config.agents[0].password.get_secret_value() == "correct-horse"


# Environment overrides ----------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "sip: {port: 5060}\nhttp: {port: 8080}\ndata_dir: /srv/acd\n")
    config = load_config(
        path,
        env={
            "ACD_SIP_PORT": "5070",
            "ACD_HTTP_PORT": "8081",
            "ACD_DATA_DIR": "state",
            "ACD_SIP_LISTEN": "0.0.0.0, ::",
            "ACD_HTTP_LISTEN": "0.0.0.0",
        },
    )
    assert (config.sip.port, config.http.port) == (5070, 8081)
    assert config.data_dir == tmp_path / "state"  # relative to the working directory
    assert config.sip.listen == (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))
    assert config.http.listen == ipaddress.ip_address("0.0.0.0")


def test_environment_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACD_SIP_PORT", "5999")
    assert load_config(write(tmp_path, ""), env=None).sip.port == 5999


def test_environment_fills_an_empty_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "sip:\nhttp:\n"), env={"ACD_SIP_PORT": "5070"})
    assert config.sip.port == 5070


def test_call_variables_from_the_file_the_route_and_the_environment(tmp_path: Path) -> None:
    text = (
        "variables: {brand: Example, demo_open: 'yes'}\n"
        "routes:\n  - {match: '100', hangup: 480, variables: {brand: Other}}\n"
    )
    config = load_config(write(tmp_path, text), env={"ACD_VARIABLES": "demo_open=no, x=1"})
    # The environment adds to the file's variables, name by name.
    assert config.variables == {"brand": "Example", "demo_open": "no", "x": "1"}
    route = config.route_for("100")
    assert route is not None and route.variables == {"brand": "Other"}


def test_rtp_ports_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={"ACD_RTP_PORTS": "20000-20199"})
    assert config.media.rtp_ports == (20000, 20199)


def test_storage_and_advertised_address_from_the_environment(tmp_path: Path) -> None:
    env = {
        "ACD_STORAGE_URL": "postgresql://acd:pw-123456@postgres/acd",
        "ACD_ADVERTISED_ADDRESS": "203.0.113.10",
    }
    config = load_config(write(tmp_path, "storage: {}\n"), env=env)
    assert config.storage.url == "postgresql://acd:pw-123456@postgres/acd"
    assert config.sip.advertised_address == "203.0.113.10"


def test_a_bad_secret_from_the_environment_is_named_not_shown(tmp_path: Path) -> None:
    lines = errors_of(write(tmp_path, ""), env={"ACD_STORAGE_URL": "mysql://u:hunter22@db/x"})
    assert len(lines) == 1, lines
    assert lines[0].startswith("ACD_STORAGE_URL=(not shown): storage.url: "), lines
    assert "hunter22" not in lines[0]


def test_empty_environment_variables_are_ignored(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env=dict.fromkeys(ENVIRONMENT, ""))
    assert config.sip.port == 5060


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("ACD_SIP_PORT", "abc", "ACD_SIP_PORT='abc': sip.port: Input should be a valid integer"),
        ("ACD_HTTP_PORT", "65536", "ACD_HTTP_PORT='65536': http.port: Input should be less"),
        ("ACD_SIP_LISTEN", "0.0.0.x", "ACD_SIP_LISTEN='0.0.0.x': sip.listen: value is not"),
        ("ACD_HTTP_LISTEN", "localhost", "ACD_HTTP_LISTEN='localhost': http.listen: value is"),
        ("ACD_RTP_PORTS", "20000", "ACD_RTP_PORTS='20000': media.rtp_ports: "),
        ("ACD_VARIABLES", "9lives=yes", "ACD_VARIABLES='9lives=yes': variables: '9lives' is not"),
    ],
)
def test_bad_environment_value_names_the_variable(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    lines = errors_of(write(tmp_path, "sip: {port: 5060}\n"), env={name: value})
    assert len(lines) == 1 and lines[0].startswith(expected), lines


# Routes ----------------------------------------------------------------------------

ROUTES = """\
queues: {sales: {}}
routes:
  - {match: _2XX, hangup: 404}
  - {match: "200", queue: sales}
  - {match: _2NX, hangup: 403}
  - {match: "_0.", hangup: 403, record: false}
  - {match: "_9!", ivr: main}
"""


def test_exact_match_wins_over_an_earlier_pattern(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ROUTES), env={})
    route = config.route_for("200")
    assert route is not None and route.queue == "sales" and route.record
    assert not route.is_pattern


def test_first_matching_pattern_in_file_order_wins(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ROUTES), env={})
    route = config.route_for("255")
    assert route is not None and (route.match, route.hangup) == ("_2XX", 404)
    assert route.action == "hangup"


def test_trailing_dot_needs_a_digit_and_bang_needs_none(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ROUTES), env={})
    assert config.route_for("0") is None
    route = config.route_for("0044")
    assert route is not None and route.match == "_0." and not route.record
    route = config.route_for("9")
    assert route is not None and route.ivr == "main"
    assert config.route_for("2000") is None


def test_duplicate_route_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "routes:\n  - {match: '7', hangup: 404}\n  - {match: '7', ivr: x}\n")
    assert errors_of(path) == [
        f"{path}:3: routes[1].match: duplicate route: '7' is already used by entry 0"
    ]


@pytest.mark.parametrize(
    "pattern, matching, not_matching",
    [
        ("_NXXXXXX", ["2000000", "9999999"], ["1000000", "200000"]),
        ("_Z", ["1", "9"], ["0", "11"]),
        ("_1[2-46]x", ["120", "149", "165"], ["150", "12", "1200"]),
        ("_+44.", ["+441234"], ["+44", "441234"]),
        ("_*7[0#]", ["*70", "*7#"], ["*71"]),
    ],
)
def test_dial_patterns(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    compiled = DialPattern.parse(pattern)
    assert all(compiled.matches(number) for number in matching)
    assert not any(compiled.matches(number) for number in not_matching)


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("_", "at least one character"),
        ("_1.2", "'.' may only end"),
        ("_[12", "unclosed '['"),
        ("_[]", "empty '[]'"),
        ("_[5-1]", "bad range '5-1'"),
        ("_1Q", "unexpected 'Q'"),
        ("_!", "needs at least one digit"),
    ],
)
def test_bad_dial_patterns(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace(".", r"\.")):
        DialPattern.parse(pattern)


@given(st.text(alphabet="0123456789", min_size=1, max_size=12))
def test_x_for_every_digit_matches_exactly_that_length(number: str) -> None:
    compiled = DialPattern.parse("_" + "X" * len(number))
    assert compiled.matches(number)
    assert not compiled.matches(number + "0")
    assert DialPattern.parse("_" + number).matches(number)


def test_queue_routing_options_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        AGENT
        + """\
    weights: {sales: 3, support: 1}
pause_reasons: [break, coaching, no-answer]
queues:
  support: {}
  sales:
    strategy: round-robin
    reject_delay: 2
    on_max_wait: "queue:support"
    join_empty: true
    join_paused: false
    leave_empty: true
    max_misses: 0
    announce_every: 0
    callback_key: "*"
    escalation:
      - {after: 30, skills: {sales: 1}}
      - {after: 90, skills: {}}
""",
    )
    config = load_config(path, env={})
    sales = config.queues["sales"]
    assert (sales.on_max_wait, sales.reject_delay, sales.callback_key) == ("queue:support", 2, "*")
    assert (sales.join_empty, sales.join_paused, sales.leave_empty) == (True, False, True)
    assert [(step.after, step.skills) for step in sales.escalation] == [
        (30, {"sales": 1}),
        (90, {}),
    ]
    assert config.agents[0].weights == {"sales": 3, "support": 1}
    assert config.pause_reasons == ("break", "coaching", "no-answer")
    defaults = config.queues["support"]
    assert (defaults.on_max_wait, defaults.max_misses, defaults.join_paused) == ("hangup", 3, True)
    assert load_config(write(tmp_path, "", "empty.yaml"), env={}).pause_reasons == (
        "break",
        "lunch",
        "training",
        "no-answer",
    )


def test_the_crm_link_names_a_bad_scheme_or_placeholder(tmp_path: Path) -> None:
    good = "https://crm.example.com/find?phone={caller}&tier={var.tier}"
    config = load_config(write(tmp_path, f"http: {{crm_url: '{good}'}}\n"), env={})
    assert config.http.crm_url == good
    (scheme,) = errors_of(write(tmp_path, "http: {crm_url: 'javascript:alert(1)'}\n"))
    assert "http.crm_url" in scheme and "https://host" in scheme, scheme
    (field,) = errors_of(write(tmp_path, "http: {crm_url: 'https://crm/x?p={phone}'}\n"))
    assert "unknown placeholder {phone}" in field and "{caller}" in field, field
