"""Open sockets as fan-out sinks: the hot write path, heartbeats and drain.

A :class:`Connection` writes pre-encoded frames straight to the socket while
its stream has nothing queued (no future, no copy), and falls back to the
stream's buffer otherwise, so write order is kept. A client whose queued bytes
would pass ``max_outgoing_bytes`` is behind: a game socket is closed with 1013 at
once (never a gap in a game: the client resumes by seq); any other socket (lobby,
presence, notifications) keeps what does not fit aside, a newer message replacing an
older one with the same key (:mod:`app.coalesce`: the latest presence of a user, say),
writes it once the client has caught up, and is closed with 1013 only if still
behind ``slow_seconds`` later. What is kept aside is bounded too: past a quarter of
``max_outgoing_bytes``, messages that replace nothing are dropped (and counted).

:class:`ConnectionSet` also holds the per-socket limits (``[limits]``, :class:`LimitSettings`) and
counts open sockets per user and per client IP — on this instance only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

from tornado.iostream import IOStream
from tornado.websocket import WebSocketProtocol

from app.coalesce import coalescing_key
from app.config import LimitSettings
from app.frames import encode_frame, frame_for_payload
from app.ratelimit import LocalRateLimiter, RateLimiter

__all__ = ["Closable", "Connection", "ConnectionSet"]

log = logging.getLogger("playhouse.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
SLOW_RESET_SECONDS = 2.0
"""After a 1013 for falling behind, how long the close handshake may take before a reset."""
CATCH_UP_POLL = 0.1
"""Seconds between checks whether a client that fell behind has caught up."""
MAX_HELD_FRAMES = 2000
"""Live frames kept for a socket waiting for its replay (a game socket before ``resume``);
more, and it is closed with 1013 like any client too far behind (it resumes by seq)."""
PING_FRAME = b"\x89\x00"


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Connection:
    """One WebSocket as a :class:`~app.pubsub.Subscriber`.

    Args:
        owner: the handler; closed on overflow.
        stream: the detached Tornado IOStream of the socket.
        protocol: Tornado's WebSocket protocol object (for its close state).
        max_outgoing_bytes: bound on queued bytes; beyond it the client is behind.
        on_slow_close: called once when this connection is closed for overflow.
        droppable: keep frames aside (coalesced) while behind instead of closing at once
            (not games).
        slow_seconds: how long a droppable connection may stay behind before 1013.
        on_drop: called for each frame dropped.
        on_coalesce: called for each frame a newer one replaced while behind.
        ip: the client's address (counted per IP by :class:`ConnectionSet`).
    """

    __slots__ = (
        "_behind",
        "_behind_since",
        "_direct",
        "_drop",
        "_limit",
        "_on_coalesce",
        "_on_drop",
        "_on_slow_close",
        "_owner",
        "_pending",
        "_pending_bytes",
        "_protocol",
        "_slow_seconds",
        "_stream",
        "active",
        "alive",
        "busy",
        "draining",
        "echo_filter",
        "flood_drops",
        "gate",
        "held",
        "ip",
        "on_regroup",
        "open",
        "pinged_at",
        "session_key",
        "tokens",
        "tokens_at",
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
        droppable: bool = False,
        slow_seconds: float = 10.0,
        on_drop: Callable[[], None] | None = None,
        on_coalesce: Callable[[], None] | None = None,
        ip: str = "",
    ) -> None:
        self._owner = owner
        self._stream = stream
        self._protocol = protocol
        self._limit = max_outgoing_bytes
        self._on_slow_close = on_slow_close
        self._drop = droppable
        self._slow_seconds = slow_seconds
        self._on_drop = on_drop
        self._on_coalesce = on_coalesce
        # While behind: frames kept aside by coalescing key (or a unique object), oldest
        # first, their size, since when, and the next check whether it caught up.
        self._pending: dict[object, tuple[bytes, bytes]] | None = None
        self._pending_bytes = 0
        self._behind_since = 0.0
        self._behind: asyncio.TimerHandle | None = None
        self.ip = ip
        # Token bucket of client frames (see ``admit``); filled on first use.
        self.tokens = -1.0
        self.tokens_at = 0.0
        self.flood_drops = 0  # client frames dropped since the bucket was last full
        # Only plain TCP streams can be written with socket.send (not TLS).
        self._direct = type(stream) is IOStream
        self.active = False
        self.echo_filter: bytes | None = None
        self.open = True
        # While the last messages are replayed on open, live frames wait here so
        # the client sees the replay first and never a live message twice.
        self.held: list[tuple[bytes, bytes]] | None = None
        # Game sockets: passes each payload once, so no event reaches the client twice.
        self.gate: Callable[[bytes], bool] | None = None
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
            if len(self.held) < MAX_HELD_FRAMES:
                self.held.append((frame, payload))
            elif self._drop:  # kept messages being read while a flood comes in
                self._dropped()
            else:  # a game socket never resumed and flooded meanwhile
                self._slow_close()
            return
        gate = self.gate
        if gate is not None and not gate(payload):
            return
        if self._pending is not None:  # behind: after what waits, never before it
            self._keep_aside(frame, payload)
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
            if self._drop:
                self._keep_aside(frame, payload)
            else:
                self._slow_close()
            return
        stream.write(frame)

    def admit(self, now: float, rate: float, burst: int) -> bool:
        """Take one token for a client frame at ``now``; False when the bucket is empty.

        Refilled at ``rate`` per second up to ``burst``. A bucket found full ends a
        flood episode (``flood_drops`` back to 0).
        """
        tokens = self.tokens + (now - self.tokens_at) * rate
        self.tokens_at = now
        if tokens >= burst or self.tokens < 0:
            tokens = burst
            self.flood_drops = 0
        if tokens < 1.0:
            self.tokens = tokens
            self.flood_drops += 1
            return False
        self.tokens = tokens - 1.0
        return True

    def release(self, replay: list[bytes]) -> None:
        """End the hold: ``replay`` first (minus what arrived live meanwhile), then the
        held frames (a ``gate`` drops those the replay already covered)."""
        held, self.held = self.held or [], None
        arrived = {payload for _, payload in held}
        for payload in replay:
            if payload not in arrived:
                self.deliver(frame_for_payload(payload), payload)
        for frame, payload in held:
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
        if self._behind is not None:
            self._behind.cancel()
            self._behind = None
        self._pending = None
        if self.open:
            self.open = False
            self._owner.close(code, reason)

    def abort(self, *, reset: bool = False) -> None:
        """Drop the TCP connection at once (a dead peer gets no close handshake);
        ``reset`` also discards what the kernel still holds for it (RST, not FIN)."""
        self.open = False
        if reset and self._stream.socket is not None:
            with contextlib.suppress(OSError):
                self._stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        self._stream.close()

    def _keep_aside(self, frame: bytes, payload: bytes) -> None:
        """Behind: keep the frame until the client catches up, replacing an older one
        with the same key; past the bound, drop what replaces nothing."""
        pending = self._pending
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._pending = {}
            self._pending_bytes = 0
            self._behind_since = loop.time()
            self._behind = loop.call_later(CATCH_UP_POLL, self._catch_up)
        key: object = coalescing_key(payload)
        if key is not None and key in pending:
            older, _ = pending.pop(key)
            self._pending_bytes -= len(older)
            if self._on_coalesce is not None:
                self._on_coalesce()
        elif self._pending_bytes + len(frame) > self._limit // 4:
            self._dropped()
            return
        pending[object() if key is None else key] = (frame, payload)
        self._pending_bytes += len(frame)

    def _catch_up(self) -> None:
        """Write what was kept aside once the queue is down to half the bound; close with
        1013 when the client is still behind ``slow_seconds`` after falling behind."""
        self._behind = None
        pending = self._pending
        queued = self._stream._write_buffer
        if not self.open or pending is None or queued is None:
            return
        loop = asyncio.get_running_loop()
        if len(queued) * 2 <= self._limit:
            self._pending = None
            for frame, payload in pending.values():
                self.deliver(frame, payload)  # may fall behind again: kept aside anew
        elif loop.time() - self._behind_since >= self._slow_seconds:
            self._slow_close()
        else:
            self._behind = loop.call_later(CATCH_UP_POLL, self._catch_up)

    def _dropped(self) -> None:
        if self._on_drop is not None:
            self._on_drop()

    def _slow_close(self) -> None:
        log.info("closing slow client: more than %d bytes queued", self._limit)
        if self._on_slow_close is not None:
            self._on_slow_close()
        self.close(CLOSE_TRY_AGAIN_LATER, "client too slow")
        # The close frame waits behind everything queued; a client that is not reading
        # never gets it. Reset the connection soon, so neither our buffer nor the
        # kernel's keeps megabytes for it.
        loop = asyncio.get_running_loop()
        loop.call_later(SLOW_RESET_SECONDS, self._reset_if_still_there)

    def _reset_if_still_there(self) -> None:
        if not self._stream.closed():
            self.abort(reset=True)


class ConnectionSet:
    """Every open connection of the instance: idle heartbeats and drain."""

    def __init__(
        self, limits: LimitSettings | None = None, *, handshakes: RateLimiter | None = None
    ) -> None:
        self._all: dict[Connection, None] = {}
        self._emptied: asyncio.Event | None = None
        self.limits = limits or LimitSettings()
        # Handshakes per IP: in this process's memory (no Redis round trip per connect).
        self.handshakes: RateLimiter = handshakes or LocalRateLimiter(clock=time.monotonic)
        self._per_user: dict[str, int] = {}
        self._per_ip: dict[str, int] = {}

    def add(self, conn: Connection) -> None:
        if conn in self._all:
            return
        self._all[conn] = None
        if conn.username:
            self._per_user[conn.username] = self._per_user.get(conn.username, 0) + 1
        if conn.ip:
            self._per_ip[conn.ip] = self._per_ip.get(conn.ip, 0) + 1

    def discard(self, conn: Connection) -> None:
        if conn in self._all:
            del self._all[conn]
            _decrement(self._per_user, conn.username)
            _decrement(self._per_ip, conn.ip)
        if not self._all and self._emptied is not None:
            self._emptied.set()

    def sockets_of(self, *, username: str | None = None, ip: str | None = None) -> int:
        """Open sockets of ``username`` or from ``ip`` on this instance."""
        if username is not None:
            return self._per_user.get(username, 0)
        return self._per_ip.get(ip or "", 0)

    def over_socket_limit(self, username: str | None, ip: str) -> str | None:
        """Which cap one more socket of ``username`` from ``ip`` would pass, else None."""
        limits = self.limits
        if username and self._per_user.get(username, 0) >= limits.max_sockets_per_user:
            return f"at most {limits.max_sockets_per_user} sockets per user"
        if ip not in limits.exempt_ips and self._per_ip.get(ip, 0) >= limits.max_sockets_per_ip:
            return f"at most {limits.max_sockets_per_ip} sockets per address"
        return None

    async def handshake_retry_after(self, ip: str) -> int:
        """Count a handshake from ``ip``: 0 if allowed, else seconds to wait."""
        limits = self.limits
        if ip in limits.exempt_ips:
            return 0
        return await self.handshakes.hit(
            f"ws:ip:{ip}", limit=limits.handshakes_per_ip, window=limits.handshake_window
        )

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


def _decrement(counts: dict[str, int], key: str | None) -> None:
    if not key:
        return
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
