"""``acd config export`` and ``acd config import``: the live runtime sections to and from YAML.

Once the database is seeded, agents, queues, routes and pause reasons are
edited over the API and the file's copies are no longer read. ``export``
writes the configuration file again with the database's sections in place
of the file's (the other keys as the file has them; YAML comments are not
kept), so it can be kept in version control or seed another database.
``import`` does the reverse: it checks a file as ``acd serve`` would and
writes its runtime sections to the database as the next revision, which
running engines take within seconds (``AdminService.sync``).

The export holds the agents' SIP passwords (a database seeded from it needs
them): a file it writes is made readable by its owner only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .admin import SECTIONS, ConfigInvalid, ConfigStore, RevisionConflict, config_with, entries_of
from .admin._store import Entries
from .config import Config, ConfigError
from .flows import load_flows_for
from .storage import storage_for

__all__ = ["add_config_parser"]

EXIT_FAILED = 1
EXIT_CONFIG_ERROR = 2

ConfigFor = Callable[[str, str | None], tuple[Path, Config] | None]


def _document(entries: Entries) -> dict[str, Any]:
    """The runtime sections in the file's shape."""
    return {
        "agents": [body for _, body in entries["agents"]],
        "queues": {name: body for name, body in entries["queues"]},
        "routes": [body for _, body in entries["routes"]],
        "pause_reasons": [name for name, _ in entries["pause_reasons"]],
    }


async def _export(path: Path, config: Config, out: Path | None) -> int:
    store = ConfigStore(storage_for(config))
    async with store.storage:
        snapshot = await store.load()
    raw = yaml.safe_load(path.read_text()) or {}
    if snapshot is None:
        print(f"acd config export: no database seeded yet; {path}'s own", file=sys.stderr)
        entries = entries_of(config)
        revision = 0
    else:
        entries, revision = snapshot.entries, snapshot.revision
    raw.update(_document(entries))
    text = f"# acd config export: revision {revision} of the runtime sections\n" + yaml.safe_dump(
        raw, sort_keys=False, allow_unicode=True
    )
    if out is None:
        sys.stdout.write(text)
        return 0
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(out, 0o600)
    print(f"wrote revision {revision} to {out}", file=sys.stderr)
    return 0


async def _import(source: Config, target: Config, by: str) -> int:
    try:
        flows = load_flows_for(target).flows
        # The target's own settings with the source's sections, checked as a whole.
        entries = entries_of(source)
        config_with(target, entries, flows)
    except (ConfigError, ConfigInvalid) as exc:
        print(f"acd config import: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    store = ConfigStore(storage_for(target))
    async with store.storage:
        for _ in range(3):
            revision = await store.revision()
            try:
                if revision is None:
                    written = await store.seed(entries)
                else:
                    written = await store.replace(revision, entries, by)
            except RevisionConflict:
                continue  # an admin changed something meanwhile: on top of theirs
            counts = ", ".join(f"{len(entries[s])} {s.replace('_', ' ')}" for s in SECTIONS)
            print(f"imported {counts} as revision {written}", file=sys.stderr)
            return 0
    print("acd config import: the configuration kept changing; try again", file=sys.stderr)
    return EXIT_FAILED


def add_config_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], config_for: ConfigFor
) -> None:
    """Add ``acd config export|import``; ``config_for(command, path)`` loads a configuration."""
    parser = commands.add_parser(
        "config", help="export or import the runtime sections (agents, queues, routes)"
    )
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    export = sub.add_parser(
        "export", help="print the configuration with the database's agents, queues and routes"
    )
    export.add_argument("--config", metavar="FILE", help="configuration (storage, other keys)")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here (mode 0600)")
    imported = sub.add_parser(
        "import", help="write a file's agents, queues, routes and pause reasons to the database"
    )
    imported.add_argument("file", metavar="FILE", help="the file whose sections are taken")
    imported.add_argument(
        "--config", metavar="FILE", help="the engine's configuration (storage); default FILE"
    )

    def run(args: argparse.Namespace) -> int:
        if args.config_command == "export":
            loaded = config_for("config export", args.config)
            if loaded is None:
                return EXIT_CONFIG_ERROR
            return asyncio.run(_export(*loaded, args.out))
        source = config_for("config import", args.file)
        target = source if args.config is None else config_for("config import", args.config)
        if source is None or target is None:
            return EXIT_CONFIG_ERROR
        return asyncio.run(_import(source[1], target[1], f"cli:{os.environ.get('USER', '?')}"))

    parser.set_defaults(handler=run)
