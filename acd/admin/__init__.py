"""Runtime administration: agents, queues, routes and pause reasons changed without a restart.

``AdminService`` keeps the live configuration (the YAML file's settings with
the runtime sections from the database) and applies each change to the
running engine; ``ConfigApi`` serves it under ``/api/v1/config``;
``ConfigStore`` is its table access. docs/administration.md is the guide.
"""

from ._service import (
    AdminService,
    ConfigInvalid,
    ConfigUnavailable,
    config_with,
    entries_of,
)
from ._store import SECTIONS, Change, ConfigStore, RevisionConflict, Snapshot

__all__ = [
    "SECTIONS",
    "AdminService",
    "Change",
    "ConfigInvalid",
    "ConfigStore",
    "ConfigUnavailable",
    "RevisionConflict",
    "Snapshot",
    "config_with",
    "entries_of",
]
