"""One engine per data directory: an exclusive lock on ``data_dir/acd.lock``.

Two engines on one directory would both replay and append to the CDR
journal, both run recording retention, and (with SQLite) share a database
each believes it owns. The lock is ``flock`` on a file kept open for the
life of the process, so it goes with the process however it ends (even
SIGKILL): no stale lock to clean up. The file says who holds it, for the
message the second engine prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["DataDirInUse", "DataLock"]

LOCK_NAME = "acd.lock"


class DataDirInUse(OSError):
    """Another process holds the data directory's lock."""


class DataLock:
    """The held lock of one data directory; ``release()`` (or process exit) frees it."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUse(
                f"data directory {directory} is in use by another engine ({holder}); "
                "stop it, or give this engine its own data_dir (ACD_DATA_DIR)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)

    def release(self) -> None:
        """Unlock (the file stays: removing it would race with the next engine's open)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
