"""The repositories against a real MongoDB-protocol server through PyMongo's async driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from app.errors import Conflict, StorageUnavailable
from app.storage.mongo import MongoStorage
from tests.support import MongoProcess, free_port, unique_database


@pytest.fixture
async def storage(mongo_session: MongoProcess) -> AsyncIterator[MongoStorage]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=2.0)
    await store.ensure_indexes()
    yield store
    await store.close()


def now() -> datetime:
    return datetime.now().astimezone()


async def test_ensure_indexes_is_idempotent(storage: MongoStorage) -> None:
    await storage.ensure_indexes()
    await storage.ensure_indexes()
    assert await storage.ping()


async def test_users_are_unique_by_key(storage: MongoStorage) -> None:
    user = await storage.users.create(
        username="Alice", key="alice", password_hash=b"h", role="user"
    )
    assert (user.username, user.key, user.role, user.groups) == ("Alice", "alice", "user", ())
    with pytest.raises(Conflict):
        await storage.users.create(username="ALICE", key="alice", password_hash=b"x", role="user")
    stored = await storage.users.get("alice")
    assert stored is not None and stored.password_hash == b"h" and stored.username == "Alice"
    assert await storage.users.get("bob") is None


async def test_concurrent_creates_leave_one_user(storage: MongoStorage) -> None:
    async def create(i: int) -> bool:
        try:
            await storage.users.create(
                username=f"Racer{i}", key="racer", password_hash=b"h", role="user"
            )
        except Conflict:
            return False
        return True

    results = await asyncio.gather(*(create(i) for i in range(20)))
    assert results.count(True) == 1


async def test_role_and_password_updates(storage: MongoStorage) -> None:
    await storage.users.create(username="carol", key="carol", password_hash=b"a", role="user")
    assert await storage.users.set_role("carol", "admin")
    assert await storage.users.set_password("carol", b"b")
    carol = await storage.users.get("carol")
    assert carol is not None and carol.is_admin and carol.password_hash == b"b"
    assert not await storage.users.set_role("nobody", "admin")


async def test_sessions_expire_on_read(storage: MongoStorage) -> None:
    start = now()
    session = await storage.sessions.create(session_id="s" * 64, user_key="dave", now=start, ttl=60)
    assert session.expires_at - session.created_at == timedelta(seconds=60)
    found = await storage.sessions.get("s" * 64, now=start + timedelta(seconds=59))
    assert found is not None and found.user_key == "dave"
    assert await storage.sessions.get("s" * 64, now=start + timedelta(seconds=61)) is None
    # expired sessions are removed, not just hidden
    assert await storage.sessions.get("s" * 64, now=start) is None


async def test_session_delete(storage: MongoStorage) -> None:
    await storage.sessions.create(session_id="t" * 64, user_key="erin", now=now(), ttl=60)
    await storage.sessions.delete("t" * 64)
    assert await storage.sessions.get("t" * 64, now=now()) is None
    await storage.sessions.delete("never-existed")


async def test_notices_newest_first(storage: MongoStorage) -> None:
    base = now()
    for i in range(5):
        await storage.notices.add(
            text=f"n{i}", author="admin", expire=60, now=base + timedelta(seconds=i)
        )
    recent = await storage.notices.recent(limit=3)
    assert [n.text for n in recent] == ["n4", "n3", "n2"]
    assert all(n.author == "admin" and n.expire == 60 for n in recent)


async def test_unreachable_database_raises_storage_unavailable() -> None:
    store = MongoStorage(f"mongodb://127.0.0.1:{free_port()}/", timeout=0.3)
    try:
        assert not await store.ping()
        with pytest.raises(StorageUnavailable):
            await store.users.get("anyone")
        with pytest.raises(StorageUnavailable):
            await store.sessions.get("x", now=now())
    finally:
        await store.close()
