"""Playhouse: ``make_app`` wires routes to their dependencies, nothing else."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import tornado.web
from tornado.log import access_log

from app.config import Settings
from app.deps import Deps
from app.handlers.admin import AdminPage, BroadcastApi
from app.handlers.auth import (
    LoginApi,
    LoginPage,
    LogoutApi,
    LogoutPage,
    MeApi,
    RegisterApi,
    RegisterPage,
    XsrfApi,
)
from app.handlers.base import RequestsInFlight, StaticFiles
from app.handlers.context import WebContext
from app.handlers.game_socket import GameSockets
from app.handlers.games import CatalogueApi, ChatApi, DrawApi, GameApi, MoveApi, ResignApi
from app.handlers.guilds import (
    GUILD_NAME,
    GuildActionApi,
    GuildApi,
    GuildChatApi,
    GuildMemberApi,
    GuildPage,
    GuildsApi,
    GuildsPage,
)
from app.handlers.health import HealthHandler, MetricsHandler, ReadyHandler
from app.handlers.lobby import ChallengeActionApi, ChallengesApi, LobbyApi
from app.handlers.pages import GamePage, IndexHandler, NotFoundHandler
from app.handlers.ratings import LeaderboardApi, LeaderboardPage, ProfileApi, ProfilePage
from app.handlers.records import HistoryApi, HistoryPage
from app.handlers.rematch import RematchApi
from app.handlers.replays import ReplayApi, ReplayPage
from app.handlers.ws import Ws4RedisHandler, WsContext
from app.services.records import Records
from app.services.replays import Replays

__all__ = ["ROOT", "make_app"]

ROOT = Path(__file__).resolve().parent.parent
GAME_ID = r"[A-Za-z0-9_-]{1,64}"
USER_NAME = r"[^/]{1,64}"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Access log: WebSocket upgrades at DEBUG (thousands per second in a storm)."""
    status = handler.get_status()
    if status == 101:
        level = logging.DEBUG
    elif status < 400:
        level = logging.INFO
    else:
        level = logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    millis = 1000.0 * request.request_time()
    access_log.log(level, "%d %s %.2fms", status, handler._request_summary(), millis)


def make_app(settings: Settings, deps: Deps) -> tornado.web.Application:
    """The Tornado application for ``settings`` over already-started ``deps``."""
    background: set[asyncio.Task[None]] = set()
    games = GameSockets(deps.play, deps.games, background, deps.metrics, watchers=deps.watchers)
    # A player marked away by one instance is marked back by any other holding their socket.
    games.on_away = deps.control.game_left
    deps.control.on_game_left = games.recheck
    ws = WsContext(
        pubsub=deps.pubsub,
        policy=deps.policy,
        identify=deps.identify,
        connections=deps.connections,
        metrics=deps.metrics,
        heartbeat=settings.ws4redis.heartbeat,
        allowed_origins=frozenset(settings.security.allowed_origins),
        max_outgoing_bytes=settings.limits.max_outgoing_bytes,
        subscribe_timeout=settings.redis.timeout,
        presence=deps.presence,
        background=background,
        games=games,
    )
    web = {
        "web": WebContext(
            accounts=deps.accounts,
            notices=deps.notices,
            control=deps.control,
            connections=deps.connections,
            session_ttl=settings.security.session_ttl,
            heartbeat=settings.ws4redis.heartbeat,
            admin_token=settings.admin.token,
            lobby=deps.lobby,
            presence=deps.presence,
            play=deps.play,
            games=deps.games,
            guilds=deps.guilds,
        )
    }
    records = Records(games=deps.games, users=deps.storage.users)
    ready = {"checks": {"broker": deps.pubsub.broker.ping, "storage": deps.storage.ping}}
    handlers = [
        (r"/", IndexHandler, web),
        (r"/login", LoginPage, web),
        (r"/register", RegisterPage, web),
        (r"/logout", LogoutPage, web),
        (r"/admin", AdminPage, web),
        (rf"/game/({GAME_ID})", GamePage, web),
        (rf"/replay/({GAME_ID})", ReplayPage, web),
        (rf"/users/({USER_NAME})/history", HistoryPage, {**web, "records": records}),
        (r"/leaderboard", LeaderboardPage, {**web, "ratings": deps.ratings}),
        (rf"/users/({USER_NAME})", ProfilePage, {**web, "ratings": deps.ratings}),
        (r"/guilds", GuildsPage, web),
        (rf"/guilds/({GUILD_NAME})", GuildPage, web),
        (r"/api/guilds", GuildsApi, web),
        (rf"/api/guilds/({GUILD_NAME})", GuildApi, web),
        (rf"/api/guilds/({GUILD_NAME})/chat", GuildChatApi, web),
        (rf"/api/guilds/({GUILD_NAME})/(join|leave|owner)", GuildActionApi, web),
        (
            rf"/api/guilds/({GUILD_NAME})/(requests|members)/([^/]{{1,64}})/(accept|decline|remove)",
            GuildMemberApi,
            web,
        ),
        (r"/api/xsrf", XsrfApi, web),
        (r"/api/me", MeApi, web),
        (r"/api/register", RegisterApi, web),
        (r"/api/login", LoginApi, web),
        (r"/api/logout", LogoutApi, web),
        (r"/api/admin/broadcast", BroadcastApi, web),
        (r"/api/games/catalogue", CatalogueApi, web),
        (rf"/api/games/({GAME_ID})", GameApi, web),
        (rf"/api/games/({GAME_ID})/moves", MoveApi, web),
        (rf"/api/games/({GAME_ID})/resign", ResignApi, web),
        (rf"/api/games/({GAME_ID})/draw", DrawApi, web),
        (rf"/api/games/({GAME_ID})/chat", ChatApi, web),
        (rf"/api/games/({GAME_ID})/rematch", RematchApi, web),
        (rf"/api/games/({GAME_ID})/replay", ReplayApi, {**web, "replays": Replays(deps.games)}),
        (rf"/api/users/({USER_NAME})/games", HistoryApi, {**web, "records": records}),
        (rf"/api/users/({USER_NAME})/profile", ProfileApi, {**web, "ratings": deps.ratings}),
        (r"/api/leaderboard", LeaderboardApi, {**web, "ratings": deps.ratings}),
        (r"/api/lobby", LobbyApi, web),
        (r"/api/challenges", ChallengesApi, web),
        (r"/api/challenges/(\w{1,64})/(accept|decline|cancel)", ChallengeActionApi, web),
        (r"/healthz", HealthHandler),
        (r"/readyz", ReadyHandler, {**ready, "draining": deps.is_draining}),
        (r"/metrics", MetricsHandler, {"metrics": deps.metrics}),
        (r"/ws/(.*)", Ws4RedisHandler, {"ctx": ws}),
    ]
    limits = settings.limits
    return tornado.web.Application(
        handlers,  # type: ignore[arg-type]
        template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"),
        static_handler_class=StaticFiles,
        cookie_secret=deps.cookie_secret,
        instance_id=deps.instance_id,
        in_flight=RequestsInFlight(),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Strict"},
        debug=settings.server.debug,
        # Pings run in one sweep for all sockets (ConnectionSet.run_pings).
        websocket_ping_interval=None,
        websocket_max_message_size=limits.max_message_bytes,
        log_function=log_request,
        default_handler_class=NotFoundHandler,
        default_handler_args=web,
    )
