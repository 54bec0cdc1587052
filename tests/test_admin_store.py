"""The runtime configuration's table access and service on both back ends, with a fake clock.

Two writers racing is the case the revision guard exists for: the second is
refused with a RevisionConflict and the database holds the first one's change
alone. The service is checked without HTTP: a refused change leaves the
revision, the entries and the applied configuration as they were.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.admin import AdminService, Change, ConfigInvalid, ConfigStore, RevisionConflict, entries_of
from acd.config import Config, load_config
from acd.storage import Storage

from .conftest import write_config
from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import cluster, storage  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def base_config(tmp_path: Path) -> Config:
    extra = "queues:\n  sales: {skills: {}}\nroutes:\n  - {match: '200', queue: sales}\n"
    return load_config(write_config(tmp_path / "acd.yaml", agents=2, extra=extra))


async def test_a_change_against_an_older_revision_is_refused_whole(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> None:
    clock = Clock()
    store = ConfigStore(storage, clock)
    assert await store.load() is None
    await store.seed(entries_of(base_config(tmp_path)))
    with pytest.raises(Exception):  # noqa: B017 - the back end's own unique-key error
        await store.seed(entries_of(base_config(tmp_path)))  # a second node seeding too
    snapshot = await store.load()
    assert snapshot is not None and snapshot.revision == 1
    assert [name for name, _ in snapshot.entries["agents"]] == ["1001", "1002"]

    clock.now += 10
    first = [Change("queues", "vip", {"skills": {"vip": 1}}, 5)]
    assert await store.apply(1, first, "alice") == 2
    # Bob made his change against revision 1 too: nothing of it is written.
    second = [Change("queues", "sales", None), Change("queues", "other", {"skills": {}}, 6)]
    with pytest.raises(RevisionConflict) as refused:
        await store.apply(1, second, "bob")
    assert (refused.value.expected, refused.value.found) == (1, 2)
    after = await store.load()
    assert after is not None and after.revision == 2 and after.updated_at == clock.now
    assert [name for name, _ in after.entries["queues"]] == ["sales", "vip"]
    assert after.positions["queues", "vip"] == 5

    replaced = await store.replace(
        2, {"agents": [], "queues": [], "routes": [], "pause_reasons": []}, "cli"
    )
    assert replaced == 3
    empty = await store.load()
    assert empty is not None and all(not items for items in empty.entries.values())


async def test_the_service_applies_checked_changes_and_keeps_state_on_a_refusal(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> None:
    applied: list[Config] = []
    base = base_config(tmp_path)
    admin = AdminService(
        ConfigStore(storage, Clock()), base, {}, applied.append, sync_interval=3600
    )
    assert await admin.start() is admin.config
    try:
        assert admin.revision == 1 and len(applied) == 1
        await admin.put("agents", "1003", {"username": "1003", "password": "pw-1003-long"}, by="t")
        assert admin.revision == 2 and applied[-1].agent("1003") is not None
        with pytest.raises(ConfigInvalid) as bad:
            await admin.put("queues", "sales", None, by="t")  # route 200 still sends callers there
        assert bad.value.field == "routes.0.queue"
        assert admin.revision == 2 and len(applied) == 2 and "sales" in admin.config.queues

        # Another node writes revision 3; this one sees it on its next sync and applies it.
        other = AdminService(
            ConfigStore(storage, Clock()), base, {}, lambda c: None, sync_interval=3600
        )
        await other.start()
        await other.put("routes", "300", {"match": "300", "hangup": 486}, by="other")
        await other.stop()
        with pytest.raises(RevisionConflict):
            await admin.put("pause_reasons", "x", {}, by="t")  # made against revision 2
        assert admin.revision == 3  # the refusal loaded theirs
        assert applied[-1].route_for("300") is not None
        assert await admin.sync() is False  # nothing newer
    finally:
        await admin.stop()
