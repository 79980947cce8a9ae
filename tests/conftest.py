"""Shared fixtures: a private redis-server, and in-process Playhouse instances."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from app.config import load_settings
from app.runtime import Instance
from tests.support import ROOT, MongoProcess, RedisProcess, redis_process, unique_database

MakeInstance = Callable[..., Any]


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisProcess]:
    """One redis-server for the whole run (tests that kill it use ``redis_private``)."""
    with redis_process() as server:
        yield server


@pytest.fixture
def redis_server(redis_session: RedisProcess) -> Iterator[RedisProcess]:
    redis_session.client().flushall()
    yield redis_session


@pytest.fixture
def redis_private() -> Iterator[RedisProcess]:
    """A redis-server of this test alone: free to kill and restart."""
    with redis_process() as server:
        yield server


@pytest.fixture(scope="session")
def mongo_session() -> Iterator[MongoProcess]:
    """One in-memory nx-27017 for the run (or the MongoDB at ``MONGODB_URL``)."""
    server = MongoProcess()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def mongo_env(mongo_session: MongoProcess) -> dict[str, str]:
    """Environment for a server subprocess: shared MongoDB, a database of its own."""
    return {
        "PLAYHOUSE_MONGODB_URL": mongo_session.url,
        "PLAYHOUSE_MONGODB_DATABASE": unique_database(),
        "PLAYHOUSE_SECURITY_BCRYPT_ROUNDS": "4",
    }


@pytest.fixture
async def make_instance(mongo_session: MongoProcess) -> AsyncIterator[MakeInstance]:
    """Factory: ``await make_instance(**{"section.key": value})`` → started Instance.

    Each instance gets a fresh database on the shared MongoDB server, bcrypt cost 4.
    """
    started: list[Instance] = []
    database = unique_database()

    async def make(**overrides: Any) -> Instance:
        values = {
            "server.port": 0,
            "server.host": "127.0.0.1",
            "mongodb.url": mongo_session.url,
            "mongodb.database": database,
            "security.bcrypt_rounds": 4,
            **overrides,
        }
        settings = load_settings(ROOT / "config.toml", environ={}, overrides=values)
        instance = Instance(settings)
        await instance.start()
        started.append(instance)
        return instance

    yield make
    for instance in reversed(started):
        with contextlib.suppress(Exception):
            await instance.stop()


@pytest.fixture(params=["local", "redis"])
async def started(request: pytest.FixtureRequest, make_instance: MakeInstance) -> Any:
    """Factory for an instance on each broker: LocalBroker, then RedisBroker (and rate limiter)."""

    async def start(**overrides: Any) -> Instance:
        if request.param == "redis":
            server: RedisProcess = request.getfixturevalue("redis_server")
            overrides.setdefault("redis.url", server.url)
        return await make(**overrides)

    make = make_instance
    return start


def ws_url(instance: Instance, path: str) -> str:
    return f"ws://127.0.0.1:{instance.port}{path}"


def http_url(instance: Instance, path: str) -> str:
    return f"http://127.0.0.1:{instance.port}{path}"


__all__ = ["MakeInstance", "http_url", "replace", "ws_url"]
