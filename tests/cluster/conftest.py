"""Fixtures for the multi-instance suite: ``deploy.cluster.Cluster`` (Redis, the MongoDB
server, 2 ``server.py`` instances and nginx in front, all real processes on loopback)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from deploy.cluster import Cluster
from tests.e2e.conftest import require

FAST = {
    "PLAYHOUSE_SECURITY_BCRYPT_ROUNDS": "4",
    "PLAYHOUSE_PRESENCE_GRACE": "0.5",
    "PLAYHOUSE_PRESENCE_HEARTBEAT": "1",
    "PLAYHOUSE_PRESENCE_TTL": "3",
    "PLAYHOUSE_SERVER_DRAIN_SECONDS": "5",
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh two-instance cluster behind nginx (fast bcrypt, short presence timers)."""
    require(
        shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists(),
        "nginx is not installed (apt-get install nginx)",
    )
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    with Cluster(2, workdir=tmp_path, env=FAST) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    """A private tornado HTTP client (closed at teardown)."""
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    yield client
    client.close()
