"""The Accounts service on real MongoDB storage and real bcrypt, with injected clocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from app.errors import Conflict, Invalid, RateLimited, Unauthorized
from app.passwords import PasswordHasher, prehash
from app.ratelimit import LocalRateLimiter
from app.services.accounts import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    Accounts,
    LoginLimits,
    normalize_username,
    validate_password,
)
from app.storage.mongo import MongoStorage
from tests.support import MongoProcess, unique_database

PASSWORD = "correct horse"
IP = "192.0.2.1"
TTL = 3600.0


def fullwidth(ascii_text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) for char in ascii_text)


class Clock:
    """A hand-wound clock: ``monotonic`` for the rate limiter, ``now`` for sessions."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.start = datetime(2030, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds - 1000.0)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
async def storage(mongo_session: MongoProcess) -> AsyncIterator[MongoStorage]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    await store.ensure_indexes()
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    bcrypt_hasher = PasswordHasher(rounds=4)
    yield bcrypt_hasher
    bcrypt_hasher.close()


def make_accounts(
    storage: MongoStorage, hasher: PasswordHasher, clock: Clock, **limits: int
) -> Accounts:
    return Accounts(
        storage,
        hasher,
        LocalRateLimiter(clock=clock.monotonic),
        session_ttl=TTL,
        limits=LoginLimits(**limits),
        now=clock.now,
    )


@pytest.fixture
def accounts(storage: MongoStorage, hasher: PasswordHasher, clock: Clock) -> Accounts:
    return make_accounts(storage, hasher, clock)


# --- Pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("alice", "alice"),
        ("Alice_01", "Alice_01"),
        ("  bob  ", "bob"),
        ("a-b", "a-b"),
        (fullwidth("alice"), "alice"),
        ("x" * 32, "x" * 32),
        ("\u212aelvin", "Kelvin"),  # KELVIN SIGN
    ],
)
def test_normalize_username_accepts(raw: str, canonical: str) -> None:
    assert normalize_username(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "required"),
        (12, "required"),
        ("", "required"),
        ("   ", "required"),
        ("ab", "3-32"),
        ("x" * 33, "3-32"),
        ("x" * 10_000, "3-32"),
        ("a:b", "only letters"),
        ("a b", "only letters"),
        ("ålice", "only letters"),
        ("al\nice", "only letters"),
        ("\ufdfa" * 3, "3-32"),  # NFKC expands one character into 18
    ],
)
def test_normalize_username_rejects(raw: object, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalize_username(raw)
    assert caught.value.field == "username"
    assert words in str(caught.value)


def test_validate_password_bounds() -> None:
    assert validate_password("p" * MIN_PASSWORD_CHARS) == "p" * MIN_PASSWORD_CHARS
    assert validate_password("p" * MAX_PASSWORD_CHARS) == "p" * MAX_PASSWORD_CHARS
    for bad in ("p" * (MIN_PASSWORD_CHARS - 1), "p" * (MAX_PASSWORD_CHARS + 1), "", None, 12):
        with pytest.raises(Invalid) as caught:
            validate_password(bad)
        assert caught.value.field == "password"


def test_prehash_keeps_every_byte() -> None:
    assert len(prehash("p" * 1000)) == 44
    assert prehash("p" * 72) != prehash("p" * 72 + "q")
    assert b"\x00" not in prehash("\x00" * 100)


# --- Registration and login --------------------------------------------------------------


async def test_register_then_login(accounts: Accounts, storage: MongoStorage) -> None:
    user = await accounts.register("Alice", PASSWORD, ip=IP)
    assert (user.username, user.key, user.role, user.is_admin) == ("Alice", "alice", "user", False)
    stored = await storage.users.get("alice")
    assert stored is not None
    assert stored.password_hash.startswith(b"$2b$04$")
    assert PASSWORD.encode() not in stored.password_hash
    for spelling in ("Alice", "alice", "ALICE", fullwidth("alice"), " alice "):
        found, session = await accounts.login(spelling, PASSWORD, ip=IP)
        assert found.key == "alice"
        assert session.user_key == "alice"


async def test_register_conflicts_in_any_case(accounts: Accounts, storage: MongoStorage) -> None:
    await accounts.register("alice", PASSWORD, ip=IP)
    for spelling in ("alice", "ALICE", fullwidth("ALICE")):
        with pytest.raises(Conflict) as caught:
            await accounts.register(spelling, "other password", ip=IP)
        assert caught.value.code == "username_taken"
        assert "is taken" in str(caught.value)
    await accounts.login("alice", PASSWORD, ip=IP)  # the first password still holds


async def test_invalid_registration_stores_nothing(
    accounts: Accounts, storage: MongoStorage
) -> None:
    for username, password in (("a:b", PASSWORD), ("alice", "short"), ("alice", None)):
        with pytest.raises(Invalid):
            await accounts.register(username, password, ip=IP)
    assert await storage.users.get("alice") is None


async def test_wrong_password_and_unknown_user_look_alike(accounts: Accounts) -> None:
    await accounts.register("alice", PASSWORD, ip=IP)
    errors = []
    for username, password in (("alice", "wrong one"), ("nobody", PASSWORD), ("no:body", "x")):
        with pytest.raises(Unauthorized) as caught:
            await accounts.login(username, password, ip=IP)
        errors.append((type(caught.value), caught.value.code, str(caught.value)))
    assert len(set(errors)) == 1, errors


async def test_no_truncation_at_72_bytes(accounts: Accounts) -> None:
    long_password = "p" * 72 + "q"
    await accounts.register("alice", long_password, ip=IP)
    with pytest.raises(Unauthorized):
        await accounts.login("alice", long_password[:72], ip=IP)
    await accounts.login("alice", long_password, ip=IP)


async def test_login_with_non_strings_is_invalid(accounts: Accounts) -> None:
    for username, password in ((None, PASSWORD), ("alice", None), (["alice"], PASSWORD)):
        with pytest.raises(Invalid):
            await accounts.login(username, password, ip=IP)


# --- Sessions ------------------------------------------------------------------------------


async def test_every_login_opens_a_fresh_session(accounts: Accounts) -> None:
    await accounts.register("alice", PASSWORD, ip=IP)
    _, first = await accounts.login("alice", PASSWORD, ip=IP)
    _, second = await accounts.login("alice", PASSWORD, ip=IP)
    assert first.id != second.id
    assert len(first.id) == 64 and int(first.id, 16) >= 0
    assert await accounts.session_user(first.id) is not None
    await accounts.logout(first.id)
    assert await accounts.session_user(first.id) is None
    assert await accounts.session_user(second.id) is not None


async def test_session_expires_with_the_clock(
    accounts: Accounts, storage: MongoStorage, clock: Clock
) -> None:
    await accounts.register("alice", PASSWORD, ip=IP)
    _, session = await accounts.login("alice", PASSWORD, ip=IP)
    assert session.expires_at == clock.now() + timedelta(seconds=TTL)
    clock.advance(TTL - 1)
    assert await accounts.session_user(session.id) is not None
    clock.advance(1)
    assert await accounts.session_user(session.id) is None
    clock.seconds -= 10  # even with the clock turned back, the expired session is gone
    assert await storage.sessions.get(session.id, now=clock.now()) is None


@pytest.mark.parametrize("session_id", [None, "", "0" * 64, "not-a-session"])
async def test_unknown_sessions_are_anonymous(accounts: Accounts, session_id: str | None) -> None:
    assert await accounts.session_user(session_id) is None
    identity = await accounts.identity(session_id)
    assert not identity.authenticated
    assert identity.session_key is None


async def test_identity_of_a_session(accounts: Accounts) -> None:
    await accounts.register("Alice", PASSWORD, ip=IP)
    _, session = await accounts.login("alice", PASSWORD, ip=IP)
    identity = await accounts.identity(session.id)
    assert identity.username == "Alice"
    assert identity.session_key == session.id
    assert identity.is_admin is False
    assert identity.groups == ()


# --- Admins ----------------------------------------------------------------------------------


async def test_create_admin_new_and_promote(accounts: Accounts, storage: MongoStorage) -> None:
    admin = await accounts.create_admin("boss", PASSWORD)
    assert admin.is_admin
    await accounts.register("player", PASSWORD, ip=IP)
    promoted = await accounts.create_admin("PLAYER", "a new password")
    assert promoted.is_admin and promoted.username == "player"
    with pytest.raises(Unauthorized):
        await accounts.login("player", PASSWORD, ip=IP)
    _, session = await accounts.login("player", "a new password", ip=IP)
    assert (await accounts.identity(session.id)).is_admin


async def test_create_admin_rejects_bad_input(accounts: Accounts, storage: MongoStorage) -> None:
    with pytest.raises(Invalid) as caught:
        await accounts.create_admin("bad name", PASSWORD)
    assert caught.value.field == "username"
    with pytest.raises(Invalid) as caught:
        await accounts.create_admin("boss", "short")
    assert caught.value.field == "password"
    assert await storage.users.get("boss") is None


# --- Rate limits -------------------------------------------------------------------------------


async def test_login_limit_per_user_then_window_resets(
    storage: MongoStorage, hasher: PasswordHasher, clock: Clock
) -> None:
    accounts = make_accounts(storage, hasher, clock, per_user=3, per_ip=1000, window=60)
    await accounts.register("alice", PASSWORD, ip=IP)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await accounts.login("alice", "wrong one", ip=IP)
    with pytest.raises(RateLimited) as caught:
        await accounts.login("alice", PASSWORD, ip=IP)
    assert caught.value.retry_after == 60
    clock.advance(45)
    with pytest.raises(RateLimited) as caught:
        await accounts.login("ALICE", PASSWORD, ip="198.51.100.7")  # any spelling, any IP
    assert caught.value.retry_after == 15
    clock.advance(15)
    await accounts.login("alice", PASSWORD, ip=IP)


async def test_login_limit_per_ip(
    storage: MongoStorage, hasher: PasswordHasher, clock: Clock
) -> None:
    accounts = make_accounts(storage, hasher, clock, per_user=1000, per_ip=2, window=60)
    await accounts.register("alice", PASSWORD, ip=IP)
    await accounts.login("alice", PASSWORD, ip=IP)
    with pytest.raises(Unauthorized):
        await accounts.login("nobody", PASSWORD, ip=IP)
    with pytest.raises(RateLimited):
        await accounts.login("alice", PASSWORD, ip=IP)
    await accounts.login("alice", PASSWORD, ip="198.51.100.7")


async def test_registration_limit_per_ip(
    storage: MongoStorage, hasher: PasswordHasher, clock: Clock
) -> None:
    accounts = make_accounts(storage, hasher, clock, registrations_per_ip=2, window=60)
    await accounts.register("user1", PASSWORD, ip=IP)
    await accounts.register("user2", PASSWORD, ip=IP)
    with pytest.raises(RateLimited):
        await accounts.register("user3", PASSWORD, ip=IP)
    assert await storage.users.get("user3") is None
    await accounts.register("user3", PASSWORD, ip="198.51.100.7")
