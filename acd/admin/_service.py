"""The live configuration: the YAML file's settings with the runtime sections from the database.

``AdminService`` owns the engine's current :class:`~acd.config.Config`.
At start it seeds an empty database from the file, or takes the runtime
sections (agents, queues, routes, pause reasons) from the database, which
then wins over the file. A change is checked as the whole configuration it
would make (each entry against the schema, then across sections, then the
IVR flows, then the live calls), written as the next revision, and handed
to ``apply``, which changes the running engine in place. Every
``sync_interval`` the revision is read again, so a change made by another
node or by ``acd config import`` reaches this one within seconds, and a
database that was down at start is picked up once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pydantic
from pydantic import BaseModel

import ivr

from ..config import Agent, Config, Queue, Route, cross_check, pause_reasons_adapter
from ..flows import flow_problems
from ._store import Change, ConfigStore, Entries, RevisionConflict, Snapshot

__all__ = [
    "MODELS",
    "AdminService",
    "ConfigInvalid",
    "ConfigUnavailable",
    "StaleRevision",
    "config_with",
    "entries_of",
]

log = logging.getLogger(__name__)

MODELS: Mapping[str, type[BaseModel]] = {"agents": Agent, "queues": Queue, "routes": Route}
"""The schema of one entry of each section (a pause reason is a name)."""

KEYS: Mapping[str, str] = {"agents": "username", "queues": "name", "routes": "match"}
"""The field that names an entry; a queue's name is its key in the YAML file, not a field."""


class ConfigInvalid(ValueError):
    """A change that would make a configuration the engine refuses; names the field."""

    def __init__(self, field: str, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.problems = list(problems) or [(field, message)]


class StaleRevision(RevisionConflict):
    """The change was made against a revision (``If-Match``) that is no longer current."""


class ConfigUnavailable(RuntimeError):
    """The database has not answered since start: changes wait until it does."""


def _field(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validate_entry(section: str, body: Mapping[str, Any], where: str = "") -> BaseModel:
    """``body`` as an entry of ``section``; ConfigInvalid naming every bad field."""
    try:
        return MODELS[section].model_validate(dict(body))
    except pydantic.ValidationError as exc:
        problems = [
            (_field((*([where] if where else []), *error["loc"])), error["msg"])
            for error in exc.errors()
        ]
        raise ConfigInvalid(problems[0][0], problems[0][1], problems) from None


def _body_of(section: str, model: BaseModel) -> dict[str, Any]:
    """An entry in the YAML file's shape: what was set, secrets in clear (for the database)."""
    body: dict[str, Any] = json.loads(model.model_dump_json(exclude_unset=True))
    if isinstance(model, Agent):
        body["password"] = model.password.get_secret_value()
    if section == "queues":
        body.pop("name", None)
    return body


def entries_of(config: Config) -> Entries:
    """The runtime sections of ``config`` as entries, in order."""
    return {
        "agents": [(a.username, _body_of("agents", a)) for a in config.agents],
        "queues": [(name, _body_of("queues", q)) for name, q in config.queues.items()],
        "routes": [(r.match, _body_of("routes", r)) for r in config.routes],
        "pause_reasons": [(reason, {}) for reason in config.pause_reasons],
    }


Models = dict[tuple[str, str], tuple[Mapping[str, Any], BaseModel]]
"""Validated entries by (section, name), with the body each was validated from."""


def _model(section: str, name: str, body: Mapping[str, Any], models: Models) -> Any:
    """``body`` validated, or the model already made from an equal body."""
    known = models.get((section, name))
    if known is not None and known[0] == body:
        return known[1]
    model = validate_entry(section, body, f"{section}.{name}")
    models[section, name] = (body, model)
    return model


def config_with(
    base: Config,
    entries: Entries,
    flows: Mapping[str, ivr.Flow],
    models: Models | None = None,
) -> Config:
    """``base`` with the runtime sections from ``entries``, checked as the file would be.

    ``models`` keeps what was validated, so a change to one of 2,000 agents
    validates one entry, not 2,000, on the event loop.
    """
    cache: Models = {} if models is None else models
    agents = tuple(_model("agents", name, body, cache) for name, body in entries["agents"])
    queues = {name: _model("queues", name, body, cache) for name, body in entries["queues"]}
    routes = tuple(_model("routes", name, body, cache) for name, body in entries["routes"])
    try:
        reasons = pause_reasons_adapter.validate_python([n for n, _ in entries["pause_reasons"]])
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigInvalid(_field(("pause_reasons", *error["loc"])), error["msg"]) from None
    config = base.replaced(agents=agents, queues=queues, routes=routes, pause_reasons=reasons)
    problems = [(_field(loc), message) for loc, message in cross_check(config)]
    problems += [("ivr", message) for message in flow_problems(config, flows)]
    if problems:
        raise ConfigInvalid(problems[0][0], problems[0][1], problems)
    return config


class AdminService:
    """The engine's configuration, changed at run time (see the module docstring)."""

    def __init__(
        self,
        store: ConfigStore,
        base: Config,
        flows: Mapping[str, ivr.Flow],
        apply: Callable[[Config], None],
        *,
        check_live: Callable[[Config], None] | None = None,
        sync_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.base = base
        self.flows = flows
        self.apply = apply
        self.check_live = check_live
        self.sync_interval = sync_interval
        self.config = base
        self.revision: int | None = None
        """The revision applied; None while the database has not answered."""
        self.entries: Entries = entries_of(base)
        self._positions: dict[tuple[str, str], int] = {}
        self._models: Models = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> Config:
        """Seed or load the runtime sections; on a database outage, the file's until it answers."""
        try:
            await self._load(seed=True)
        except Exception as exc:
            log.warning(
                "runtime configuration: the database did not answer (%s); running on the "
                "file's agents, queues and routes until it does",
                exc,
            )
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="config-sync")
        return self.config

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.sync()
            except Exception as exc:
                log.debug("runtime configuration: sync deferred (%s)", exc)

    async def sync(self) -> bool:
        """Take a newer revision from the database; True when something was applied."""
        async with self._lock:
            if self.revision is not None and await self.store.revision() == self.revision:
                return False
            return await self._load(seed=self.revision is None)

    async def _load(self, *, seed: bool) -> bool:
        snapshot = await self.store.load()
        if snapshot is None and seed:
            entries = entries_of(self.base)
            try:
                await self.store.seed(entries)
            except Exception:
                snapshot = await self.store.load()  # another node seeded first
                if snapshot is None:
                    raise
            else:
                log.info(
                    "runtime configuration: seeded the database from the file "
                    "(%d agents, %d queues, %d routes)",
                    len(entries["agents"]),
                    len(entries["queues"]),
                    len(entries["routes"]),
                )
                snapshot = await self.store.load()
        if snapshot is None:
            return False
        return self._take(snapshot)

    def _take(self, snapshot: Snapshot) -> bool:
        if snapshot.revision == self.revision:
            return False
        try:
            config = config_with(self.base, snapshot.entries, self.flows, self._models)
        except ConfigInvalid as exc:
            # Written by a newer engine or by hand: keep running on what we have.
            log.error(
                "runtime configuration revision %d refused, staying on %s: %s",
                snapshot.revision,
                self.revision,
                exc,
            )
            return False
        first = self.revision is None
        self.revision = snapshot.revision
        self.entries = snapshot.entries
        self._positions = dict(snapshot.positions)
        self.config = config
        self.apply(config)
        if first and snapshot.revision > 1:
            log.info(
                "runtime configuration: revision %d from the database; the file's agents, "
                "queues, routes and pause reasons are not read (`acd config export` shows "
                "the live ones)",
                snapshot.revision,
            )
        elif not first:
            log.info("runtime configuration: now at revision %d", snapshot.revision)
        return True

    # -- changes ---------------------------------------------------------------------

    def entry(self, section: str, name: str) -> dict[str, Any] | None:
        return next((body for n, body in self.entries[section] if n == name), None)

    def model(self, section: str, name: str, body: Mapping[str, Any]) -> BaseModel:
        """The validated entry for ``body`` (made once per body, not per request)."""
        result: BaseModel = _model(section, name, body, self._models)
        return result

    async def put(
        self,
        section: str,
        name: str,
        body: Mapping[str, Any] | None,
        *,
        by: str,
        expected: int | None = None,
        position: int | None = None,
    ) -> int:
        """Write (or with ``body`` None remove) one entry; the new revision.

        ``position`` places the entry (0 first); an existing entry keeps its
        place unless given one, a new one goes last.
        """
        async with self._lock:
            items = list(self.entries[section])
            index = next((i for i, (n, _) in enumerate(items) if n == name), None)
            if index is not None:
                del items[index]
            if body is not None:
                where = index if position is None else position
                items.insert(
                    len(items) if where is None else min(where, len(items)), (name, dict(body))
                )
            positions = dict(self._positions)
            known = positions.get((section, name))
            if body is None:
                positions.pop((section, name), None)
                changes = [Change(section, name, None)]
            elif position is None and known is not None:
                changes = [Change(section, name, dict(body), known)]
            elif position is None or position >= len(items) - 1:
                last = max((p for (s, _), p in positions.items() if s == section), default=-1)
                positions[section, name] = last + 1
                changes = [Change(section, name, dict(body), last + 1)]
            else:
                changes = self._renumber(section, items, positions)
            action = "written" if body is not None else "removed"
            return await self._commit(
                section, items, changes, positions, by, expected, f"{section} {name} {action}"
            )

    async def put_section(
        self,
        section: str,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        by: str,
        expected: int | None = None,
    ) -> int:
        """Replace every entry of ``section`` (the pause reasons are edited as one list)."""
        async with self._lock:
            entries = [(name, dict(body)) for name, body in items]
            positions = {key: p for key, p in self._positions.items() if key[0] != section}
            gone = [Change(section, n, None) for n, _ in self.entries[section]]
            changes = gone + self._renumber(section, entries, positions)
            return await self._commit(
                section, entries, changes, positions, by, expected, f"{section} replaced"
            )

    @staticmethod
    def _renumber(
        section: str,
        items: Sequence[tuple[str, dict[str, Any]]],
        positions: dict[tuple[str, str], int],
    ) -> list[Change]:
        for index, (name, _) in enumerate(items):
            positions[section, name] = index
        return [Change(section, name, body, index) for index, (name, body) in enumerate(items)]

    async def _commit(
        self,
        section: str,
        items: list[tuple[str, dict[str, Any]]],
        changes: list[Change],
        positions: dict[tuple[str, str], int],
        by: str,
        expected: int | None,
        what: str,
    ) -> int:
        """Check the configuration ``items`` make, write it as the next revision, apply it."""
        if self.revision is None:
            raise ConfigUnavailable("the database has not answered since start")
        if expected is not None and expected != self.revision:
            raise StaleRevision(expected, self.revision)
        entries = {**self.entries, section: items}
        config = config_with(self.base, entries, self.flows, self._models)
        if self.check_live is not None:
            self.check_live(config)
        try:
            revision = await self.store.apply(self.revision, changes, by)
        except RevisionConflict:
            with contextlib.suppress(Exception):
                await self._load(seed=False)  # so the next attempt starts from theirs
            raise
        self.revision = revision
        self.entries = entries
        self._positions = positions
        self.config = config
        self.apply(config)
        log.info("runtime configuration: %s by %s (revision %d)", what, by, revision)
        return revision
