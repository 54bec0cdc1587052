"""``acd users``: add, re-password and list the web users in the engine's database.

``acd users add NAME --role admin`` is how the first admin is made (the other
way is ``ACD_ADMIN_USER`` and ``ACD_ADMIN_PASSWORD`` at start). The password
is read from a terminal without echo, twice, or as one line from stdin with
``--password-stdin``; never from the command line, where ``ps`` and shell
history would show it. Runs beside a running engine (SQLite in WAL mode and
PostgreSQL both take a second writer).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import sys

from acd.config import Config
from acd.identity import (
    AccessService,
    IdentityStore,
    PasswordHasher,
    PasswordTooWeak,
    Role,
    agent_accounts,
)
from acd.storage import storage_for

__all__ = ["add_users_parser"]

EXIT_FAILED = 1


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") or None
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        print("the passwords differ", file=sys.stderr)
        return None
    return first


def _service(config: Config) -> AccessService:
    store = IdentityStore(
        storage_for(config), PasswordHasher(log_n=config.security.password_hash_cost)
    )
    return AccessService(store, agent_accounts(config))


async def _add(config: Config, args: argparse.Namespace, password: str) -> int:
    service = _service(config)
    async with service.store.storage:
        try:
            hashed = await service.hash_password(password, args.username)
        except PasswordTooWeak as exc:
            print(f"password: {exc}", file=sys.stderr)
            return EXIT_FAILED
        created = await service.store.create_user(
            args.username, Role(args.role), team=args.team, password_hash=hashed
        )
    if created is None:
        print(f"user {args.username!r} exists; change it over the API", file=sys.stderr)
        return EXIT_FAILED
    print(f"added {args.username} ({args.role})")
    return 0


async def _passwd(config: Config, username: str, password: str) -> int:
    """A new password for ``username`` (and an end to their sessions): how an admin who
    forgot theirs gets back in, from a shell on the machine."""
    service = _service(config)
    async with service.store.storage:
        user = await service.store.get_user(username)
        if user is None:
            print(f"no user {username!r} in the database", file=sys.stderr)
            return EXIT_FAILED
        try:
            hashed = await service.hash_password(password, username)
        except PasswordTooWeak as exc:
            print(f"password: {exc}", file=sys.stderr)
            return EXIT_FAILED
        await service.store.update_user(dataclasses.replace(user, password_hash=hashed))
        ended = await service.store.revoke_sessions_of(username)
    print(f"new password for {username}; {ended} sessions ended")
    return 0


async def _list(config: Config) -> int:
    service = _service(config)
    async with service.store.storage:
        users = await service.store.list_users()
    for user in users:
        state = " disabled" if user.disabled else ""
        print(f"{user.username}\t{user.role.value}\t{user.team or '-'}{state}")
    return 0


def add_users_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_for: object,
) -> None:
    """Add ``acd users add|passwd|list``; ``config_for(command, path)`` loads the configuration."""
    users = commands.add_parser("users", help="add and list the web users (roles, sign-in)")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add a user; the password is asked for, never an argument")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--team", help="the team a team lead leads, or an agent belongs to")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line of stdin"
    )
    passwd = sub.add_parser("passwd", help="set a user's password and end their sessions")
    passwd.add_argument("username")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line of stdin"
    )
    listing = sub.add_parser("list", help="list the users in the database")
    for parser in (add, passwd, listing):
        parser.add_argument("--config", metavar="FILE", help="configuration (storage, agents)")

    def run(args: argparse.Namespace) -> int:
        loaded = config_for("users", args.config)  # type: ignore[operator]
        if loaded is None:
            return 2
        _, config = loaded
        if args.users_command == "list":
            return asyncio.run(_list(config))
        password = _read_password(args.password_stdin)
        if password is None:
            print("no password given", file=sys.stderr)
            return EXIT_FAILED
        if args.users_command == "passwd":
            return asyncio.run(_passwd(config, args.username, password))
        return asyncio.run(_add(config, args, password))

    users.set_defaults(handler=run)
