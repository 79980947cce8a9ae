"""Build and close the long-lived dependencies of one instance."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import tornado.web

from app.channel_policy import ChannelPolicy, DefaultPolicy
from app.config import Settings, safe_url
from app.connections import ConnectionSet
from app.control import ControlChannel
from app.errors import StorageUnavailable
from app.handlers.base import SESSION_COOKIE
from app.handlers.ws import Identify
from app.metrics import Metrics
from app.passwords import PasswordHasher
from app.presence import LocalPresence, Presence
from app.presence_redis import RedisPresence
from app.pubsub import Broker, ChannelNames, LocalBroker, PubSub, Registry
from app.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from app.redis_broker import RedisBroker
from app.services.accounts import Accounts, LoginLimits
from app.services.challenges import Challenges
from app.services.guilds import GuildLimits, Guilds
from app.services.lobby import Lobby
from app.services.notices import Notices
from app.services.play import GameLimits, Play
from app.services.ratings import Ratings
from app.services.records import Records
from app.services.watchers import LocalWatchers, RedisWatchers, Watchers
from app.storage.challenges import MongoChallenges
from app.storage.games import MongoGames
from app.storage.guilds import MongoGuilds
from app.storage.mongo import MongoStorage
from app.storage.ratings import MongoRatings
from app.types import Identity

__all__ = ["Deps", "build_deps", "instance_name"]


@dataclass
class Deps:
    """What handlers and services share; built by :func:`build_deps`."""

    instance_id: str
    cookie_secret: str
    metrics: Metrics
    pubsub: PubSub
    policy: ChannelPolicy
    identify: Identify
    connections: ConnectionSet
    storage: MongoStorage
    hasher: PasswordHasher
    accounts: Accounts
    notices: Notices
    control: ControlChannel
    lobby: Lobby
    games: MongoGames
    play: Play
    presence: Presence
    ratings: Ratings
    watchers: Watchers
    guilds: Guilds
    draining: bool = field(default=False)

    def is_draining(self) -> bool:
        return self.draining

    async def close(self) -> None:
        await self.play.close()
        await self.presence.close()
        await self.pubsub.broker.close()
        await self.storage.close()
        self.hasher.close()


def instance_name(settings: Settings) -> str:
    """``server.instance_id``, or host name and pid when it is empty."""
    return settings.server.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def _make_broker(settings: Settings, metrics: Metrics) -> Broker:
    if not settings.redis.url:
        return LocalBroker()
    return RedisBroker(
        settings.redis.url,
        timeout=settings.redis.timeout,
        on_reconnect=metrics.broker_reconnects.inc,
    )


def _make_presence(settings: Settings, broker: Broker, pubsub: PubSub) -> Presence:
    config = settings.presence
    if isinstance(broker, RedisBroker):
        return RedisPresence(
            pubsub,
            broker.client,
            instance_id=instance_name(settings),
            grace=config.grace,
            heartbeat=config.heartbeat,
            ttl=config.ttl,
        )
    return LocalPresence(pubsub, grace=config.grace)


def _make_watchers(settings: Settings, broker: Broker) -> Watchers:
    if isinstance(broker, RedisBroker):
        return RedisWatchers(
            broker.client, instance_id=instance_name(settings), prefix=settings.ws4redis.prefix
        )
    return LocalWatchers()


def _make_limiter(settings: Settings, broker: Broker) -> RateLimiter:
    if isinstance(broker, RedisBroker):
        return RedisRateLimiter(broker.client, prefix=settings.ws4redis.prefix)
    return LocalRateLimiter()


def _identify(accounts: Accounts) -> Identify:
    async def identify(handler: tornado.web.RequestHandler) -> Identity:
        raw = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=366)
        return await accounts.identity(raw.decode() if raw else None)

    return identify


def _find_user(storage: MongoStorage) -> Callable[[str], Awaitable[str | None]]:
    """``await find_user(name)``: the canonical spelling of a registered name, else None."""

    async def find_user(name: str) -> str | None:
        key = name.strip().casefold()
        user = await storage.users.get(key) if 0 < len(key) <= 64 else None
        return user.username if user is not None else None

    return find_user


def bcrypt_threads(settings: Settings) -> int:
    """``security.bcrypt_threads``, or one per core.

    bcrypt releases the GIL; measured (docs/benchmarks.md) one thread per core keeps
    IOLoop lag p99 under 5 ms on 2 cores while doubling logins/s over cores - 1.
    """
    return settings.security.bcrypt_threads or (os.cpu_count() or 1)


async def build_deps(settings: Settings, *, mongo_url: str) -> Deps:
    """Create and start every dependency.

    Raises:
        BrokerUnavailable: Redis is configured but unreachable.
        StorageUnavailable: MongoDB is unreachable.
    """
    metrics = Metrics(instance_name(settings))
    broker = _make_broker(settings, metrics)
    heartbeat = settings.ws4redis.heartbeat.encode()
    registry = Registry(broker, on_fanout=metrics.on_fanout, ignored=frozenset((b"", heartbeat)))
    metrics.count_received(lambda: registry.received)
    storage = MongoStorage(
        mongo_url, database=settings.mongodb.database, timeout=settings.mongodb.timeout
    )
    await broker.start()
    challenge_repo = MongoChallenges(storage.database)
    games = MongoGames(storage.database)
    rating_repo = MongoRatings(storage.database)
    guild_repo = MongoGuilds(storage.database)
    try:
        await storage.ensure_indexes()
        await challenge_repo.ensure_indexes()
        await games.ensure_indexes()
        await rating_repo.ensure_indexes()
        await guild_repo.ensure_indexes()
    except StorageUnavailable:
        await broker.close()
        raise StorageUnavailable(f"cannot reach MongoDB at {safe_url(mongo_url)}") from None
    names = ChannelNames(settings.ws4redis.prefix)
    pubsub = PubSub(broker, names, expire=settings.ws4redis.expire, registry=registry)
    security = settings.security
    hasher = PasswordHasher(rounds=security.bcrypt_rounds, workers=bcrypt_threads(settings))
    limiter = _make_limiter(settings, broker)
    accounts = Accounts(
        storage,
        hasher,
        limiter,
        session_ttl=security.session_ttl,
        limits=LoginLimits(
            per_user=security.login_attempts_per_user,
            per_ip=security.login_attempts_per_ip,
            registrations_per_ip=security.registrations_per_ip,
            window=security.rate_window,
        ),
    )
    find_user = _find_user(storage)

    async def user_exists(name: str) -> bool:
        return await find_user(name) is not None

    presence = _make_presence(settings, broker, pubsub)
    await presence.start()

    async def is_available(name: str) -> bool:
        """Online (a socket open somewhere) and not already in a game."""
        return (await presence.online()).get(name) == "online"

    game_settings = settings.games
    challenges = Challenges(
        challenge_repo,
        user_exists=user_exists,
        is_available=is_available,
        ttl=game_settings.challenge_seconds,
    )
    connections = ConnectionSet(settings.limits)
    control = ControlChannel(pubsub, connections, presence)

    async def groups_of(user: str) -> tuple[str, ...]:
        return await guild_repo.groups_of(user.casefold())

    control.groups_of = groups_of
    await control.start()
    limits = GameLimits(
        clock_ms=int(game_settings.clock_seconds * 1000),
        move_ms=int(game_settings.move_seconds * 1000),
        abandon_ms=int(game_settings.abandon_seconds * 1000),
        chat_max_chars=game_settings.chat_max_chars,
    )
    play = Play(games, pubsub, limits=limits, on_status=control.set_status)
    ratings = Ratings(rating_repo, records=Records(games=games, users=storage.users))
    play.on_finished = ratings.on_finished
    return Deps(
        instance_id=instance_name(settings),
        cookie_secret=settings.server.cookie_secret or secrets.token_urlsafe(32),
        metrics=metrics,
        pubsub=pubsub,
        policy=DefaultPolicy(
            public=frozenset(settings.channels.public),
            publishable=frozenset(settings.channels.publishable),
        ),
        identify=_identify(accounts),
        connections=connections,
        storage=storage,
        hasher=hasher,
        accounts=accounts,
        notices=Notices(storage, pubsub),
        control=control,
        games=games,
        play=play,
        lobby=Lobby(challenges, play, pubsub, find_user=find_user),
        presence=presence,
        ratings=ratings,
        watchers=_make_watchers(settings, broker),
        guilds=Guilds(
            guild_repo,
            pubsub,
            presence,
            limiter,
            find_user=find_user,
            regroup=control.regroup,
            limits=GuildLimits(
                max_guilds=settings.guilds.max_per_user,
                chat_max_chars=settings.guilds.chat_max_chars,
                chat_history=settings.guilds.chat_history,
                chat_per_window=settings.guilds.chat_per_window,
                chat_window=settings.guilds.chat_window,
            ),
        ),
    )
