"""Open sockets as fan-out sinks: the hot write path, heartbeats and drain.

A :class:`Connection` writes pre-encoded frames straight to the socket while
its stream has nothing queued (no future, no copy), and falls back to the
stream's buffer otherwise, so write order is kept. A client whose queued bytes
would pass ``max_outgoing_bytes`` is closed with 1013 instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from tornado.iostream import IOStream
from tornado.websocket import WebSocketProtocol

from app.frames import encode_frame, frame_for_payload

__all__ = ["Closable", "Connection", "ConnectionSet"]

log = logging.getLogger("playhouse.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
PING_FRAME = b"\x89\x00"


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Connection:
    """One WebSocket as a :class:`~app.pubsub.Subscriber`.

    Args:
        owner: the handler; closed on overflow.
        stream: the detached Tornado IOStream of the socket.
        protocol: Tornado's WebSocket protocol object (for its close state).
        max_outgoing_bytes: bound on queued bytes before a 1013 close.
        on_slow_close: called once when this connection is closed for overflow.
    """

    __slots__ = (
        "_direct",
        "_limit",
        "_on_slow_close",
        "_owner",
        "_protocol",
        "_stream",
        "active",
        "alive",
        "busy",
        "draining",
        "echo_filter",
        "held",
        "on_regroup",
        "open",
        "pinged_at",
        "session_key",
        "username",
    )

    def __init__(
        self,
        owner: Closable,
        stream: IOStream,
        protocol: WebSocketProtocol,
        *,
        max_outgoing_bytes: int,
        on_slow_close: Callable[[], None] | None = None,
    ) -> None:
        self._owner = owner
        self._stream = stream
        self._protocol = protocol
        self._limit = max_outgoing_bytes
        self._on_slow_close = on_slow_close
        # Only plain TCP streams can be written with socket.send (not TLS).
        self._direct = type(stream) is IOStream
        self.active = False
        self.echo_filter: bytes | None = None
        self.open = True
        # While the last messages are replayed on open, live frames wait here so
        # the client sees the replay first and never a live message twice.
        self.held: list[tuple[bytes, bytes]] | None = None
        self.alive = True  # a pong or message arrived since the last ping
        self.busy = 0  # client frames being handled (a move being written, say)
        self.draining = False  # close with 1001 as soon as it is not busy
        self.pinged_at = 0.0
        self.session_key: str | None = None
        self.username: str | None = None
        # Set on sockets with a *-group flag: re-plans their group channels.
        self.on_regroup: Callable[[tuple[str, ...]], None] | None = None

    def deliver(self, frame: bytes, payload: bytes) -> None:
        """Write ``frame`` unless it echoes this client's own message; never raises."""
        if not self.open or payload == self.echo_filter:
            return
        if self.held is not None:
            self.held.append((frame, payload))
            return
        self.active = True
        stream = self._stream
        queued = stream._write_buffer
        if queued is None or stream._closed or self._protocol.server_terminated:
            return
        if not queued and self._direct:
            try:
                sent = stream.socket.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the read side notices the dead socket and closes it
            if sent == len(frame):
                return
            frame = frame[sent:]
        elif len(queued) + len(frame) > self._limit:
            self._overflow()
            return
        stream.write(frame)

    def release(self, replay: list[bytes], keep: Callable[[bytes], bool] | None = None) -> None:
        """End the hold: ``replay`` first (minus what arrived live meanwhile), then held
        frames — only those ``keep`` accepts, when given (the replay covered the rest)."""
        held, self.held = self.held or [], None
        arrived = {payload for _, payload in held}
        for payload in replay:
            if payload not in arrived:
                self.deliver(frame_for_payload(payload), payload)
        for frame, payload in held:
            if keep is None or keep(payload):
                self.deliver(frame, payload)

    def send_text(self, text: str) -> None:
        """Send one text message outside the fan-out path (replays, heartbeats)."""
        payload = text.encode()
        self.deliver(encode_frame(payload), payload)

    def done_with_frame(self) -> None:
        """One client frame handled; a draining socket closes once none is left."""
        self.busy -= 1
        if self.busy == 0 and self.draining:
            self.close(CLOSE_GOING_AWAY, "server shutting down")

    def close(self, code: int, reason: str) -> None:
        if self.open:
            self.open = False
            self._owner.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once (a dead peer gets no close handshake)."""
        self.open = False
        self._stream.close()

    def _overflow(self) -> None:
        log.info("closing slow client: more than %d bytes queued", self._limit)
        if self._on_slow_close is not None:
            self._on_slow_close()
        self.close(CLOSE_TRY_AGAIN_LATER, "client too slow")


class ConnectionSet:
    """Every open connection of the instance: idle heartbeats and drain."""

    def __init__(self) -> None:
        self._all: dict[Connection, None] = {}
        self._emptied: asyncio.Event | None = None

    def add(self, conn: Connection) -> None:
        self._all[conn] = None

    def discard(self, conn: Connection) -> None:
        self._all.pop(conn, None)
        if not self._all and self._emptied is not None:
            self._emptied.set()

    def __len__(self) -> int:
        return len(self._all)

    def close_session(self, session_key: str) -> int:
        """Close (1008) every socket opened with ``session_key``; returns how many."""
        doomed = [c for c in self._all if c.session_key == session_key]
        for conn in doomed:
            conn.close(1008, "logged out")
        return len(doomed)

    def regroup(self, username: str, groups: tuple[str, ...]) -> int:
        """Give ``username``'s group sockets the channels of ``groups``; returns how many."""
        changed = 0
        for conn in list(self._all):
            if conn.username == username and conn.on_regroup is not None and conn.open:
                conn.on_regroup(groups)
                changed += 1
        return changed

    def send_idle_heartbeats(self, heartbeat: str) -> int:
        """Send ``heartbeat`` to connections that sent nothing since the last call."""
        payload = heartbeat.encode()
        frame = encode_frame(payload)
        sent = 0
        for conn in tuple(self._all):
            if conn.active:
                conn.active = False
            else:
                conn.deliver(frame, payload)
                conn.active = False
                sent += 1
        return sent

    async def run_heartbeats(self, heartbeat: str, *, interval: float) -> None:
        """Forever: a socket idle for ``interval`` s gets a heartbeat (ws4redis: 4 s).

        Sweeping every half interval bounds the silence to ``interval`` while
        the hot path only sets a flag.
        """
        while True:
            await asyncio.sleep(interval / 2)
            self.send_idle_heartbeats(heartbeat)

    def ping_sweep(self, *, now: float, interval: float, timeout: float) -> int:
        """Abort peers silent ``timeout`` s after a ping; ping those due. Returns aborts."""
        aborted = 0
        for conn in tuple(self._all):
            if conn.alive:
                if now - conn.pinged_at >= interval:
                    conn.alive = False
                    conn.pinged_at = now
                    idle = not conn.active  # a ping is not traffic for heartbeats
                    conn.deliver(PING_FRAME, PING_FRAME)
                    conn.active = not idle
            elif now - conn.pinged_at >= timeout:
                conn.abort()
                aborted += 1
        return aborted

    async def run_pings(
        self, *, interval: float, pong_timeout: float, on_timeout: Callable[[int], None]
    ) -> None:
        """Forever: protocol pings; a peer that answers nothing is reaped.

        One sweep for all sockets instead of a coroutine per socket; a dead
        peer is dropped within ``interval + pong_timeout`` plus one sweep period.
        """
        loop = asyncio.get_running_loop()
        period = min(interval, pong_timeout) / 4
        while True:
            await asyncio.sleep(period)
            aborted = self.ping_sweep(now=loop.time(), interval=interval, timeout=pong_timeout)
            if aborted:
                on_timeout(aborted)

    async def drain(self, *, deadline: float) -> bool:
        """Close every socket with 1001 and wait until gone or ``deadline`` seconds.

        A socket whose frame is being handled (a move being written) closes right after
        its answer is sent, so an acknowledged move is acknowledged to the client.
        """
        self._emptied = asyncio.Event()
        if not self._all:
            return True
        for conn in tuple(self._all):
            if conn.busy:
                conn.draining = True
            else:
                conn.close(CLOSE_GOING_AWAY, "server shutting down")
        try:
            await asyncio.wait_for(self._emptied.wait(), deadline)
        except TimeoutError:
            log.warning("drain deadline passed with %d sockets open", len(self._all))
        return not self._all
