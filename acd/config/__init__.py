"""Typed configuration, validated once at the edge.

``load_config(path)`` reads one YAML file into a frozen :class:`Config` or
raises :class:`ConfigError` whose text names the file, line and key of every
problem, e.g. ``config/example.yaml:42: agents[3].password: Field required``.
"""

from ._dialplan import DialPattern
from ._loader import ENVIRONMENT, ConfigError, load_config
from ._schema import (
    DEFAULT_PAUSE_REASONS,
    STRATEGIES,
    Agent,
    CallsConfig,
    Config,
    HostPort,
    HttpConfig,
    LoggingConfig,
    MediaConfig,
    PromptsConfig,
    Queue,
    RecordingsConfig,
    RegistrarConfig,
    RequestLimitConfig,
    Route,
    SecurityConfig,
    SipConfig,
    SipTimers,
    StorageConfig,
    Strategy,
    TlsConfig,
    Trunk,
    cross_check,
    pause_reasons_adapter,
)

__all__ = [
    "DEFAULT_PAUSE_REASONS",
    "ENVIRONMENT",
    "STRATEGIES",
    "Agent",
    "CallsConfig",
    "Config",
    "ConfigError",
    "DialPattern",
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
    "cross_check",
    "load_config",
    "pause_reasons_adapter",
]
