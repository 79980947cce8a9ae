"""Challenge races through the whole lobby service (challenges + game creation + Redis
notifications): whatever the interleaving, each accepted challenge has exactly one game,
and no game exists without an accepted challenge."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.errors import PlayhouseError
from app.pubsub import ChannelNames, PubSub, Registry
from app.redis_broker import RedisBroker
from app.services.challenges import Challenges, game_id_for
from app.services.lobby import Lobby
from app.services.play import Play
from app.storage.challenges import MongoChallenges
from app.storage.games import MongoGames
from app.storage.mongo import MongoStorage
from tests.support import MongoProcess, RedisProcess, unique_database

PAIRS = [(f"p{2 * i}", f"p{2 * i + 1}") for i in range(50)]


@pytest.fixture
async def lobby(
    mongo_session: MongoProcess, redis_server: RedisProcess
) -> AsyncIterator[tuple[Lobby, MongoStorage]]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    challenge_repo, games = MongoChallenges(store.database), MongoGames(store.database)
    await challenge_repo.ensure_indexes()
    await games.ensure_indexes()
    broker = RedisBroker(redis_server.url, timeout=2.0)
    await broker.start()
    pubsub = PubSub(broker, ChannelNames(""), expire=0, registry=Registry(broker))

    async def registered(name: str) -> bool:
        return True

    async def known(name: str) -> str | None:
        return name

    # Presence is not under test here: everyone is online and free.
    challenges = Challenges(challenge_repo, user_exists=registered, is_available=registered)
    yield Lobby(challenges, Play(games, pubsub), pubsub, find_user=known), store
    await broker.close()
    await store.close()


async def test_200_racing_accepts_cancels_and_cross_challenges_make_one_game_each(
    lobby: tuple[Lobby, MongoStorage],
) -> None:
    service, store = lobby
    originals = [await service.challenge(a, b, "connect4") for a, b in PAIRS]

    async def run(op: str, sent: dict[str, Any]) -> tuple[str, str, Any]:
        await asyncio.sleep(random.random() / 100)
        try:
            if op == "accept":
                return op, sent["id"], await service.accept(sent["id"], sent["to"])
            if op == "cancel":
                return op, sent["id"], await service.cancel(sent["id"], sent["from"])
            return op, sent["id"], await service.challenge(sent["to"], sent["from"], "connect4")
        except PlayhouseError as error:
            return op, sent["id"], error.code

    ops = [(op, c) for c in originals for op in ("accept", "accept", "cancel", "cross")]
    random.shuffle(ops)
    assert len(ops) == 200
    results = await asyncio.gather(*(run(op, c) for op, c in ops))

    challenges = {d["_id"]: d async for d in store.database["challenges"].find({})}
    games = {d["_id"]: d async for d in store.database["games"].find({})}
    accepted = {cid for cid, d in challenges.items() if d["status"] == "accepted"}
    assert set(games) == {game_id_for(cid) for cid in accepted}  # one each, no orphan
    for op, cid, outcome in results:
        if op == "accept" and cid in accepted:
            assert outcome["game_id"] == game_id_for(cid)  # both clicks: the same game
        elif op == "accept":
            assert outcome == "not_pending"
    for original in originals:
        game = games.get(game_id_for(original["id"]))
        if game is not None:
            assert game["players"] == [original["from"], original["to"]]
            assert game["kind"] == "connect4" and game["seq"] == 0
    assert 0 < len(accepted) < len(originals)  # the shuffle let both outcomes happen
