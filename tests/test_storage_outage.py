"""Call records survive PostgreSQL going away, mid-run or before the engine starts.

A real engine (``acd serve``) with ``storage.url`` on a private PostgreSQL
cluster takes 200 real SIPp calls, 20 a second. Its flow answers, plays a
short prompt and transfers the caller to an extension nobody has registered,
which ends the call: each call leaves one CDR (disposition ``transferred``)
and one ``TRANSFER`` event, so both CDRs and events are accounted for.
PostgreSQL is stopped (``pg_ctl stop -m fast``, an operator's stop) while
calls flow, and started again once the journal holds records. Afterwards
every call SIPp placed has exactly one CDR and one event in the database,
and the journal is empty.

The URL carries a password (the cluster trusts every local connection, so
any will do) that must never reach the engine's log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from .conftest import RunningEngine
from .interop_helpers import metric
from .pg import PgCluster, running_cluster
from .sipp_load import calls_seen, load_config, start_load

pytestmark = pytest.mark.interop

CALLS = 200
RATE = 20
PASSWORD = "Pg-outage-s3cret"  # a test value the log must never show

FLOW = """\
name: load
start: goodbye
nodes:
  goodbye:
    type: play
    prompts: [thank_you_goodbye]
    next: away
  away:
    type: transfer
    target: "1001"
"""

WAIT = 90.0  # deadline for anything the load drives: generous for a loaded 2-core machine


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A cluster of this module's own: stopping it must not disturb other tests."""
    yield from running_cluster()


def with_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def query(url: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return list(await connection.fetch(sql))
        finally:
            await connection.close()

    return asyncio.run(run())


def stored_calls(url: str) -> int:
    try:
        return int(query(url, "SELECT count(*) FROM calls")[0][0])
    except (OSError, asyncpg.PostgresError):
        return -1  # not up yet


def journal_lines(engine_dir: Path) -> int:
    journal = engine_dir / "data" / "journal" / "records.jsonl"
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def check_everything_stored(url: str, tmp_path: Path, engine: RunningEngine) -> None:
    """Every call SIPp placed: one CDR, one event, in the database; the journal empty."""
    placed = calls_seen(tmp_path / "sipp")
    assert len(placed) == CALLS
    assert all(call.answered and call.hung_up_by_engine for call in placed.values())

    def all_in() -> bool:
        return stored_calls(url) >= CALLS and journal_lines(tmp_path) == 0

    wait_until(all_in, "every CDR in PostgreSQL and the journal emptied")
    rows = query(url, "SELECT call_id, sip_call_id, disposition, ended_at FROM calls")
    assert sorted(row["sip_call_id"] for row in rows) == sorted(placed)
    assert {row["disposition"] for row in rows} == {"transferred"}
    assert all(row["ended_at"] is not None for row in rows)
    events = query(url, "SELECT call_id, event, data FROM call_events")
    assert sorted(row["call_id"] for row in events) == sorted(row["call_id"] for row in rows)
    assert {row["event"] for row in events} == {"TRANSFER"}
    assert all(row["data"] == '{"target": "1001"}' for row in events)

    assert metric(engine, "storage_journal_pending") == 0
    log = engine.log()
    assert PASSWORD not in log
    assert log.count("unavailable (") == 1, log
    assert log.count("answers again after") == 1, log
    assert "Traceback" not in log, log


def test_postgres_stopped_mid_run_loses_no_call(
    tmp_path: Path, cluster: PgCluster, engine_factory: Callable[[Path], RunningEngine]
) -> None:
    url = with_password(cluster.create_database())
    engine = engine_factory(load_config(tmp_path, FLOW, storage_url=url))
    with start_load(
        engine, tmp_path / "sipp", "engine_hangs_up.xml", calls=CALLS, rate=RATE
    ) as sipp:
        try:
            wait_until(lambda: stored_calls(url) >= 30, "the first CDRs in PostgreSQL")
            cluster.stop("fast")
            # 40 calls' CDRs and events journaled: the outage spans real traffic.
            wait_until(lambda: journal_lines(tmp_path) >= 80, "records in the journal")
            assert metric(engine, "storage_journal_pending") >= 80
        finally:
            if not cluster.running():
                cluster.start()
        assert sipp.wait(WAIT) == 0, sipp.describe()
    check_everything_stored(url, tmp_path, engine)


def test_postgres_down_when_the_engine_starts_loses_no_call(
    tmp_path: Path, cluster: PgCluster, engine_factory: Callable[[Path], RunningEngine]
) -> None:
    url = with_password(cluster.create_database())
    cluster.stop("fast")
    try:
        engine = engine_factory(load_config(tmp_path, FLOW, storage_url=url))
        with start_load(
            engine, tmp_path / "sipp", "engine_hangs_up.xml", calls=CALLS, rate=RATE
        ) as sipp:
            wait_until(lambda: journal_lines(tmp_path) >= 80, "records in the journal")
            cluster.start()
            assert sipp.wait(WAIT) == 0, sipp.describe()
    finally:
        if not cluster.running():
            cluster.start()
    check_everything_stored(url, tmp_path, engine)
    # The schema was created by the engine once the server answered.
    assert query(url, "SELECT max(version) FROM schema_migrations")[0][0] >= 1
