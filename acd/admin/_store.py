"""The runtime configuration's rows: sections of entries, and one revision over them all.

Written straight to the database in one transaction per change, each
guarded by the revision it was made against: ``UPDATE config_revision ...
WHERE revision = ?`` changes no row when another admin or another node got
there first, and the change is refused as a conflict rather than applied
over theirs. Reads are whole snapshots, small (hundreds of rows) and rare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..storage import Storage

__all__ = ["SECTIONS", "Change", "ConfigStore", "RevisionConflict", "Snapshot"]

SECTIONS = ("agents", "queues", "routes", "pause_reasons")
"""The sections kept in the database; every other key stays in the YAML file."""

Entries = dict[str, list[tuple[str, dict[str, Any]]]]
"""Section name to its entries in order, each (name, body)."""


class RevisionConflict(Exception):
    """The configuration changed since the revision a change was made against."""

    def __init__(self, expected: int, found: int | None) -> None:
        super().__init__(f"the configuration is at revision {found}, not {expected}")
        self.expected = expected
        self.found = found


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The runtime sections as stored at one revision."""

    revision: int
    entries: Entries
    positions: dict[tuple[str, str], int]
    seeded_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """One entry written (``body``) or removed (``body`` None) at ``position``."""

    section: str
    name: str
    body: dict[str, Any] | None
    position: int = 0


@dataclass(slots=True)
class _Sql:
    statements: list[tuple[str, Sequence[object]]] = field(default_factory=list)

    def add(self, sql: str, *params: object) -> None:
        self.statements.append((sql, params))


class ConfigStore:
    """Reads and writes the runtime sections over any ``Storage`` back end."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock
        self._postgres = storage.dialect.name == "postgres"

    def _sql(self, text: str) -> str:
        """``?`` placeholders in the dialect's style (``$1``... for PostgreSQL)."""
        if not self._postgres:
            return text
        parts = text.split("?")
        return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]

    async def revision(self) -> int | None:
        """The current revision, or None before the first seeding."""
        rows = await self.storage.query("SELECT revision FROM config_revision WHERE id = 1")
        return int(rows[0][0]) if rows else None

    async def load(self) -> Snapshot | None:
        """Every stored entry with its revision; None when nothing was ever seeded.

        Two reads, so the revision is read again after the entries: a change in
        between is seen as a newer revision next time, never as a mixed state
        filed under the old one.
        """
        head = await self.storage.query(
            "SELECT revision, seeded_at, updated_at FROM config_revision WHERE id = 1"
        )
        if not head:
            return None
        rows = await self.storage.query(
            "SELECT section, name, body, position FROM config_items "
            "ORDER BY section, position, name"
        )
        entries: Entries = {section: [] for section in SECTIONS}
        positions: dict[tuple[str, str], int] = {}
        for section, name, body, position in rows:
            if section in entries:
                entries[section].append((str(name), json.loads(body)))
                positions[str(section), str(name)] = int(position)
        after = await self.revision()
        if after != int(head[0][0]):
            raise RevisionConflict(int(head[0][0]), after)
        revision, seeded_at, updated_at = head[0]
        return Snapshot(int(revision), entries, positions, float(seeded_at), float(updated_at))

    async def seed(self, entries: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]]) -> int:
        """Write the first revision; fails (the key exists) when another node seeded first."""
        now = self.clock()
        sql = _Sql()
        sql.add(
            self._sql(
                "INSERT INTO config_revision (id, revision, seeded_at, updated_at) "
                "VALUES (1, 1, ?, ?)"
            ),
            now,
            now,
        )
        self._write_all(sql, entries, revision=1, now=now, by="seed")
        await self.storage.execute_all(sql.statements)
        return 1

    async def replace(
        self,
        expected: int,
        entries: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
        by: str,
    ) -> int:
        """Replace every runtime section at once (``acd config import``)."""
        now = self.clock()
        sql = self._bump(expected, now)
        sql.add("DELETE FROM config_items")
        self._write_all(sql, entries, revision=expected + 1, now=now, by=by)
        return await self._commit(sql, expected)

    async def apply(self, expected: int, changes: Sequence[Change], by: str) -> int:
        """Write ``changes`` as revision ``expected + 1``; RevisionConflict if it moved on."""
        now = self.clock()
        revision = expected + 1
        sql = self._bump(expected, now)
        for change in changes:
            sql.add(
                self._sql("DELETE FROM config_items WHERE section = ? AND name = ?"),
                change.section,
                change.name,
            )
            if change.body is not None:
                body, position = change.body, change.position
                self._insert(sql, change.section, change.name, position, body, revision, now, by)
        return await self._commit(sql, expected)

    def _bump(self, expected: int, now: float) -> _Sql:
        sql = _Sql()
        sql.add(
            self._sql(
                "UPDATE config_revision SET revision = revision + 1, updated_at = ? "
                "WHERE id = 1 AND revision = ?"
            ),
            now,
            expected,
        )
        return sql

    async def _commit(self, sql: _Sql, expected: int) -> int:
        counts = await self.storage.execute_all(sql.statements, guarded=True)
        if counts[0] != 1:
            raise RevisionConflict(expected, await self.revision())
        return expected + 1

    def _write_all(
        self,
        sql: _Sql,
        entries: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
        *,
        revision: int,
        now: float,
        by: str,
    ) -> None:
        for section, items in entries.items():
            for position, (name, body) in enumerate(items):
                self._insert(sql, section, name, position, body, revision, now, by)

    def _insert(
        self,
        sql: _Sql,
        section: str,
        name: str,
        position: int,
        body: Mapping[str, Any],
        revision: int,
        now: float,
        by: str,
    ) -> None:
        if section not in SECTIONS:
            raise ValueError(f"unknown configuration section {section!r}")
        sql.add(
            self._sql(
                "INSERT INTO config_items "
                "(section, name, position, body, revision, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            section,
            name,
            position,
            json.dumps(body, sort_keys=True, separators=(",", ":")),
            revision,
            now,
            by,
        )
