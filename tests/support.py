"""Test support: real service processes on free ports and waiting helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from tornado.websocket import WebSocketClientConnection, websocket_connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class RedisProcess:
    """A private ``redis-server`` the tests may kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not installed (make test installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if self.client().ping():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def numsub(self, channel: str) -> int:
        return int(dict(self.client().pubsub_numsub(channel))[channel.encode()])


@contextlib.contextmanager
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def ws_open(url: str, **kwargs: Any) -> WebSocketClientConnection:
    return await asyncio.wait_for(websocket_connect(url, **kwargs), timeout=5)


async def recv(conn: WebSocketClientConnection, timeout: float = 5.0) -> str | bytes | None:
    """The next message, ``None`` once closed; fails the test after ``timeout``."""
    return await asyncio.wait_for(conn.read_message(), timeout=timeout)


def server_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "server.py"), *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYHOUSE_")}
    env.update(extra)
    return env


async def raw_websocket(
    port: int, path: str, *, rcvbuf: int | None = None, headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-made WebSocket client that does only what the test tells it.

    Used to play clients that stop reading or never answer pings.
    """
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 5)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
            + "\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_until_closed(
    reader: asyncio.StreamReader, timeout: float = 5.0, *, close_frame: bool = False
) -> bytes:
    """What the server sends until it closes TCP (or, with ``close_frame``, sends a close frame)."""
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
            if close_frame and b"\x88" in data:
                break
    return data


def masked_frame(payload: bytes, opcode: int = 0x1, *, fin: bool = True) -> bytes:
    """A client frame (masked with a zero key, so the payload stays readable)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size <= 0xFFFF:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class MongoProcess:
    """A private in-memory ``nx-27017`` (MongoDB wire protocol), or ``MONGODB_URL`` if set."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.external = os.environ.get("MONGODB_URL", "")

    @property
    def url(self) -> str:
        return self.external or f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        if self.external:
            return
        binary = str(Path(sys.executable).with_name("nx-27017"))
        files = [f"/tmp/nx-test-{self.port}.pid", f"/tmp/nx-test-{self.port}.log"]
        self.proc = subprocess.Popen(
            [
                binary,
                "--host",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--db",
                "memory",
                "--pid-file",
                files[0],
                "--log-file",
                files[1],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import pymongo

        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=200
        )
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.admin.command("ping")
                    return
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError("nx-27017 did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def unique_database() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"
