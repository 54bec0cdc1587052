"""Sign-in, sessions, bearer tokens and API keys: from a credential to a ``Principal``.

Two kinds of account sign in. Web users live in the database with a role,
a team and a scrypt hash. Agents from the configuration are users too, with
the agent role and their SIP password, so one person has one name and one
password on the phone and in the browser; a database user of the same name
(an agent who is also a team lead) decides the role, and its own password,
if set, replaces the SIP one for the web.

Failed sign-ins are counted per (address, user) and per address: a person
who mistypes a password waits a few minutes without locking out colleagues
behind the same office NAT, and a guesser trying many names from one
address is stopped too. A throttled attempt is refused before any hash is
computed, and a sign-in for an unknown name costs the same time as one for
a known name, so the answers and their timing do not tell which exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sip.ratelimit import FailureLimiter

from ._model import ROLE_PERMISSIONS, Permission, Principal, Role, User, reach_of
from ._passwords import PasswordHasher, check_password_strength
from ._store import ApiKey, IdentityStore, SessionRow, token_hash

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "AccessPolicy",
    "AccessService",
    "AgentAccount",
    "SignInRefused",
    "SignedIn",
    "agent_accounts",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentAccount:
    """What sign-in needs of a configured agent: the SIP password and the team."""

    password: str
    team: str | None


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Session lifetimes and sign-in throttling (``http.auth`` in the configuration)."""

    session_lifetime: float = 12 * 3600.0
    session_idle: float = 3600.0
    sign_in_failures: int = 5
    sign_in_failures_per_source: int = 50
    sign_in_window: float = 300.0
    sign_in_cooldown: float = 300.0
    session_recheck: float = 30.0
    """Seconds a checked session is trusted before the database is asked again: a
    revocation made elsewhere (another node, ``acd users passwd``) applies within it."""


class SignInRefused(Exception):
    """Sign-in failed: bad credentials, or ``retry_after`` seconds of throttling."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("throttled" if retry_after else "bad credentials")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the token goes in a cookie or an Authorization header."""

    principal: Principal
    token: str
    csrf_token: str
    expires_at: float


def agent_accounts(config: Config) -> dict[str, AgentAccount]:
    """The configured agents as sign-in accounts."""
    return {
        a.username: AgentAccount(a.password.get_secret_value(), a.team)
        for a in config.agents
        if a.enabled
    }


class AccessService:
    """Turns credentials into principals, over an ``IdentityStore``."""

    def __init__(
        self,
        store: IdentityStore,
        agents: Mapping[str, AgentAccount],
        policy: AccessPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agents = dict(agents)
        self.policy = policy or AccessPolicy()
        self.clock = clock
        p = self.policy
        self.pair_limiter = FailureLimiter(p.sign_in_failures, p.sign_in_window, p.sign_in_cooldown)
        self.source_limiter = FailureLimiter(
            p.sign_in_failures_per_source, p.sign_in_window, p.sign_in_cooldown
        )
        # One scrypt at a time: each takes a core for a few hundred ms and
        # 128 MiB; calls must keep the other core.
        self._hashing = asyncio.Semaphore(1)
        self.sign_in_failures = 0
        self.throttled = 0
        # Sessions checked lately, by token hash: the API keeps working for those
        # signed in while the database is down, and a request costs no query.
        # An entry is checked against the database again after policy.session_recheck.
        self._sessions: dict[str, tuple[SessionRow, User, float]] = {}

    def set_agents(self, agents: Mapping[str, AgentAccount]) -> None:
        """Take the agents' accounts anew; those removed, disabled or changed are checked again.

        A removed or disabled agent's sessions end at their next request (no
        user behind them any more); a new password or team applies at once.
        """
        changed = {
            name
            for name in self.agents.keys() | agents.keys()
            if self.agents.get(name) != agents.get(name)
        }
        self.agents = dict(agents)
        for name in changed:
            self.forget(name)

    @property
    def team_of(self) -> dict[str, str | None]:
        return {name: account.team for name, account in self.agents.items()}

    @property
    def hasher(self) -> PasswordHasher:
        return self.store.hasher

    # ---- principals ----------------------------------------------------------

    def principal_for(
        self,
        user: User,
        via: str,
        credential: str = "",
        scopes: Collection[Permission] | None = None,
    ) -> Principal:
        permissions = ROLE_PERMISSIONS[user.role]
        if scopes is not None:
            permissions = permissions & frozenset(scopes)
        return Principal(
            username=user.username,
            role=user.role,
            team=user.team,
            permissions=permissions,
            agents=reach_of(user.role, user.username, user.team, self.team_of),
            via=via,
            credential=credential,
        )

    async def user(self, username: str) -> User | None:
        """The user ``username`` signs in as: a database user, else a configured agent."""
        stored = await self.store.get_user(username)
        account = self.agents.get(username)
        if stored is not None:
            if stored.team is None and account is not None:
                return dataclasses.replace(stored, team=account.team)
            return stored
        if account is not None:
            return User(username, Role.AGENT, account.team)
        return None

    # ---- passwords -----------------------------------------------------------

    async def hash_password(self, password: str, username: str) -> str:
        """A stored hash of a new password; PasswordTooWeak if it is too easy."""
        check_password_strength(password, username)
        async with self._hashing:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def _password_matches(self, user: User | None, password: str) -> bool:
        stored = user.password_hash if user is not None else None
        async with self._hashing:
            if stored is None and user is not None and user.username in self.agents:
                # The SIP password, kept in clear for digest; compared in constant
                # time, after a hash's worth of work so timing does not differ.
                await asyncio.to_thread(self.hasher.verify, password, None)
                secret = self.agents[user.username].password
                return hmac.compare_digest(secret.encode(), password.encode())
            return await asyncio.to_thread(self.hasher.verify, password, stored)

    # ---- sign-in -------------------------------------------------------------

    def _retry_after(self, source: str, username: str, now: float) -> float | None:
        for limiter, key in (
            (self.pair_limiter, f"{source}\0{username}"),
            (self.source_limiter, source),
        ):
            if limiter.is_blocked(key, now):
                return limiter.cooldown
        return None

    async def sign_in(self, username: str, password: str, source: str) -> SignedIn:
        """A new session for ``username``, or SignInRefused."""
        now = self.clock()
        retry = self._retry_after(source, username, now)
        if retry is not None:
            self.throttled += 1
            raise SignInRefused(retry)
        user = await self.user(username)
        ok = await self._password_matches(user, password)
        if not ok or user is None or user.disabled:
            self.sign_in_failures += 1
            now = self.clock()
            self.pair_limiter.record_failure(f"{source}\0{username}", now)
            self.source_limiter.record_failure(source, now)
            log.info("HTTP sign-in failed from %s", source)
            raise SignInRefused()
        self.pair_limiter.record_success(f"{source}\0{username}")
        lifetime = self.policy.session_lifetime
        token, csrf = await self.store.create_session(user.username, source, lifetime)
        log.info("HTTP sign-in: %s (%s) from %s", user.username, user.role.value, source)
        return SignedIn(
            self.principal_for(user, "session", token[:8]), token, csrf, self.clock() + lifetime
        )

    async def session(self, token: str) -> tuple[Principal, SessionRow] | None:
        """The principal of a live session token; an expired or idle one is removed."""
        hashed = token_hash(token)
        now = self.clock()
        cached = self._sessions.get(hashed)
        if cached is not None and now - cached[2] < self.policy.session_recheck:
            row, user, checked = cached
        else:
            try:
                found = await self.store.session(token)
                user_found = await self.user(found.username) if found is not None else None
            except Exception:
                if cached is None:
                    raise
                # The database is down: those signed in carry on, as checked last.
                log.debug("session check deferred: the database did not answer")
                row, user, checked = cached
            else:
                if found is None or user_found is None or user_found.disabled:
                    self._sessions.pop(hashed, None)
                    if found is not None:
                        await self.store.revoke_session(found.token_hash)
                    return None
                row, user, checked = found, user_found, now
                self._sessions[hashed] = (row, user, checked)
        if now >= row.expires_at or now - row.seen_at >= self.policy.session_idle:
            self._sessions.pop(hashed, None)
            with contextlib.suppress(Exception):
                await self.store.revoke_session(hashed)
            return None
        # Sliding idle expiry, written at most once a minute (sooner for short idles).
        if now - row.seen_at >= min(60.0, self.policy.session_idle / 4):
            row = dataclasses.replace(row, seen_at=now)
            self._sessions[hashed] = (row, user, checked)
            with contextlib.suppress(Exception):  # a lost touch only shortens the idle time
                await self.store.touch_session(hashed, now)
        return self.principal_for(user, "session", hashed[:8]), row

    def forget(self, username: str | None = None) -> None:
        """Drop cached sessions (of ``username``, or all): they are read again next time.

        Called after a user's role, team, password or state changed, so the change
        applies to their next request on this node.
        """
        for hashed, (row, _, _) in list(self._sessions.items()):
            if username is None or row.username == username:
                del self._sessions[hashed]

    async def api_key(self, presented: str) -> tuple[Principal, ApiKey] | None:
        """The principal of a valid, unexpired, unrevoked API key, within its scope."""
        key = await self.store.api_key_for(presented)
        now = self.clock()
        if key is None or key.revoked_at is not None:
            return None
        if key.expires_at is not None and now >= key.expires_at:
            return None
        user = await self.user(key.username)
        if user is None or user.disabled:
            return None
        if key.last_used_at is None or now - key.last_used_at >= 60:
            await self.store.touch_api_key(key.key_id, now)
        return self.principal_for(user, "api_key", key.key_id, key.scopes), key

    async def sign_out(self, token: str) -> None:
        self._sessions.pop(token_hash(token), None)
        await self.store.revoke_session(token_hash(token))

    async def bootstrap_admin(self, username: str, password: str) -> bool:
        """Create the first admin from the environment when the database has no user."""
        if await self.store.count_users():
            return False
        hashed = await self.hash_password(password, username)
        created = await self.store.create_user(username, Role.ADMIN, password_hash=hashed)
        if created is not None:
            log.info("created the first admin %r from the environment", username)
        return created is not None

    def prune(self, now: float) -> None:
        self.pair_limiter.prune(now)
        self.source_limiter.prune(now)
