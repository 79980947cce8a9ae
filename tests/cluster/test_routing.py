"""Through nginx: requests and sockets spread over both instances, each answer names its
instance, and nginx serves the static files itself."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from tornado.websocket import websocket_connect

from deploy.cluster import Cluster

pytestmark = [pytest.mark.redis]


def test_requests_spread_over_instances_and_static_comes_from_nginx(cluster: Cluster) -> None:
    seen = set()
    for _ in range(6):
        with urllib.request.urlopen(f"{cluster.url}/healthz", timeout=5) as reply:
            seen.add(reply.headers["X-Playhouse-Instance"])
    assert seen == {"instance-1", "instance-2"}
    with urllib.request.urlopen(f"{cluster.url}/static/ws4redis.js", timeout=5) as reply:
        assert reply.status == 200
        assert reply.headers["X-Playhouse-Instance"] is None  # not proxied
        assert "max-age=3600" in reply.headers["Cache-Control"]


async def test_websockets_upgrade_through_nginx_on_both_instances(cluster: Cluster) -> None:
    url = cluster.url.replace("http", "ws") + "/ws/notifications?subscribe-broadcast"
    conns = [await asyncio.wait_for(websocket_connect(url), 5) for _ in range(4)]
    try:
        instances = {conn.headers["X-Playhouse-Instance"] for conn in conns}
        assert instances == {"instance-1", "instance-2"}
    finally:
        for conn in conns:
            conn.close()
