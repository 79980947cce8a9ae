"""``/ws/<facility>?<flags>``: the ws4redis WebSocket endpoint.

On the wire there is nothing but ws4redis' contract: last messages replayed on
open, published messages verbatim, heartbeats. Refusals happen before the
upgrade (HTTP 400/403/429 with a one-line reason) or as close codes afterwards.

Limits (``[limits]``, held by :class:`~app.connections.ConnectionSet`): handshakes per
IP (429 + Retry-After, before any database lookup), sockets per user and per IP on
this instance (429), channels per socket (400), and a token bucket of client frames
per socket (a warning frame, then 1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import tornado.web
import tornado.websocket
from tornado.httputil import HTTPHeaders

from app.channel_policy import (
    ChannelPlan,
    ChannelPolicy,
    parse_flags,
    plan_channels,
    validate_facility,
)
from app.connections import Connection, ConnectionSet
from app.errors import (
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    PlayhouseError,
    ProtocolError,
    RateLimited,
)
from app.handlers.base import http_status, set_instance_header, ws_close_code
from app.handlers.game_socket import GameSocket, GameSockets
from app.metrics import Metrics
from app.presence import Presence
from app.pubsub import PubSub
from app.types import ANONYMOUS, Identity

__all__ = ["Identify", "Ws4RedisHandler", "WsContext", "anonymous"]

log = logging.getLogger("playhouse.ws")

GROUP_FLAGS = frozenset(("subscribe-group", "publish-group"))

_SHED_HEADERS = HTTPHeaders()
_SHED_ARGUMENTS: dict[str, list[bytes]] = {}
"""Empty stand-ins, shared by every open socket, for the handshake's headers and arguments
(nothing reads or writes them once a socket is open; one each saves ~0.7 KB per socket)."""

_now = time.monotonic

Identify = Callable[[tornado.web.RequestHandler], Awaitable[Identity]]


async def anonymous(handler: tornado.web.RequestHandler) -> Identity:
    """The identity seam before accounts exist: everyone is anonymous."""
    return ANONYMOUS


@dataclass(frozen=True)
class WsContext:
    """Everything the endpoint needs, injected once through route kwargs."""

    pubsub: PubSub
    policy: ChannelPolicy
    identify: Identify
    connections: ConnectionSet
    metrics: Metrics
    heartbeat: str
    allowed_origins: frozenset[str]
    max_outgoing_bytes: int
    subscribe_timeout: float
    presence: Presence
    background: set[asyncio.Task[None]]
    games: GameSockets | None = None


class Ws4RedisHandler(tornado.websocket.WebSocketHandler):
    """One client socket: subscribe per flags, replay, relay, publish."""

    ctx: WsContext
    _plan: ChannelPlan
    _conn: Connection | None = None
    _session_key: str | None = None
    _username: str | None = None
    _game: GameSocket | None = None
    _identity: Identity = ANONYMOUS
    _facility = ""
    _flags: frozenset[str] = frozenset()
    _ip = ""

    def initialize(self, ctx: WsContext) -> None:
        self.ctx = ctx

    def set_default_headers(self) -> None:
        set_instance_header(self)

    async def prepare(self) -> None:
        facility = self.path_args[0] if self.path_args else ""
        connections = self.ctx.connections
        limits = connections.limits
        self._ip = ip = self.request.remote_ip or ""
        try:
            retry_after = await connections.handshake_retry_after(ip)
            if retry_after:  # before anything costs a lookup
                raise _limited("too many connection attempts", "too_many_handshakes", retry_after)
            validate_facility(facility)
            flags = parse_flags(self.request.query)
            identity = await self.ctx.identify(self)
            if self.ctx.games is not None:  # first: a game refuses anonymous sockets itself
                self._game = await self.ctx.games.resolve(identity, facility)
            names = self.ctx.pubsub.names
            self._plan = plan_channels(names, self.ctx.policy, identity, facility, flags)
            if self._game is not None:  # spectators: the game's public channel only
                self._plan = self._game.plan(names, self._plan)
            if len(self._plan.subscribe) > limits.max_subscriptions:
                raise BadRequest(
                    f"at most {limits.max_subscriptions} channels per socket",
                    code="too_many_subscriptions",
                )
            # No await from here to open() adding the socket: the count cannot race.
            over = connections.over_socket_limit(identity.username, ip)
            if over is not None:
                raise _limited(over, "too_many_sockets", 0)
            self._session_key = identity.session_key
            self._username = identity.username
            self._identity, self._facility, self._flags = identity, facility, flags
        except PlayhouseError as error:
            self.ctx.metrics.rejected.labels(error.code).inc()
            self.set_status(http_status(error))
            if isinstance(error, RateLimited) and error.retry_after > 0:
                self.set_header("Retry-After", str(error.retry_after))
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{error}\n")

    def check_origin(self, origin: str) -> bool:
        allowed = self.ctx.allowed_origins
        if "*" in allowed or origin in allowed or super().check_origin(origin):
            return True
        self.ctx.metrics.rejected.labels("origin").inc()
        return False

    async def open(self, *args: str, **kwargs: str) -> None:
        ctx = self.ctx
        # Small frames go out at once: with Nagle on, a frame written while the previous
        # one is unacknowledged waits for the peer's delayed ACK (~40 ms on Linux).
        self.set_nodelay(True)
        protocol = self.ws_connection
        stream = getattr(protocol, "stream", None)
        assert protocol is not None and stream is not None
        send_buffer = ctx.connections.limits.socket_send_buffer
        if send_buffer > 0 and stream.socket is not None:
            # A fixed kernel buffer: otherwise Linux grows it to megabytes for a client
            # that stopped reading, outside max_outgoing_bytes and outside our RSS.
            with contextlib.suppress(OSError):
                stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        conn = Connection(
            self,
            stream,
            protocol,
            max_outgoing_bytes=ctx.max_outgoing_bytes,
            on_slow_close=ctx.metrics.slow_closes.inc,
            # Game events are never dropped (a gap would break the seq); the rest may be.
            droppable=self._game is None,
            slow_seconds=ctx.connections.limits.slow_client_seconds,
            on_drop=ctx.metrics.dropped.inc,
            on_coalesce=ctx.metrics.coalesced.inc,
            ip=self._ip,
        )
        conn.session_key = self._session_key
        conn.username = self._username
        if self._game is None and self._flags & GROUP_FLAGS:
            conn.on_regroup = self._regroup
        self._conn = conn
        self._shed_handshake()
        ctx.connections.add(conn)
        ctx.metrics.connections.inc()
        if self._username:
            await ctx.presence.connected(self._username)
        conn.held = []
        waits = ctx.pubsub.registry.attach(conn, self._plan.subscribe)
        try:
            await asyncio.wait_for(asyncio.gather(*waits), ctx.subscribe_timeout)
        except TimeoutError:
            log.warning(
                "subscription not confirmed within %.1fs; continuing", ctx.subscribe_timeout
            )
        if self._game is not None:
            self._game.opened(conn)  # live frames stay held until the client resumes
            return
        conn.release(await self._kept_messages())

    def _shed_handshake(self) -> None:
        """Let go of what only the handshake needed: the request's headers, cookies and
        arguments and the handler's template namespace, a few KB per socket otherwise
        held for as long as it stays open."""
        self.ui = None  # type: ignore[assignment]  # no templates on a socket
        request = self.request
        request.headers = _SHED_HEADERS
        request.__dict__.pop("_cookies", None)
        request.arguments = request.query_arguments = request.body_arguments = _SHED_ARGUMENTS
        self._headers = _SHED_HEADERS  # the 101's, long sent
        self.path_args, self.path_kwargs = [], {}

    def _regroup(self, groups: tuple[str, ...]) -> None:
        """Re-plan this socket's channels for the user's new ``groups`` (joined or left
        a guild): subscribe the new group channels, drop the old ones, in place."""
        conn = self._conn
        if conn is None or groups == self._identity.groups:
            return
        ctx = self.ctx
        identity = replace(self._identity, groups=groups)
        try:
            plan = plan_channels(
                ctx.pubsub.names, ctx.policy, identity, self._facility, self._flags
            )
        except PlayhouseError as error:
            self._identity = identity
            self._refuse(conn, error)
            return
        most = ctx.connections.limits.max_subscriptions
        if len(plan.subscribe) > most:
            log.warning(
                "%s: %d channels would pass limits.max_subscriptions (%d); plan kept",
                self._username,
                len(plan.subscribe),
                most,
            )
            return
        self._identity = identity
        old = self._plan.subscribe
        ctx.pubsub.registry.detach(conn, [c for c in old if c not in plan.subscribe])
        waits = ctx.pubsub.registry.attach(conn, [c for c in plan.subscribe if c not in old])
        self._plan = plan
        if waits:
            task = asyncio.ensure_future(_confirmed(waits))
            ctx.background.add(task)
            task.add_done_callback(ctx.background.discard)

    async def _kept_messages(self) -> list[bytes]:
        """Each channel's kept last message (ws4redis ``send_persisted_messages``).

        Subscribed first, read second: nothing published in between is missed.
        """
        kept = []
        for channel in self._plan.subscribe:
            try:
                message = await self.ctx.pubsub.broker.last_message(channel)
            except BrokerUnavailable as error:
                log.warning("no replay for %s: %s", channel, error)
                break
            if message is not None and message not in self.ctx.pubsub.registry.ignored:
                kept.append(message)
        return kept

    async def on_message(self, message: str | bytes) -> None:
        ctx = self.ctx
        conn = self._conn
        ctx.metrics.messages_in.inc()
        if conn is None:
            return
        conn.alive = True
        limits = ctx.connections.limits
        if not conn.admit(_now(), limits.messages_per_second, limits.message_burst):
            self._flooded(conn)
            return
        conn.busy += 1
        try:
            await self._handle(conn, message)
        finally:
            conn.done_with_frame()

    async def _handle(self, conn: Connection, message: str | bytes) -> None:
        ctx = self.ctx
        if isinstance(message, bytes):
            self._refuse(conn, ProtocolError("binary frames are not supported", code="binary"))
            return
        if ctx.heartbeat and message == ctx.heartbeat:
            conn.send_text(ctx.heartbeat)
            return
        if not message:
            return  # ws4redis publishes nothing for an empty message
        if self._game is not None:
            await self._game.on_message(conn, message)
            return
        if not self._plan.publish:
            self._refuse(
                conn, Forbidden("this connection has no publish-* flag", code="not_publisher")
            )
            return
        payload = message.encode()
        if not self._plan.echo:
            conn.echo_filter = payload
        try:
            await ctx.pubsub.publish(self._plan.publish, payload)
        except BrokerUnavailable as error:
            ctx.metrics.publish_failures.inc()
            log.warning("client publish dropped: %s", error)

    def _flooded(self, conn: Connection) -> None:
        """A frame found the bucket empty: dropped; warned once, closed if it goes on."""
        if not conn.open:
            return
        ctx = self.ctx
        limits = ctx.connections.limits
        if conn.flood_drops == 1:
            ctx.metrics.rejected.labels("rate_limited").inc()
            warning: dict[str, object] = {"type": "error", "code": "rate_limited"}
            if self._game is not None:
                warning = {"type": "error", "id": None, "code": "rate_limited"}
            warning["message"] = (
                f"more than {limits.messages_per_second:g} messages per second: "
                "messages are being dropped; slow down or be disconnected"
            )
            conn.send_text(json.dumps(warning))
        elif conn.flood_drops > limits.message_burst:
            self._refuse(conn, Forbidden("too many messages", code="too_many_messages"))

    def _refuse(self, conn: Connection, error: PlayhouseError) -> None:
        """Close with the code our error tree maps ``error`` to, and count it."""
        self.ctx.metrics.rejected.labels(error.code).inc()
        conn.close(ws_close_code(error), str(error))

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if isinstance(protocol, tornado.websocket.WebSocketProtocol13):
            # Same object, one method more: Tornado builds it from private parameters.
            protocol.__class__ = _CountingProtocol
        return protocol

    def on_pong(self, data: bytes) -> None:
        if self._conn is not None:
            self._conn.alive = True

    def on_close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.open = False
        ctx = self.ctx
        if self._game is not None:
            self._game.closed()
        ctx.pubsub.registry.detach(conn, self._plan.subscribe)
        ctx.connections.discard(conn)
        ctx.metrics.connections.dec()
        if self._username:  # after the grace, "offline" unless another socket remains
            task = asyncio.ensure_future(ctx.presence.disconnected(self._username))
            ctx.background.add(task)
            task.add_done_callback(ctx.background.discard)


class _CountingProtocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's protocol, counting the frames it refuses itself before any handler
    code sees them: over ``max_message_size`` (1009, ``too_big``)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == CLOSE_MESSAGE_TOO_BIG and not self.server_terminated:
            handler = self.handler
            if isinstance(handler, Ws4RedisHandler):
                handler.ctx.metrics.rejected.labels("too_big").inc()
        super().close(code, reason)


CLOSE_MESSAGE_TOO_BIG = 1009


def _limited(message: str, code: str, retry_after: int) -> RateLimited:
    error = RateLimited(message, retry_after=retry_after)
    error.code = code
    return error


async def _confirmed(waits: list[Awaitable[None]]) -> None:
    try:
        await asyncio.gather(*waits)
    except Exception as error:  # the registry re-subscribes when the broker is back
        log.warning("group channels not confirmed: %s", error)
