"""Storage metrics: the record writer's backlog and failures, read at scrape time.

A database that stops answering does not lose records (they are journalled
and replayed), but it shows here first: ``storage_journal_pending`` climbs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StorageCollector", "WriterLike"]


class WriterLike(Protocol):
    """What is read of ``acd.storage.RecordWriter``."""

    @property
    def pending(self) -> int: ...
    @property
    def journaled(self) -> int: ...

    write_failures: int
    lost: int


class StorageCollector(Collector):
    """Exposes the writer's queue, journal backlog and failures; nothing while it is absent."""

    def __init__(self, writer: WriterLike | None = None) -> None:
        self.writer = writer

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        w = self.writer
        yield GaugeMetricFamily(
            "storage_journal_pending",
            "Records in the local journal, waiting for the database to come back",
            value=w.journaled if w is not None else 0,
        )
        yield GaugeMetricFamily(
            "storage_records_pending",
            "Records submitted but not yet in the database (memory and journal)",
            value=w.pending if w is not None else 0,
        )
        yield CounterMetricFamily(
            "storage_write_failures",
            "Batches the database refused or did not take in time",
            value=w.write_failures if w is not None else 0,
        )
        yield CounterMetricFamily(
            "storage_records_lost",
            "Records neither stored nor journalled (journal unwritable)",
            value=w.lost if w is not None else 0,
        )
