"""A Redis pub/sub subscriber link: asyncio streams and the hiredis parser.

Commands are written synchronously in call order, so SUBSCRIBE/UNSUBSCRIBE of
one channel can never be reordered, and there is a single reader. redis-py's
connection object is built for request/response and is not safe to drive from
a reader and a writer task at once; this link needs neither lock nor task.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

__all__ = ["SubscriberLink", "pack_command"]


def pack_command(*args: str | bytes) -> bytes:
    """RESP-encode one command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class SubscriberLink:
    """One connection in subscribe mode.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (credentials honoured).
        timeout: seconds allowed for connecting and authenticating.
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self._params: dict[str, Any] = dict(parse_url(url))
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    async def connect(self) -> None:
        """Open the socket and authenticate; raises OSError/ConnectionError."""
        params = self._params
        kind = params.get("connection_class")
        if kind is UnixDomainSocketConnection:
            opening = asyncio.open_unix_connection(params["path"])
        else:
            tls = ssl.create_default_context() if kind is SSLConnection else None
            opening = asyncio.open_connection(
                params.get("host", "localhost"), params.get("port", 6379), ssl=tls
            )
        self._reader, self._writer = await asyncio.wait_for(opening, self._timeout)
        if params.get("password"):
            auth = [params["username"]] if params.get("username") else []
            self.send("AUTH", *auth, params["password"])
            reply = await asyncio.wait_for(self._next_reply(), self._timeout)
            if isinstance(reply, Exception):
                raise ConnectionError(f"Redis AUTH failed: {reply}")

    def send(self, *args: str | bytes) -> None:
        """Queue one command on the socket (written in call order)."""
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("subscriber link is not connected")
        self._writer.write(pack_command(*args))

    async def read_replies(self, *, idle: float) -> list[Any]:
        """Every complete reply available, waiting up to ``idle`` s for data.

        Returns an empty list when nothing arrived in time.

        Raises:
            ConnectionError: the server closed the connection.
        """
        replies = list(self._parsed())
        if replies:
            return replies
        assert self._reader is not None
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that races with arriving data, and close() would hang.
        try:
            async with asyncio.timeout(idle):
                data = await self._reader.read(1 << 16)
        except TimeoutError:
            return []
        if not data:
            raise ConnectionError("Redis closed the subscriber connection")
        self._parser.feed(data)
        return list(self._parsed())

    async def _next_reply(self) -> Any:
        while True:
            replies = await self.read_replies(idle=self._timeout)
            if replies:
                return replies[0]

    def _parsed(self) -> Iterator[Any]:
        while True:
            reply = self._parser.gets()
            if reply is False:
                return
            yield reply

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        self._reader = None
        self._parser = hiredis.Reader()
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
