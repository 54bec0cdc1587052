"""The configuration schema: frozen pydantic models, one per section of the file.

Every model forbids unknown keys so that a misspelt key is an error, not a
silently ignored setting. Cross-references between sections (a route naming a
queue, unique agent usernames) are checked by :func:`cross_check`, which the
loader runs once the sections themselves are valid.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    IPvAnyAddress,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ._dialplan import DialPattern

__all__ = [
    "DEFAULT_PAUSE_REASONS",
    "STRATEGIES",
    "Agent",
    "CallsConfig",
    "Config",
    "Escalation",
    "HostPort",
    "HttpConfig",
    "LoggingConfig",
    "MediaConfig",
    "PromptsConfig",
    "Queue",
    "RecordingsConfig",
    "RegistrarConfig",
    "RequestLimitConfig",
    "Route",
    "SecurityConfig",
    "SipConfig",
    "SipTimers",
    "StorageConfig",
    "Strategy",
    "TlsConfig",
    "Trunk",
    "WebRtcConfig",
    "cross_check",
]

_T = TypeVar("_T")
Loc = tuple[str | int, ...]


class _Section(BaseModel):
    # coerce_numbers_to_str: YAML reads `username: 1001` as an int; operators
    # should not have to quote every extension number.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # `sip:` with every line below it commented out is YAML null.
        return {} if data is None else data


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path relative to the config file's directory (see Config)."""
    value = value.expanduser()
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


def _unique(values: tuple[_T, ...]) -> tuple[_T, ...]:
    seen: set[_T] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


def _one_or_many(value: object) -> object:
    """Let an operator write `listen: 0.0.0.0` for a one-element list."""
    return [value] if isinstance(value, str) else value


_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if len(value) > 253 or not _HOSTNAME.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
    return value


def _split_host_port(value: object) -> object:
    """Turn `host`, `host:port` or `[v6]:port` into a HostPort mapping."""
    if not isinstance(value, str):
        return value
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r}: write an IPv6 address with a port as [addr]:port")
        return {"host": host, "port": rest[1:] or None}
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return {"host": host, "port": port}
    return {"host": value}


Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Level = Annotated[int, Field(ge=1, le=10)]
Host = Annotated[str, AfterValidator(_check_host)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Text:
    """Text matching ``regex`` in full, whose error says ``description``.

    Annotated metadata: it validates after the string schema and puts the
    pattern (anchored, as JSON Schema patterns are not) into the JSON
    Schema, so the OpenAPI description and editors show the rule too.
    """

    def __init__(self, regex: str, description: str) -> None:
        self.regex = regex
        self.description = description
        self._compiled = re.compile(regex)

    def _check(self, value: str) -> str:
        if not self._compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not valid here: use {self.description}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^(?:{self.regex})$"
        return json_schema


def _text(regex: str, description: str) -> _Text:
    return _Text(regex, description)


Name = Annotated[
    str, _text(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "letters, digits, _ . - (up to 64)")
]
SkillName = Annotated[str, _text(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", "letters, digits, _ -")]
VarName = Annotated[str, _text(r"[A-Za-z_][A-Za-z0-9_]{0,63}", "a name: no digit first")]
VarValue = Annotated[str, Field(max_length=1024)]
Username = Annotated[str, _text(r"[A-Za-z0-9]{1,32}", "1 to 32 letters or digits")]
# What a caller dials or an extension is called: digits, letters, * # and a leading +.
_DIAL_STRING = r"\+?[0-9A-Za-z*#]{1,64}"
DialString = Annotated[str, _text(_DIAL_STRING, "digits, letters, * or #, up to 64")]
Transport = Literal["udp", "tcp", "tls"]
# What the engine listens on: the trunk transports, and SIP over WebSocket for browsers.
ListenTransport = Literal["udp", "tcp", "tls", "ws", "wss"]
# The reasons an agent may give for a pause; "no-answer" is the one the ACD uses itself.
DEFAULT_PAUSE_REASONS: tuple[str, ...] = ("break", "lunch", "training", "no-answer")
Strategy = Literal[
    "ring-all",
    "round-robin",
    "least-busy",
    "longest-idle",
    "fewest-talk-time",
    "skill-weighted",
    "random",
    "linear",
]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


class HostPort(_Section):
    """A host with an optional port, written `host`, `host:port` or `[v6]:port`."""

    # a host name or address
    host: Host
    # default: the transport's (5060, or 5061 for TLS)
    port: Annotated[int, Field(ge=1, le=65535)] | None = None


class TlsConfig(_Section):
    """Certificate and key for SIP over TLS; relative paths are from the config file."""

    # the TLS listening port
    port: Port = 5061
    # PEM certificate (chain) file
    certificate: Annotated[ConfigPath, AfterValidator(_existing_file)]
    # PEM private key file of the certificate
    private_key: Annotated[ConfigPath, AfterValidator(_existing_file)]


class WebSocketConfig(_Section):
    """SIP over WebSocket (RFC 7118) for browser phones: ws or wss in sip.transports.

    Browsers (JsSIP, SIP.js) connect with the ``sip`` subprotocol and register
    like any phone, with digest; requests to them go back over their own
    WebSocket, and when it closes their registrations go. wss uses the
    certificate of the sip.tls block; browsers on an https page allow only wss.
    """

    # the ws listening port; 0 asks the system for a free one
    port: Port = 8088
    # the wss listening port (TLS with the sip.tls certificate)
    secure_port: Port = 8089
    # the one request path a handshake may ask for, such as /ws; any path when unset
    path: Annotated[str, _text(r"/[!-~]*", "a path starting with /")] | None = None
    # Origin values a browser may connect from (scheme://host[:port]); any when empty
    origins: tuple[
        Annotated[str, _text(r"https?://[^/\s]+", "scheme://host[:port], no path")], ...
    ] = ()
    # seconds between WebSocket pings; a connection silent since the last one is dropped; 0: none
    ping_interval: Seconds = 30


class SipTimers(_Section):
    """RFC 3261 timer values in seconds (T1 round-trip estimate, T2 cap, T4 lifetime)."""

    # round-trip estimate: retransmissions start at this interval and double
    t1: PositiveSeconds = 0.5
    # the longest retransmission interval of non-INVITE requests and INVITE answers
    t2: PositiveSeconds = 4.0
    # how long a message may live in the network
    t4: PositiveSeconds = 5.0

    @model_validator(mode="after")
    def _t1_below_t2(self) -> SipTimers:
        if self.t1 >= self.t2:
            raise ValueError(f"t1 ({self.t1}) must be less than t2 ({self.t2})")
        return self


class SipConfig(_Section):
    """Where the SIP stack listens and how it presents itself.

    A port of 0 asks the operating system for a free port (useful in tests).
    """

    # addresses to bind; 0.0.0.0 or :: for every interface
    listen: Annotated[
        tuple[IPvAnyAddress, ...], BeforeValidator(_one_or_many), Field(min_length=1)
    ] = (ipaddress.IPv4Address("127.0.0.1"),)
    # UDP and TCP port; 0 asks the system for a free one
    port: Port = 5060
    # add tls (or wss) together with a tls block; ws and wss are SIP over WebSocket for browsers
    transports: Annotated[
        tuple[ListenTransport, ...], Field(min_length=1), AfterValidator(_unique)
    ] = (
        "udp",
        "tcp",
    )
    # SIP over TLS: needed when transports include tls or wss
    tls: TlsConfig | None = None
    # SIP over WebSocket: ports, path, allowed origins, pings
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    # our SIP domain, also the digest realm phones see
    domain: Host = "acd.local"
    # our Server and User-Agent header
    user_agent: Annotated[str, Field(min_length=1)] = "acd/0.1"
    # RFC 3261 timers
    timers: SipTimers = Field(default_factory=SipTimers)
    # bytes; a larger SIP message is refused
    max_message_size: Annotated[int, Field(ge=1024, le=1048576)] = 65535
    # host for Via and Contact (and SDP, unless media.advertised_address) instead of the bound one:
    # the public address behind NAT
    advertised_address: Host | None = None

    @model_validator(mode="after")
    def _tls_needs_certificate(self) -> SipConfig:
        for secure in ("tls", "wss"):
            if secure in self.transports and self.tls is None:
                raise ValueError(
                    f"transports include {secure}, so a tls block with certificate is needed"
                )
        return self


class RegistrarConfig(_Section):
    """Limits on REGISTER expiry and contacts, and OPTIONS keep-alive pings."""

    # shorter registrations get 423 Interval Too Brief
    min_expires: Annotated[int, Field(ge=1)] = 60
    # longer ones are granted this
    max_expires: Annotated[int, Field(ge=1)] = 3600
    # granted when a REGISTER asks for no expiry
    default_expires: Annotated[int, Field(ge=1)] = 600
    # registered devices per agent
    max_contacts: Annotated[int, Field(ge=1)] = 10
    keepalive_interval: Seconds = 30  # 0 turns keep-alive pings off
    # unanswered OPTIONS pings before a registration is dropped
    keepalive_failures: Annotated[int, Field(ge=1)] = 2

    @model_validator(mode="after")
    def _expires_in_order(self) -> RegistrarConfig:
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                "need min_expires <= default_expires <= max_expires, got "
                f"{self.min_expires}, {self.default_expires}, {self.max_expires}"
            )
        return self


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class RequestLimitConfig(_Section):
    """Per-source request throttling, before parsing (Kamailio pike's model).

    More than ``requests`` requests from one address within ``window``
    seconds block it for ``block_time`` seconds, renewed while it keeps
    flooding; a trunk's address and a registered phone's host never are.
    ``max_sources`` bounds the addresses tracked at once. The default of 200
    per 2 s is reasoned in docs/decisions.md.
    """

    # false turns the throttle off
    enabled: bool = True
    # requests from one address within window that block it
    requests: Annotated[int, Field(ge=1)] = 200
    # seconds the requests are counted over
    window: PositiveSeconds = 2
    # seconds a flooding address is blocked, renewed while it floods
    block_time: PositiveSeconds = 60
    # addresses tracked at once
    max_sources: Annotated[int, Field(ge=1)] = 50_000


class SecurityConfig(_Section):
    """Defences against floods, password guessing and SIP scanners."""

    # failed digest answers for one user from one source address before that pair is blocked
    auth_failures_per_minute: Annotated[int, Field(ge=1)] = 10
    # seconds a blocked (source, user) pair, or source, stays blocked
    auth_cooldown: Seconds = 300
    # failed digest answers from one source address, over all users, before it is blocked
    auth_failures_per_source: Annotated[int, Field(ge=1)] = 100
    # scrypt cost of stored web passwords as log2(N): 17 is OWASP's figure; each step doubles it
    password_hash_cost: Annotated[int, Field(ge=14, le=20)] = 17
    # requests whose User-Agent holds one of these (any case) are dropped unanswered: SIP scanners
    blocked_user_agents: tuple[Annotated[str, Field(min_length=1)], ...] = (
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "sip-scan",
        "VaxSIPUserAgent",
    )
    # seconds a digest nonce is valid; later answers get a fresh challenge (stale)
    nonce_lifetime: PositiveSeconds = 300
    # offered in this order, one challenge each; many phones cannot do SHA-256 (docs/decisions.md)
    digest_algorithms: Annotated[
        tuple[Annotated[Literal["SHA-256", "MD5"], BeforeValidator(_upper)], ...],
        Field(min_length=1),
        AfterValidator(_unique),
    ] = ("MD5",)  # offered in this order; SHA-256 is opt-in, see docs/decisions.md
    # per-source request throttling
    request_limit: RequestLimitConfig = Field(default_factory=RequestLimitConfig)

    def is_blocked_user_agent(self, user_agent: str) -> bool:
        """True when any blocked string occurs in ``user_agent``, ignoring case."""
        folded = user_agent.casefold()
        return any(blocked.casefold() in folded for blocked in self.blocked_user_agents)


def _check_token(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < 16:
        raise ValueError("a token must be at least 16 characters")
    return value


class HttpAuthConfig(_Section):
    """Who may use the HTTP API: sessions, sign-in throttling, the /metrics token."""

    # seconds a sign-in session lasts at most, however busy
    session_lifetime: PositiveSeconds = 12 * 3600
    # seconds without a request after which a session ends
    session_idle: PositiveSeconds = 3600
    # failed sign-ins for one user from one address before that pair must wait
    sign_in_failures: Annotated[int, Field(ge=1)] = 5
    # failed sign-ins from one address, over all users, before it must wait
    sign_in_failures_per_source: Annotated[int, Field(ge=1)] = 50
    # seconds over which failed sign-ins are counted
    sign_in_window: PositiveSeconds = 300
    # seconds a throttled user or address waits before trying again
    sign_in_cooldown: PositiveSeconds = 300
    # seconds a checked session is trusted before the database is asked again
    session_recheck: Annotated[float, Field(ge=0, le=300)] = 30
    # bearer token Prometheus must send for /metrics; without one /metrics is open
    metrics_token: Annotated[SecretStr | None, AfterValidator(_check_token)] = None


_CRM_FIELDS = frozenset({"caller", "caller_name", "did", "queue", "call_id"})


def _check_crm_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise ValueError("use http://host[:port]/path or https://host[:port]/path")
    for name in re.findall(r"\{([^{}]*)\}", value):
        if name not in _CRM_FIELDS and not re.fullmatch(r"var\.[A-Za-z_][A-Za-z0-9_]*", name):
            known = ", ".join(f"{{{f}}}" for f in sorted(_CRM_FIELDS))
            raise ValueError(f"unknown placeholder {{{name}}}; use {known} or {{var.NAME}}")
    return value


class HttpConfig(_Section):
    """The HTTP listener: API, /metrics, /healthz and web pages."""

    # address of the API, /metrics and /healthz; loopback unless you mean it
    listen: IPvAnyAddress = ipaddress.IPv4Address("127.0.0.1")
    # 0 asks the system for a free one
    port: Port = 8080
    # sign-in, sessions and the /metrics credential
    auth: HttpAuthConfig = Field(default_factory=lambda: HttpAuthConfig())
    # the agent desktop's link to the CRM for a ringing call, such as
    # https://crm.example.com/search?phone={caller}; placeholders {caller}, {caller_name},
    # {did}, {queue}, {call_id} and {var.NAME} (an IVR variable), each URL-encoded
    crm_url: Annotated[str, AfterValidator(_check_crm_url)] | None = None


def _check_storage_url(value: str, info: ValidationInfo) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("use sqlite:///path/to/file.db or postgresql://user@host/db")
    if scheme != "sqlite":
        return value
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(
            "a SQLite URL is sqlite:///relative/file.db or sqlite:////absolute/file.db"
        )
    return f"sqlite:///{_resolve_path(Path(rest[1:]), info)}"


class StorageConfig(_Section):
    """Where CDRs and events go; no url means a SQLite file in data_dir.

    A relative SQLite path (sqlite:///x.db) is resolved like every other path
    in the file, so the stored url is always absolute.
    """

    # postgresql://user:password@host:port/db or sqlite:///path.db; null: SQLite acd.db in data_dir
    url: Annotated[str, AfterValidator(_check_storage_url)] | None = None


def _check_password(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 8:
        raise ValueError("password must be at least 8 characters")
    return value


Password = Annotated[SecretStr, AfterValidator(_check_password)]


class Agent(_Section):
    """A SIP account for a person who answers calls; the password never appears in repr."""

    # SIP user name and extension
    username: Username
    # SIP digest password; never logged or shown
    password: Password
    # the agent's name, for people
    name: Annotated[str, Field(min_length=1)]
    # skill name to level, 1 (novice) to 10
    skills: dict[SkillName, Level] = Field(default_factory=dict)
    # calls the agent may have at once
    max_calls: Annotated[int, Field(ge=1)] = 1
    # team name, for reports
    team: str | None = None
    # Share of this agent per queue when several queues wait for it (default 1 each).
    weights: dict[Name, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # false: the account stays but cannot register, sign in or log in (its records remain)
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_username(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None and "username" in data:
            return {**data, "name": data["username"]}
        return data


class Trunk(_Section):
    """A carrier or PBX: calls from ``addresses`` need no digest; ``host`` is where we send."""

    # the trunk's name in CDRs and logs
    name: Name
    # source addresses or networks whose INVITEs need no digest
    addresses: tuple[IPvAnyNetwork, ...] = ()
    # where calls to the trunk are sent
    host: Annotated[HostPort, BeforeValidator(_split_host_port)] | None = None
    # transport of the calls we send to host
    transport: Transport = "udp"
    # our user name when the trunk challenges our requests
    username: str | None = None
    # our password for those challenges; never logged
    password: Password | None = None

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> Trunk:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    def accepts_from(self, address: str) -> bool:
        """True when a request from IP ``address`` belongs to this trunk."""
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self.addresses)


_ACTIONS = ("ivr", "queue", "extension", "hangup")


class Route(_Section):
    """Where a dialled number goes: exactly one of ivr, queue, extension, hangup.

    ``match`` is a number compared exactly, or a pattern starting with ``_``
    (see ``acd.config._dialplan``). ``extension: "*"`` means the dialled
    number itself, so ``_10XX`` with ``extension: "*"`` reaches agent 1001 on
    1001. ``hangup`` is the SIP status code to reject with.
    """

    # the dialled number, or a pattern starting with _
    match: Annotated[str, Field(min_length=1)]
    # an IVR flow (ivr_dir/NAME.yaml)
    ivr: Name | None = None
    # a queue, without IVR
    queue: Name | None = None
    # an agent's extension or a dial string; * is the dialled number
    extension: DialString | None = None
    # refuse with this SIP status
    hangup: Annotated[int, Field(ge=400, le=699)] | None = None
    # record the calls of this route
    record: bool = True
    # call variables set for this route's calls, over the top-level ones
    variables: dict[VarName, VarValue] = Field(default_factory=dict)
    _pattern: DialPattern | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_action(self) -> Route:
        chosen = [action for action in _ACTIONS if getattr(self, action) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) or "none"
            raise ValueError(f"a route needs exactly one of {', '.join(_ACTIONS)} (found {found})")
        return self

    @field_validator("match")
    @classmethod
    def _number_or_pattern(cls, value: str) -> str:
        if value.startswith("_"):
            DialPattern.parse(value)
        elif not re.fullmatch(_DIAL_STRING, value):
            raise ValueError(f"{value!r} is neither a number nor a pattern starting with '_'")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if self.match.startswith("_"):
            self._pattern = DialPattern.parse(self.match)

    @property
    def is_pattern(self) -> bool:
        return self._pattern is not None

    @property
    def action(self) -> Literal["ivr", "queue", "extension", "hangup"]:
        """Which of the four targets this route has."""
        if self.ivr is not None:
            return "ivr"
        if self.queue is not None:
            return "queue"
        if self.extension is not None:
            return "extension"
        return "hangup"

    def matches(self, number: str) -> bool:
        if self._pattern is None:
            return number == self.match
        return self._pattern.matches(number)

    def extension_for(self, number: str) -> str | None:
        """The extension to ring for dialled ``number`` (``*`` stands for the number)."""
        return number if self.extension == "*" else self.extension


class Escalation(_Section):
    """After ``after`` seconds of waiting a call needs ``skills`` instead (widened or lower)."""

    # seconds of waiting
    after: Seconds
    # what the call needs from then on
    skills: dict[SkillName, Level] = Field(default_factory=dict)


def _check_on_max_wait(value: str) -> str:
    if value in ("hangup", "callback") or re.fullmatch(
        r"queue:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value
    ):
        return value
    raise ValueError(f"{value!r} is not valid here: use hangup, callback or queue:<name>")


def _sorted_steps(steps: tuple[Escalation, ...]) -> tuple[Escalation, ...]:
    afters = [step.after for step in steps]
    if afters != sorted(afters) or len(set(afters)) != len(afters):
        raise ValueError("escalation steps must be in increasing order of 'after'")
    return steps


class Queue(_Section):
    """A queue: the skills an agent needs (minimum levels), strategy and timings in seconds."""

    # skill name to the minimum level an agent needs
    skills: dict[SkillName, Level] = Field(default_factory=dict)
    # how the agent for a call is picked (docs/acd.md)
    strategy: Strategy = "ring-all"
    # seconds an agent's phone rings before the call tries another
    ring_timeout: PositiveSeconds = 20
    retry_delay: Seconds = 5  # an agent who did not answer is not rung again for this long
    reject_delay: Seconds = 5  # an agent who rejected (486/603) is not rung again for this long
    # seconds after a call before the agent is offered the next
    wrap_up: Seconds = 10
    # seconds a caller waits at most, then on_max_wait
    max_wait: PositiveSeconds = 600
    # hangup, callback (the caller may leave a number) or queue:NAME
    on_max_wait: Annotated[str, AfterValidator(_check_on_max_wait)] = "hangup"
    # answered within this many seconds counts as in service level
    service_level: PositiveSeconds = 20
    join_empty: bool = False  # join even when no agent able to serve is logged in
    join_paused: bool = True  # join when every logged-in agent able to serve is paused
    leave_empty: bool = False  # take waiting callers out when the last such agent logs out
    # after some waiting, the call needs other skills
    escalation: Annotated[tuple[Escalation, ...], AfterValidator(_sorted_steps)] = ()
    max_misses: Annotated[int, Field(ge=0)] = 3  # unanswered rings in a row that pause; 0 never
    # An agent's leg that ends from the agent's side (BYE, media timeout, an error) within
    # this many seconds of answering puts the caller back at the head of the queue and
    # counts a miss against the agent (a crashed phone, or a dumped call); 0 never
    requeue_window: Seconds = 0
    announce_every: Seconds = 30  # position and expected wait announcements; 0 turns them off
    # the key a waiting caller presses to be called back instead
    callback_key: Annotated[str, _text(r"[0-9*#]", "one DTMF key: 0-9, * or #")] | None = None
    # times a callback dials the caller before it is given up (unanswered, busy, rejected)
    callback_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    # seconds after an unanswered callback before it is offered to an agent again
    callback_retry_delay: Seconds = 300
    # seconds a callback request may wait (across restarts too) before it expires
    callback_expiry: PositiveSeconds = 86400
    # Dispositions an agent gives a call of this queue after it (API, or *25N from the phone
    # for the Nth)
    wrap_up_codes: Annotated[tuple[Name, ...], AfterValidator(_unique)] = ()
    # true: wrap-up lasts until the agent gives the call one of wrap_up_codes
    wrap_up_code_required: bool = False

    @model_validator(mode="after")
    def _codes_when_required(self) -> Queue:
        if self.wrap_up_code_required and not self.wrap_up_codes:
            raise ValueError("wrap_up_code_required is true but wrap_up_codes lists none")
        return self


RtpPort = Annotated[int, Field(ge=1024, le=65535)]


class WebRtcConfig(_Section):
    """WebRTC media for browser phones: ICE-lite, DTLS-SRTP and rtcp-mux on each leg's port.

    A leg whose SIP runs over ws or wss, or whose offer is UDP/TLS/RTP/SAVPF,
    gets it. The DTLS certificate's SHA-256 fingerprint goes in every such
    SDP; browsers check the fingerprint, not who signed the certificate, so
    by default a self-signed one is made at each start. Give both files to
    keep one across restarts (an EC key: browsers offer ECDSA first).
    """

    # PEM certificate for DTLS; default: a new self-signed ECDSA P-256 one at each start
    certificate: Annotated[ConfigPath, AfterValidator(_existing_file)] | None = None
    # the certificate's PEM private key (EC, unencrypted)
    private_key: Annotated[ConfigPath, AfterValidator(_existing_file)] | None = None
    # seconds from the SDP exchange for ICE and DTLS to finish before the leg fails
    handshake_timeout: PositiveSeconds = 10
    # seconds without the browser's ICE consent checks before its leg ends (RFC 7675)
    consent_timeout: PositiveSeconds = 30

    @model_validator(mode="after")
    def _both_files(self) -> WebRtcConfig:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("give both certificate and private_key, or neither")
        return self


class MediaConfig(_Section):
    """RTP: the UDP port range calls use, the address in SDP, and when silence means dead.

    Each call leg takes an even port for RTP and the odd one above it for RTCP,
    so a range of N ports carries N/2 legs (a bridged call has two).
    """

    # the UDP range for RTP and RTCP: N ports carry N/2 call legs
    rtp_ports: tuple[RtpPort, RtpPort] = (20000, 29999)
    address: Host | None = None  # where RTP binds; default: the first sip.listen address
    # What SDP carries instead (a public address behind NAT); default:
    # sip.advertised_address, else the bound address, else for a wildcard
    # bind the local address on the route to each peer.
    advertised_address: Host | None = None
    media_timeout: PositiveSeconds = 30  # no RTP this long (while not on hold) ends the call
    # not used yet: the packet time follows the offer
    ptime: Annotated[int, Field(ge=10, le=60, multiple_of=10)] = 20
    # WebRTC media for browser phones: DTLS certificate, handshake and consent timeouts
    webrtc: WebRtcConfig = Field(default_factory=WebRtcConfig)

    @field_validator("rtp_ports")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if high - low < 3:
            raise ValueError(f"rtp_ports [{low}, {high}] must span at least 4 ports")
        return value


class CallsConfig(_Section):
    """Call control limits: concurrent calls, overload control, ringing and session timers.

    Past any of ``max_calls``, ``max_calls_per_second`` (``burst`` calls may
    come back to back), ``max_loop_lag`` (seconds the event loop runs late,
    smoothed) or ``max_cpu`` (share of a core), new INVITEs are refused with
    503 and ``retry_after`` before anything else is done for them; ``null``
    turns the last three off. See acd/overload.py and docs/decisions.md.
    """

    max_calls: Annotated[int, Field(ge=1)] = 5000  # beyond this new calls get 503
    max_calls_per_second: Annotated[float, Field(gt=0)] | None = None  # unlimited
    burst: Annotated[int, Field(ge=1)] | None = None  # default: one second's worth
    # seconds the event loop may run late (smoothed) before new calls are shed; null: off
    max_loop_lag: PositiveSeconds | None = 0.25
    # share of a core the process may use before new calls are shed; null: off
    max_cpu: Annotated[float, Field(gt=0, le=1)] | None = 0.9
    retry_after: Annotated[int, Field(ge=1, le=3600)] = 5  # seconds, on refusals for overload
    ring_timeout: PositiveSeconds = 30  # an extension that does not answer gets 480
    session_expires: Annotated[int, Field(ge=90)] = 1800  # RFC 4028 session timers
    # shortest session timer accepted (RFC 4028); shorter gets 422
    min_se: Annotated[int, Field(ge=90)] = 90
    # On SIGTERM, calls in progress may end by themselves for this long (new
    # calls and OPTIONS get 503) before the rest are hung up; 0 hangs up at
    # once. SIGINT, or a second SIGTERM, always stops at once.
    drain_timeout: Annotated[float, Field(ge=0, le=86400)] = 30

    @model_validator(mode="after")
    def _burst_needs_a_rate(self) -> CallsConfig:
        if self.burst is not None and self.max_calls_per_second is None:
            raise ValueError("burst is set but max_calls_per_second is not: burst of what rate?")
        return self


class PromptsConfig(_Section):
    """Prompt audio: ``acd prompts build`` renders ``texts`` with espeak-ng into ``dir``.

    ``texts`` overrides or adds to the built-in prompt texts by name.
    """

    # validate_default: the default, too, is relative to the config file's directory.
    dir: ConfigPath = Field(default=Path("prompts"), validate_default=True)
    # espeak-ng voice for rendered prompts and spoken text
    voice: Annotated[str, _text(r"[A-Za-z0-9_+-]{1,40}", "an espeak-ng voice such as en-us")] = (
        "en-us"
    )
    # espeak-ng words per minute
    speed: Annotated[int, Field(ge=80, le=400)] = 150
    # prompt name to the text to render, over the built-in texts
    texts: dict[Name, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)


class RecordingsConfig(_Section):
    """Where recordings go, how long they stay, and the free disk they must leave."""

    dir: ConfigPath | None = None  # default: recordings/ under data_dir
    # file path under dir: {date:...} (strftime) and {call_id}
    path_template: Annotated[str, Field(min_length=1)] = "{date:%Y/%m/%d}/{call_id}.wav"
    retention_days: Annotated[int, Field(ge=1)] | None = None  # keep forever when unset
    # below this free space, calls are not recorded
    min_free_mb: Annotated[int, Field(ge=0)] = 500
    # keys the agent presses during a call to pause the recording, and again to resume
    # (card numbers, PCI DSS); the paused stretch is silence. null: only the API does it
    pause_keys: Annotated[str, _text(r"[0-9*#]{1,4}", "1 to 4 keys of 0-9, * and #")] | None = "*7"


_EVENT_TYPES = (
    "CallArrived",
    "CallSetup",
    "CallEnded",
    "IvrResponse",
    "QueueJoined",
    "QueueLeft",
    "RingAttempt",
    "AgentOffered",
    "AgentStateChanged",
    "ConsultationChanged",
    "RecordingError",
)


def _check_webhook_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise ValueError("use http://host[:port]/path or https://host[:port]/path")
    return value


def _check_webhook_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 16:
        raise ValueError("a webhook secret must be at least 16 characters")
    return value


def _unique_names(webhooks: tuple[Webhook, ...]) -> tuple[Webhook, ...]:
    _unique(tuple(w.name for w in webhooks))
    return webhooks


class Webhook(_Section):
    """A receiver of engine events: POSTed in order, signed, retried until taken."""

    # the subscription's name, in logs and the delivery log
    name: Name
    # where to POST each event
    url: Annotated[str, AfterValidator(_check_webhook_url)]
    # event types to send (docs/events.md); empty sends every type
    events: tuple[Literal[_EVENT_TYPES], ...] = ()  # type: ignore[valid-type]
    # HMAC-SHA256 key for the Webhook-Signature header; never logged
    secret: Annotated[SecretStr, AfterValidator(_check_webhook_secret)]
    # longest wait in seconds between retries of a failed delivery
    retry_max: Annotated[float, Field(ge=0.5, le=3600)] = 60
    # seconds to wait for the receiver's answer
    timeout: Annotated[float, Field(gt=0, le=120)] = 10


class LoggingConfig(_Section):
    """Log level for the whole process, and what the log may say about callers."""

    level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    # Calling numbers in the log are masked to their last four digits unless this is set.
    show_numbers: bool = False
    format: Literal["text", "json"] = "text"  # json: one object a line, for log shippers
    # every SIP message sent and received, whole (digest responses redacted), at DEBUG
    # on logger sip.trace whatever the level: for troubleshooting, it shows numbers
    sip_trace: bool = False


def _default_data_dir() -> Path:
    return Path.cwd() / "data"


PauseReasons = Annotated[tuple[Name, ...], Field(min_length=1), AfterValidator(_unique)]
pause_reasons_adapter: TypeAdapter[tuple[str, ...]] = TypeAdapter(PauseReasons)
"""Checks a list of pause reasons as ``Config.pause_reasons`` does."""


class Config(_Section):
    """The whole configuration of one engine, loaded by ``load_config``.

    Relative paths written in the file (``data_dir``, TLS files, a SQLite
    ``storage.url``) are relative to the directory holding the config file, so
    the service behaves the same whatever directory it is started from. When
    ``data_dir`` is not in the file it is ``data`` under the current working
    directory; ``ACD_DATA_DIR`` is likewise taken relative to the working
    directory.
    """

    sip: SipConfig = Field(default_factory=SipConfig)
    registrar: RegistrarConfig = Field(default_factory=RegistrarConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    # the database, CDR journal, recordings and caches; default ./data in the working directory
    data_dir: ConfigPath = Field(default_factory=_default_data_dir)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # the people who answer calls
    agents: tuple[Agent, ...] = ()
    # carriers and PBXs
    trunks: tuple[Trunk, ...] = ()
    # dialled numbers to IVR flows, queues, extensions or refusals
    routes: tuple[Route, ...] = ()
    # queue name to its settings
    queues: dict[Name, Queue] = Field(default_factory=dict)
    # call variables every call starts with, for IVR flows ({name} in prompts, condition
    # nodes); ACD_VARIABLES="name=value,..." adds to them
    variables: dict[VarName, VarValue] = Field(default_factory=dict)
    # the reasons an agent may give for a pause
    pause_reasons: PauseReasons = DEFAULT_PAUSE_REASONS
    media: MediaConfig = Field(default_factory=MediaConfig)
    calls: CallsConfig = Field(default_factory=CallsConfig)
    # Validated from {} so that its default dir, too, is resolved against the file.
    prompts: PromptsConfig = Field(default_factory=dict, validate_default=True)
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    # IVR flow files, one flow per *.yaml; relative to the config file like every path.
    ivr_dir: ConfigPath = Field(default=Path("ivr"), validate_default=True)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # receivers of engine events (docs/events.md)
    webhooks: Annotated[tuple[Webhook, ...], AfterValidator(_unique_names)] = ()
    _exact_routes: dict[str, Route] = PrivateAttr(default_factory=dict)
    _agents: dict[str, Agent] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        # setdefault: with duplicates the first one wins, matching cross_check's report.
        for route in self.routes:
            if not route.is_pattern:
                self._exact_routes.setdefault(route.match, route)
        for agent in self.agents:
            self._agents.setdefault(agent.username, agent)

    def replaced(self, **sections: Any) -> Config:
        """A copy with whole sections replaced by values already validated (``acd.admin``)."""
        new = self.model_copy(update=sections)
        new._exact_routes = {}
        new._agents = {}
        new.model_post_init(None)
        return new

    def route_for(self, number: str) -> Route | None:
        """The route for a dialled number: an exact match, else the first matching pattern."""
        exact = self._exact_routes.get(number)
        if exact is not None:
            return exact
        return next((r for r in self.routes if r.is_pattern and r.matches(number)), None)

    def agent(self, username: str) -> Agent | None:
        return self._agents.get(username)

    def trunk_for_address(self, address: str) -> Trunk | None:
        """The first trunk that accepts requests from IP ``address``."""
        return next((t for t in self.trunks if t.accepts_from(address)), None)


def _duplicates(values: list[str]) -> Iterator[tuple[int, str]]:
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            yield index, f"{value!r} is already used by entry {first[value]}"
        else:
            first[value] = index


def cross_check(config: Config) -> list[tuple[Loc, str]]:
    """Problems that span entries or sections, each with the key path it concerns."""
    problems: list[tuple[Loc, str]] = []
    for index, message in _duplicates([a.username for a in config.agents]):
        problems.append((("agents", index, "username"), f"duplicate username: {message}"))
    for index, message in _duplicates([t.name for t in config.trunks]):
        problems.append((("trunks", index, "name"), f"duplicate trunk name: {message}"))
    for index, message in _duplicates([r.match for r in config.routes]):
        problems.append((("routes", index, "match"), f"duplicate route: {message}"))
    for index, route in enumerate(config.routes):
        if route.queue is not None and route.queue not in config.queues:
            known = ", ".join(sorted(config.queues)) or "none defined"
            problems.append(
                (("routes", index, "queue"), f"unknown queue {route.queue!r} (queues: {known})")
            )
    for name, queue in config.queues.items():
        target = queue.on_max_wait.removeprefix("queue:")
        if queue.on_max_wait.startswith("queue:") and target not in config.queues:
            known = ", ".join(sorted(config.queues))
            problems.append(
                (("queues", name, "on_max_wait"), f"unknown queue {target!r} (queues: {known})")
            )
    for index, agent in enumerate(config.agents):
        for queue_name in agent.weights:
            if queue_name not in config.queues:
                known = ", ".join(sorted(config.queues)) or "none defined"
                problems.append(
                    (
                        ("agents", index, "weights", queue_name),
                        f"unknown queue {queue_name!r} (queues: {known})",
                    )
                )
    return problems
