"""Choosing the back end from the configuration."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..config import Config
from ._base import Storage, StorageError
from ._postgres import PostgresStorage
from ._sqlite import SqliteStorage

__all__ = ["DEFAULT_SQLITE_FILE", "describe_storage", "open_storage", "storage_for"]

DEFAULT_SQLITE_FILE = "acd.db"
"""The SQLite file in ``data_dir`` used when ``storage.url`` is not set."""


def storage_for(config: Config) -> Storage:
    """The back end ``config.storage.url`` names, not yet opened.

    No url: SQLite in ``data_dir``. ``sqlite:///path`` (made absolute by the
    config loader) or ``postgresql://...`` / ``postgres://...``.
    """
    url = config.storage.url
    if url is None:
        return SqliteStorage(config.data_dir / DEFAULT_SQLITE_FILE)
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        # sqlite:///relative.db or sqlite:////absolute.db: the path follows the third slash.
        return SqliteStorage(Path(rest[1:]))
    if scheme in ("postgresql", "postgres"):
        return PostgresStorage(url)
    raise StorageError(f"unsupported storage url scheme {scheme!r}")


async def open_storage(config: Config) -> Storage:
    """Open the configured back end, applying pending migrations; close it when done."""
    storage = storage_for(config)
    await storage.open()
    return storage


def describe_storage(config: Config) -> str:
    """Where records go, for the log: the SQLite file, or the database url without its password."""
    url = config.storage.url
    if url is None:
        return f"sqlite:///{config.data_dir / DEFAULT_SQLITE_FILE}"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
