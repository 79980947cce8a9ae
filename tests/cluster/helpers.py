"""Helpers for the multi-instance suite: players that talk to nginx or to one instance,
sockets pinned to an instance, Redis subscription counts and per-instance metrics.

Every wait is a poll with a deadline (``wait_until``) or a read with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from deploy.cluster import Cluster, Instance
from tests.handlers.test_accounts_api import PASSWORD, Browser, data
from tests.handlers.test_game_socket import GameClient
from tests.support import ROOT, recv, wait_until

__all__ = [
    "HEARTBEAT",
    "Endpoint",
    "GameClient",
    "Player",
    "Recorder",
    "admin",
    "expect",
    "game_socket",
    "instance_of",
    "metrics",
    "new_game",
    "numsub",
    "presence",
    "signup",
    "socket_on",
    "wait_until",
]

HEARTBEAT = "--heartbeat--"


@dataclass(frozen=True)
class Endpoint:
    """What ``Browser`` needs of an instance: a port (nginx's or one instance's)."""

    port: int


class Player(Browser):
    """A signed-in user whose HTTP calls go through nginx (unless told otherwise)."""

    def __init__(self, http: AsyncHTTPClient, cluster: Cluster, name: str) -> None:
        super().__init__(http, Endpoint(cluster.nginx_port))  # type: ignore[arg-type]
        self.cluster = cluster
        self.name = name

    def via(self, instance: Instance) -> Browser:
        """The same cookies, talking to ``instance`` directly."""
        direct = Browser(self.http, Endpoint(instance.port))  # type: ignore[arg-type]
        direct.cookies = dict(self.cookies)
        return direct


async def signup(http: AsyncHTTPClient, cluster: Cluster, name: str) -> Player:
    player = Player(http, cluster, name)
    response = await player.register(name)
    assert response.code == 201, (response.code, response.body)
    return player


async def admin(http: AsyncHTTPClient, cluster: Cluster, name: str = "ops") -> Player:
    """An admin made with ``server.py create-admin`` (as an operator would), signed in."""
    instance = cluster.instances[0]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "server.py"), "create-admin", name],
        input=f"{PASSWORD}\n".encode(),
        env=instance.env,
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    player = Player(http, cluster, name)
    response = await player.login(name)
    assert response.code == 200, response.body
    return player


def ws_base(where: Cluster | Instance) -> str:
    return where.url.replace("http://", "ws://", 1)


async def socket_on(
    browser: Browser,
    where: Cluster | Instance,
    path: str,
    *,
    instance: str | None = None,
    timeout: float = 5.0,
) -> WebSocketClientConnection:
    """A socket on ``path`` with ``browser``'s cookies, opened at ``where`` (nginx or one
    instance). Through nginx, ``instance`` retries until the socket lands there."""
    deadline = time.monotonic() + timeout
    while True:
        request = HTTPRequest(ws_base(where) + path, headers={"Cookie": browser.cookie_header()})
        conn = await asyncio.wait_for(websocket_connect(request), timeout=timeout)
        if instance is None or instance_of(conn) == instance:
            return conn
        conn.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"no socket landed on {instance} within {timeout}s")


def instance_of(conn: WebSocketClientConnection) -> str:
    return str(conn.headers["X-Playhouse-Instance"])


async def expect(
    conn: WebSocketClientConnection,
    match: Callable[[Any], bool],
    *,
    timeout: float = 5.0,
    what: str = "message",
) -> Any:
    """Read (skipping heartbeats and non-matching messages) until ``match``; the message."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        try:
            raw = await recv(conn, left)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
        if raw is None:
            raise AssertionError(f"socket closed ({conn.close_code}) waiting for {what}")
        if raw == HEARTBEAT:
            continue
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            message = raw
        if match(message):
            return message


class Recorder:
    """Reads a socket in the background and keeps every message (JSON decoded, heartbeats
    dropped) with its arrival time, so a test can ask what came and when."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.messages: list[tuple[float, Any]] = []
        self.closed_at: float | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                self.closed_at = time.monotonic()
                return
            if raw == HEARTBEAT:
                continue
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                message = raw
            self.messages.append((time.monotonic(), message))

    def find(self, match: Callable[[Any], bool]) -> tuple[float, Any] | None:
        return next((item for item in self.messages if match(item[1])), None)

    async def wait_for(
        self, match: Callable[[Any], bool], *, timeout: float = 5.0, what: str = "message"
    ) -> tuple[float, Any]:
        """(arrival time, message) of the first message that matches."""
        await wait_until(lambda: self.find(match) is not None, timeout=timeout, what=what)
        found = self.find(match)
        assert found is not None
        return found

    def close(self) -> None:
        self.conn.close()
        self._task.cancel()


def presence(user: str, status: str) -> Callable[[Any], bool]:
    def match(message: Any) -> bool:
        return (
            isinstance(message, dict)
            and message.get("type") == "presence"
            and message.get("user") == user
            and message.get("status") == status
        )

    return match


async def numsub(cluster: Cluster, channel: str) -> int:
    """How many Redis connections (one per instance at most) subscribe to ``channel``."""
    client = aioredis.Redis.from_url(cluster.redis_url)
    try:
        counts = await client.pubsub_numsub(channel)
        return int(dict(counts)[channel.encode()])
    finally:
        await client.aclose()


async def wait_subscribed(cluster: Cluster, channel: str, count: int = 1) -> None:
    async def ready() -> bool:
        return await numsub(cluster, channel) == count

    await wait_until(ready, what=f"{count} instance(s) subscribed to {channel}")


async def publish(cluster: Cluster, channel: str, message: str) -> int:
    """PUBLISH as an outside process would (ws4redis' RedisPublisher); receivers counted."""
    client = aioredis.Redis.from_url(cluster.redis_url)
    try:
        return int(await client.publish(channel, message))
    finally:
        await client.aclose()


async def metrics(http: AsyncHTTPClient, instance: Instance) -> dict[str, float]:
    """``/metrics`` of one instance (asked directly): unlabelled samples by name."""
    response = await http.fetch(f"{instance.url}/metrics", request_timeout=5)
    samples: dict[str, float] = {}
    for line in response.body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


async def lobby_online(player: Browser) -> dict[str, str]:
    """``GET /api/lobby`` → {username: status} of the players online."""
    response = await player.call("GET", "/api/lobby")
    assert response.code == 200, (response.code, response.body)
    return {row["username"]: row["status"] for row in data(response)["online"]}


async def new_game(challenger: Player, challenged: Player, kind: str = "tictactoe") -> str:
    """``challenger`` challenges ``challenged`` (who must be online) through nginx, who
    accepts; the game id. The challenger has the first seat."""
    sent = await challenger.call("POST", "/api/challenges", {"to": challenged.name, "game": kind})
    assert sent.code == 201, (sent.code, sent.body)
    accepted = await challenged.call("POST", f"/api/challenges/{data(sent)['id']}/accept")
    assert accepted.code == 200, (accepted.code, accepted.body)
    return str(data(accepted)["game_id"])


async def game_socket(
    player: Browser,
    where: Cluster | Instance,
    game_id: str,
    *,
    since: int = 0,
    instance: str | None = None,
) -> tuple[GameClient, dict[str, Any]]:
    """A player's game socket at ``where``, resumed from ``since``: (client, resumed)."""
    conn = await socket_on(player, where, f"/ws/{game_id}?subscribe-user", instance=instance)
    client = GameClient(conn, game_id)
    resumed = await client.request({"type": "resume", "since": since, "chat_since": 0})
    assert resumed["type"] == "resumed", resumed
    return client, resumed


async def fetch_status(http: AsyncHTTPClient, url: str) -> int:
    """The status of ``GET url`` (599 for no answer at all)."""
    try:
        response = await http.fetch(url, raise_error=False, request_timeout=5)
    except (HTTPClientError, OSError):
        return 599
    return response.code
