"""Users, sessions, API keys and the audit log on both back ends, with a fake clock;
and the access service's decisions (throttling, expiry, scopes, reach) without HTTP."""

from __future__ import annotations

import pytest

from acd.identity import (
    AccessPolicy,
    AccessService,
    AgentAccount,
    AuditEntry,
    IdentityStore,
    PasswordHasher,
    PasswordTooWeak,
    Permission,
    Role,
    SignInRefused,
)
from acd.storage import Storage

from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import cluster, storage  # noqa: F401

FAST = PasswordHasher(log_n=10)  # the cheapest cost: these tests are about the logic


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def service(store: Storage, clock: Clock, **policy: float) -> AccessService:
    agents = {
        "1001": AgentAccount("sip-secret-1001", "red"),
        "1003": AgentAccount("x" * 12, "blue"),
    }
    return AccessService(
        IdentityStore(store, FAST, clock),
        agents,
        AccessPolicy(**policy),
        clock,  # type: ignore[arg-type]
    )


async def test_users_sessions_and_keys_round_trip(storage: Storage) -> None:  # noqa: F811
    clock = Clock()
    access = service(storage, clock, session_lifetime=100, session_idle=50)
    store = access.store
    hashed = await access.hash_password("Lead-Password-1", "lead")
    lead = await store.create_user("lead", Role.TEAM_LEAD, team="red", password_hash=hashed)
    assert lead is not None and lead.team == "red" and not lead.disabled
    assert await store.create_user("lead", Role.ADMIN, password_hash=None) is None  # taken
    signed = await access.sign_in("lead", "Lead-Password-1", "127.0.0.1")
    assert signed.principal.role is Role.TEAM_LEAD
    assert signed.principal.agents == frozenset({"lead", "1001"})
    found = await access.session(signed.token)
    assert found is not None and found[1].csrf_token == signed.csrf_token
    clock.now += 49
    assert await access.session(signed.token) is not None  # touched: idle starts again
    clock.now += 49
    assert await access.session(signed.token) is not None
    clock.now += 10  # 108 s after sign-in: past the lifetime, however busy
    assert await access.session(signed.token) is None

    key, stored = await store.create_api_key("lead", "wallboard", [Permission.QUEUES_READ], None)
    found_key = await access.api_key(key)
    assert found_key is not None and found_key[0].permissions == {Permission.QUEUES_READ}
    assert await access.api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert await store.revoke_api_key(stored.key_id)
    assert await access.api_key(key) is None

    await store.audit(
        AuditEntry(clock.now, "lead", "team_lead", "127.0.0.1", "x", "/y", 200, {"a": 1})
    )
    (entry,) = await store.audit_log(clock.now - 1, clock.now + 1, actor="lead")
    assert entry.detail == {"a": 1} and entry.status == 200
    assert await store.count_admins() == 0
    assert await store.delete_user("lead")
    assert await store.get_user("lead") is None


async def test_agents_sign_in_with_their_sip_password_and_throttling_is_per_pair(
    storage: Storage,  # noqa: F811
) -> None:
    clock = Clock()
    access = service(storage, clock, sign_in_failures=3, sign_in_cooldown=60)
    agent = await access.sign_in("1001", "sip-secret-1001", "10.0.0.1")
    assert agent.principal.role is Role.AGENT and agent.principal.agents == frozenset({"1001"})
    for _ in range(3):
        with pytest.raises(SignInRefused) as refused:
            await access.sign_in("1001", "wrong", "10.0.0.1")
        assert refused.value.retry_after is None
    with pytest.raises(SignInRefused) as refused:
        await access.sign_in("1001", "sip-secret-1001", "10.0.0.1")
    assert refused.value.retry_after == 60
    assert await access.sign_in("1001", "sip-secret-1001", "10.0.0.2")  # another address
    assert await access.sign_in("1003", "x" * 12, "10.0.0.1")  # another user, same address
    clock.now += 61
    assert await access.sign_in("1001", "sip-secret-1001", "10.0.0.1")
    with pytest.raises(SignInRefused):
        await access.sign_in("nobody", "whatever", "10.0.0.3")


def test_weak_passwords_are_refused() -> None:
    from acd.identity import check_password_strength

    for password, user in (("short", "a"), ("alice-1234", "ALICE-1234"), ("aaaaaaaaaaaa", "b")):
        with pytest.raises(PasswordTooWeak):
            check_password_strength(password, user)
    check_password_strength("Sunflower-Bay-71", "1001")


def test_hashes_verify_and_carry_their_cost() -> None:
    stored = FAST.hash("Correct-Horse-9")
    assert stored.startswith("scrypt$ln=10,r=8,p=1$")
    assert FAST.verify("Correct-Horse-9", stored)
    assert not FAST.verify("Correct-Horse-8", stored)
    assert not FAST.verify("Correct-Horse-9", None)
    assert not FAST.verify("Correct-Horse-9", "scrypt$ln=99,r=8,p=1$AAAA$AAAA")
    assert PasswordHasher(log_n=11).verify("Correct-Horse-9", stored)  # old cost still verifies
    assert PasswordHasher(log_n=11).needs_rehash(stored)


async def test_those_signed_in_carry_on_while_the_database_is_down(
    storage: Storage,  # noqa: F811
) -> None:
    clock = Clock()
    access = service(storage, clock)
    signed = await access.sign_in("1001", "sip-secret-1001", "10.0.0.1")
    assert await access.session(signed.token) is not None  # checked once: cached
    other = await access.sign_in("1003", "x" * 12, "10.0.0.1")
    await storage.close()  # the database goes away
    clock.now += 100  # past the cache's trust: the check is deferred, not failed
    found = await access.session(signed.token)
    assert found is not None and found[0].username == "1001"
    with pytest.raises(Exception):  # never checked before: nothing to go on  # noqa: B017
        await access.session(other.token)
    await storage.open()
    access.forget("1001")
    clock.now += 10
    assert await access.session(signed.token) is not None  # read from the database again
