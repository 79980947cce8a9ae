"""The Challenges service on real MongoDB-protocol storage, with an injected clock."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from app.errors import Conflict, Forbidden, Invalid, NotFound, PlayhouseError
from app.pubsub import ChannelNames, LocalBroker, PubSub, Registry
from app.services.challenges import (
    ChallengePending,
    Challenges,
    game_id_for,
    pending_key,
)
from app.services.lobby import Lobby, challenge_json
from app.services.play import Play
from app.storage.challenges import Challenge, ChallengeStatus, MongoChallenges
from app.storage.games import MongoGames
from app.storage.mongo import MongoStorage
from tests.support import MongoProcess, unique_database

USERS = {"alice", "bob", "carol", "dave"} | {f"p{i}" for i in range(120)}


class Clock:
    """A hand-wound clock."""

    def __init__(self) -> None:
        self.current = datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class World:
    service: Challenges
    store: MongoStorage
    clock: Clock
    busy: set[str]

    async def docs(self, collection: str) -> list[dict[str, Any]]:
        return [doc async for doc in self.store.database[collection].find({})]


@pytest.fixture
async def world(mongo_session: MongoProcess) -> AsyncIterator[World]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    repo = MongoChallenges(store.database)
    await repo.ensure_indexes()
    clock = Clock()
    busy: set[str] = set()

    async def user_exists(name: str) -> bool:
        return name.casefold() in USERS

    async def is_available(name: str) -> bool:
        return name.casefold() not in busy

    service = Challenges(repo, user_exists=user_exists, is_available=is_available, now=clock.now)
    yield World(service, store, clock, busy)
    await store.close()


async def assert_no_orphans(world: World) -> None:
    """Every pending key points at a pending challenge, and every pending challenge has one."""
    challenges = {doc["_id"]: doc for doc in await world.docs("challenges")}
    keys = await world.docs("challenge_pending")
    for key in keys:
        doc = challenges[key["challenge"]]
        assert doc["status"] == "pending", (key, doc)
        assert key["_id"] == pending_key(doc["from"], doc["to"], doc["game"])
    pending = {i for i, doc in challenges.items() if doc["status"] == "pending"}
    assert pending == {key["challenge"] for key in keys}


async def test_create_returns_a_pending_record(world: World) -> None:
    challenge = await world.service.create("alice", "bob", "tictactoe")
    assert isinstance(challenge, Challenge)
    assert (challenge.from_user, challenge.to_user, challenge.game) == ("alice", "bob", "tictactoe")
    assert challenge.status is ChallengeStatus.PENDING and challenge.game_id is None
    assert challenge.created_at == world.clock.now()
    assert challenge.expires_at == world.clock.now() + timedelta(seconds=60)
    assert await world.service.get(challenge.id) == challenge
    await assert_no_orphans(world)


async def test_ttl_is_configurable(world: World) -> None:
    service = Challenges(
        MongoChallenges(world.store.database),
        user_exists=lambda name: asyncio.sleep(0, True),
        is_available=lambda name: asyncio.sleep(0, True),
        ttl=5,
        now=world.clock.now,
    )
    challenge = await service.create("alice", "bob", "connect4")
    assert challenge.expires_at - challenge.created_at == timedelta(seconds=5)


async def test_validation(world: World) -> None:
    with pytest.raises(Invalid) as error:
        await world.service.create("alice", "ALICE", "tictactoe")
    assert error.value.field == "to"
    with pytest.raises(Invalid) as error:
        await world.service.create("alice", "bob", "chess")
    assert error.value.field == "game"
    with pytest.raises(NotFound) as missing:
        await world.service.create("alice", "nobody", "tictactoe")
    assert missing.value.code == "unknown_user"
    world.busy.add("bob")
    with pytest.raises(Conflict) as busy:
        await world.service.create("alice", "bob", "tictactoe")
    assert busy.value.code == "player_unavailable"
    assert await world.docs("challenges") == [] and await world.docs("challenge_pending") == []


async def test_one_pending_per_pair_and_game_in_either_direction(world: World) -> None:
    first = await world.service.create("alice", "bob", "tictactoe")
    with pytest.raises(ChallengePending) as again:
        await world.service.create("alice", "bob", "tictactoe")
    assert again.value.code == "challenge_pending" and "wait" in str(again.value)
    with pytest.raises(ChallengePending) as cross:
        await world.service.create("Bob", "alice", "tictactoe")
    assert cross.value.code == "challenge_pending" and cross.value.challenge_id == first.id
    assert "alice has already challenged you" in str(cross.value)
    assert "accept that challenge" in str(cross.value)
    # another game, or another pair, is fine
    await world.service.create("bob", "alice", "connect4")
    await world.service.create("alice", "carol", "tictactoe")
    assert len(await world.docs("challenges")) == 3  # refused creates leave nothing
    await assert_no_orphans(world)


async def test_accept_only_by_the_challenged_and_idempotent(world: World) -> None:
    challenge = await world.service.create("alice", "bob", "tictactoe")
    for intruder in ("alice", "carol"):
        with pytest.raises(Forbidden) as error:
            await world.service.accept(challenge.id, intruder)
        assert error.value.code == "not_yours"
    accepted = await world.service.accept(challenge.id, "bob")
    assert accepted.status is ChallengeStatus.ACCEPTED
    assert accepted.game_id == game_id_for(challenge.id) and len(accepted.game_id) == 16
    assert await world.service.accept(challenge.id, "BOB") == accepted
    with pytest.raises(Conflict) as late:
        await world.service.decline(challenge.id, "bob")
    assert late.value.code == "not_pending"
    with pytest.raises(Conflict) as late:
        await world.service.cancel(challenge.id, "alice")
    assert late.value.code == "not_pending"
    await assert_no_orphans(world)
    rematch = await world.service.create("bob", "alice", "tictactoe")  # the key was released
    assert rematch.id != challenge.id


async def test_unknown_challenge(world: World) -> None:
    for call in (world.service.accept, world.service.decline, world.service.cancel):
        with pytest.raises(NotFound):
            await call("nope", "bob")


async def test_decline_only_by_the_challenged(world: World) -> None:
    challenge = await world.service.create("alice", "bob", "tictactoe")
    with pytest.raises(Forbidden):
        await world.service.decline(challenge.id, "alice")
    declined = await world.service.decline(challenge.id, "bob")
    assert declined.status is ChallengeStatus.DECLINED and declined.game_id is None
    assert await world.service.decline(challenge.id, "bob") == declined
    with pytest.raises(Conflict) as error:
        await world.service.accept(challenge.id, "bob")
    assert error.value.code == "not_pending" and "declined" in str(error.value)
    await assert_no_orphans(world)
    await world.service.create("alice", "bob", "tictactoe")


async def test_cancel_only_by_the_challenger(world: World) -> None:
    challenge = await world.service.create("alice", "bob", "tictactoe")
    with pytest.raises(Forbidden):
        await world.service.cancel(challenge.id, "bob")
    cancelled = await world.service.cancel(challenge.id, "alice")
    assert cancelled.status is ChallengeStatus.CANCELLED
    with pytest.raises(Conflict) as error:
        await world.service.accept(challenge.id, "bob")
    assert error.value.code == "not_pending"
    await assert_no_orphans(world)
    await world.service.create("bob", "alice", "tictactoe")


async def test_expired_challenge_cannot_be_accepted(world: World) -> None:
    challenge = await world.service.create("alice", "bob", "tictactoe")
    world.clock.advance(59)
    assert (await world.service.accept(challenge.id, "bob")).game_id
    late = await world.service.create("alice", "carol", "tictactoe")
    world.clock.advance(60)
    with pytest.raises(Conflict) as error:
        await world.service.accept(late.id, "carol")
    assert error.value.code == "expired"
    stored = await world.service.get(late.id)
    assert stored is not None and stored.status is ChallengeStatus.EXPIRED
    with pytest.raises(Conflict) as again:
        await world.service.cancel(late.id, "alice")
    assert again.value.code == "expired"
    await assert_no_orphans(world)


async def test_expired_pending_challenge_does_not_block_a_new_one(world: World) -> None:
    old = await world.service.create("alice", "bob", "tictactoe")
    world.clock.advance(61)
    new = await world.service.create("bob", "alice", "tictactoe")  # no sweep ran
    stored = await world.service.get(old.id)
    assert stored is not None and stored.status is ChallengeStatus.EXPIRED
    assert new.status is ChallengeStatus.PENDING
    await assert_no_orphans(world)


async def test_stale_key_is_repaired_on_create(world: World) -> None:
    old = await world.service.create("alice", "bob", "tictactoe")
    # as if an instance died between the transition and the key release
    await world.store.database["challenges"].update_one(
        {"_id": old.id}, {"$set": {"status": "accepted"}}
    )
    await world.service.create("alice", "bob", "tictactoe")
    await assert_no_orphans(world)


async def test_expire_due(world: World) -> None:
    due = [await world.service.create("alice", name, "tictactoe") for name in ("bob", "carol")]
    world.clock.advance(30)
    fresh = await world.service.create("alice", "dave", "tictactoe")
    world.clock.advance(31)
    expired = await world.service.expire_due(world.clock.now())
    assert sorted(c.id for c in expired) == sorted(c.id for c in due)
    assert all(c.status is ChallengeStatus.EXPIRED for c in expired)
    assert await world.service.expire_due(world.clock.now()) == []
    still = await world.service.get(fresh.id)
    assert still is not None and still.status is ChallengeStatus.PENDING
    await assert_no_orphans(world)


async def test_the_everyday_sweep_expires_challenges_made_here(world: World) -> None:
    made = await world.service.create("alice", "bob", "tictactoe")
    elsewhere = Challenges(
        MongoChallenges(world.store.database),
        user_exists=lambda name: _true(),
        is_available=lambda name: _true(),
        now=world.clock.now,
    )
    assert await elsewhere.expire_due(world.clock.now(), everywhere=False) == []
    world.clock.advance(61)
    assert await elsewhere.expire_due(world.clock.now(), everywhere=False) == []
    expired = await world.service.expire_due(world.clock.now(), everywhere=False)
    assert [c.id for c in expired] == [made.id]
    assert await world.service.expire_due(world.clock.now(), everywhere=False) == []


async def _true() -> bool:
    return True


async def test_concurrent_creates_for_one_pair(world: World) -> None:
    async def create(i: int) -> bool:
        sender, receiver = ("alice", "bob") if i % 2 else ("bob", "alice")
        try:
            await world.service.create(sender, receiver, "tictactoe")
        except ChallengePending:
            return False
        return True

    assert (await asyncio.gather(*(create(i) for i in range(20)))).count(True) == 1
    assert len(await world.docs("challenges")) == 1
    world.clock.advance(61)  # the winner expires unswept; again exactly one replaces it
    assert (await asyncio.gather(*(create(i) for i in range(20)))).count(True) == 1
    await assert_no_orphans(world)


async def test_race_accept_cancel_and_cross_challenges(world: World) -> None:
    pairs = [(f"p{2 * i}", f"p{2 * i + 1}") for i in range(50)]
    originals = [await world.service.create(a, b, "tictactoe") for a, b in pairs]

    async def run(op: str, challenge: Challenge) -> tuple[str, str, Challenge | str]:
        await asyncio.sleep(random.random() / 100)
        a, b = challenge.from_user, challenge.to_user
        try:
            if op == "accept":
                return op, challenge.id, await world.service.accept(challenge.id, b)
            if op == "cancel":
                return op, challenge.id, await world.service.cancel(challenge.id, a)
            return op, challenge.id, await world.service.create(b, a, "tictactoe")
        except PlayhouseError as error:
            return op, challenge.id, error.code

    ops = [(op, c) for c in originals for op in ("accept", "accept", "cancel", "cross")]
    random.shuffle(ops)
    assert len(ops) == 200
    results = await asyncio.gather(*(run(op, c) for op, c in ops))

    by_challenge: dict[str, list[tuple[str, Challenge | str]]] = {c.id: [] for c in originals}
    for op, cid, outcome in results:
        by_challenge[cid].append((op, outcome))
    game_ids = []
    for original in originals:
        outcomes = by_challenge[original.id]
        accepts = [o for op, o in outcomes if op == "accept"]
        cancel = next(o for op, o in outcomes if op == "cancel")
        stored = await world.service.get(original.id)
        assert stored is not None
        if stored.status is ChallengeStatus.ACCEPTED:
            assert all(isinstance(a, Challenge) and a.game_id == stored.game_id for a in accepts)
            assert cancel == "not_pending"
            assert stored.game_id == game_id_for(original.id)
            game_ids.append(stored.game_id)
        else:
            assert stored.status is ChallengeStatus.CANCELLED
            assert isinstance(cancel, Challenge) and accepts == ["not_pending", "not_pending"]
        cross = next(o for op, o in outcomes if op == "cross")
        assert isinstance(cross, Challenge) or cross == "challenge_pending"
    assert len(game_ids) == len(set(game_ids))

    docs = await world.docs("challenges")
    accepted_per_pair = Counter(
        pending_key(d["from"], d["to"], d["game"]) for d in docs if d["status"] == "accepted"
    )
    assert max(accepted_per_pair.values(), default=0) <= 1
    pending_per_pair = Counter(
        pending_key(d["from"], d["to"], d["game"]) for d in docs if d["status"] == "pending"
    )
    assert max(pending_per_pair.values(), default=0) <= 1
    await assert_no_orphans(world)


def ids(challenges: list[Challenge]) -> list[str]:
    return [c.id for c in challenges]


async def test_pending_for_lists_open_challenges_both_ways_newest_first(world: World) -> None:
    to_bob = await world.service.create("alice", "bob", "tictactoe")
    world.clock.advance(1)
    from_carol = await world.service.create("carol", "alice", "connect4")
    world.clock.advance(1)
    to_dave = await world.service.create("alice", "dave", "tictactoe")
    world.clock.advance(1)
    await world.service.create("bob", "carol", "tictactoe")  # not alice's

    mine = await world.service.pending_for("alice")
    assert ids(mine.incoming) == [from_carol.id]
    assert ids(mine.outgoing) == [to_dave.id, to_bob.id]
    assert mine.incoming[0] == from_carol
    bobs = await world.service.pending_for("bob")
    assert ids(bobs.incoming) == [to_bob.id] and len(bobs.outgoing) == 1

    await world.service.decline(to_bob.id, "bob")  # settled ones leave the lists
    assert ids((await world.service.pending_for("alice")).outgoing) == [to_dave.id]
    world.clock.advance(58)  # to_bob and from_carol are past their deadline, unswept
    mine = await world.service.pending_for("alice")
    assert (ids(mine.incoming), ids(mine.outgoing)) == ([], [to_dave.id])
    world.clock.advance(2)
    assert await world.service.pending_for("alice") == ([], [])


async def test_pending_for_is_limited_each_way(world: World) -> None:
    sent = []
    for i in range(5):
        sent.append(await world.service.create("alice", f"p{i}", "tictactoe"))
        await world.service.create(f"p{i + 10}", "alice", "tictactoe")
        world.clock.advance(1)
    mine = await world.service.pending_for("alice", limit=3)
    assert ids(mine.outgoing) == [c.id for c in reversed(sent[2:])]
    assert len(mine.incoming) == 3


class Inbox:
    """A local subscriber that keeps every message of its channels, decoded."""

    def __init__(self) -> None:
        self.messages: dict[str, list[Any]] = {}

    def listen(self, registry: Registry, *channels: str) -> None:
        for channel in channels:
            sub = _ChannelInbox(self.messages.setdefault(channel, []))
            registry.attach(sub, [channel])


class _ChannelInbox:
    def __init__(self, into: list[Any]) -> None:
        self.into = into

    def deliver(self, frame: bytes, payload: bytes) -> None:
        self.into.append(orjson.loads(payload))


async def test_lobby_expire_due_tells_both_players_once(world: World) -> None:
    broker = LocalBroker()
    registry = Registry(broker)
    pubsub = PubSub(broker, ChannelNames(), expire=0, registry=registry)
    inbox = Inbox()
    inbox.listen(registry, "user:alice:lobby", "user:bob:lobby")

    async def find_user(name: str) -> str | None:
        return name.casefold() if name.casefold() in USERS else None

    def lobby_on(service: Challenges) -> Lobby:
        play = Play(MongoGames(world.store.database), pubsub)
        return Lobby(service, play, pubsub, find_user=find_user)

    # Two instances over one database, sweeping at the same moment.
    other = Challenges(
        MongoChallenges(world.store.database),
        user_exists=lambda name: asyncio.sleep(0, True),
        is_available=lambda name: asyncio.sleep(0, True),
        now=world.clock.now,
    )
    first, second = lobby_on(world.service), lobby_on(other)
    sent = await first.challenge("alice", "BOB", "tictactoe")
    world.clock.advance(59)
    assert await first.expire_due() == 0 and await second.expire_due() == 0
    world.clock.advance(1)
    assert sorted(await asyncio.gather(first.expire_due(), second.expire_due())) == [0, 1]
    assert await first.expire_due() == 0

    stored = await world.service.get(sent["id"])
    assert stored is not None and stored.status is ChallengeStatus.EXPIRED
    expired = {"type": "challenge_update", **challenge_json(stored)}
    assert expired["status"] == "expired" and expired["to"] == "bob"
    for channel in ("user:alice:lobby", "user:bob:lobby"):
        assert inbox.messages[channel] == [{"type": "challenge", **sent}, expired]
    assert await first.pending("alice") == {"incoming": [], "outgoing": []}
    await assert_no_orphans(world)
