"""Ratings on real nx-27017: Elo math, and each finished game rated exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.services.ratings import START, Board, K, Ratings, elo_delta
from app.services.records import Records
from app.storage.games import GameRecord, GameStatus, MongoGames
from app.storage.mongo import MongoStorage
from app.storage.ratings import MongoRatings
from tests.support import MongoProcess, unique_database

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def finished(
    game_id: str,
    result: dict[str, Any] | None,
    *,
    players: tuple[str, ...] = ("alice", "bob"),
    kind: str = "tictactoe",
) -> GameRecord:
    return GameRecord(
        id=game_id,
        kind=kind,
        players=players,
        seed=1,
        state={},
        version=5,
        seq=5,
        status=GameStatus.FINISHED,
        result=result,
        created_at=NOW,
        updated_at=NOW,
    )


def win(winner: str) -> dict[str, Any]:
    return {"status": "win", "winner": winner, "reason": "resigned"}


DRAW = {"status": "draw", "winner": None, "reason": "agreed"}


def test_elo_math() -> None:
    assert (START, K) == (1200, 32)
    assert elo_delta(1200, 1200, 1.0) == 16
    assert elo_delta(1200, 1200, 0.0) == -16
    assert elo_delta(1200, 1200, 0.5) == 0
    # The favourite gains little for a win and loses much for a loss.
    assert elo_delta(1600, 1200, 1.0) == 3 and elo_delta(1600, 1200, 0.0) == -29
    assert elo_delta(1200, 1600, 0.5) == -elo_delta(1600, 1200, 0.5) == 13


@pytest.fixture
async def storage(mongo_session: MongoProcess) -> AsyncIterator[MongoStorage]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    yield store
    await store.close()


def service(storage: MongoStorage) -> Ratings:
    """A service as one instance builds it (its own repository objects)."""
    records = Records(games=MongoGames(storage.database), users=storage.users)
    return Ratings(MongoRatings(storage.database), records=records)


async def standings(storage: MongoStorage, kind: str = "tictactoe") -> dict[str, tuple[int, ...]]:
    repo = MongoRatings(storage.database)
    return {
        r.username: (r.rating, r.games, r.wins, r.draws, r.losses) for r in await repo.of_kind(kind)
    }


async def test_concurrent_finish_on_two_instances_rates_once(storage: MongoStorage) -> None:
    await MongoRatings(storage.database).ensure_indexes()
    one, two = service(storage), service(storage)
    game = finished("g1", win("alice"))
    await asyncio.gather(one.on_finished(game), two.on_finished(game), one.on_finished(game))
    assert await standings(storage) == {"alice": (1216, 1, 1, 0, 0), "bob": (1184, 1, 0, 0, 1)}
    await two.on_finished(game)  # run again later (after a crash): still once
    assert await standings(storage) == {"alice": (1216, 1, 1, 0, 0), "bob": (1184, 1, 0, 0, 1)}


async def test_games_of_one_player_finishing_together_all_count(storage: MongoStorage) -> None:
    one, two = service(storage), service(storage)
    await asyncio.gather(
        one.on_finished(finished("g1", win("alice"))),
        two.on_finished(finished("g2", win("alice"), players=("alice", "carol"))),
    )
    got = await standings(storage)
    assert got["alice"][1:] == (2, 2, 0, 0)
    assert got["alice"][0] + got["bob"][0] + got["carol"][0] == 3 * START  # zero-sum


async def test_draws_and_unrated_games(storage: MongoStorage) -> None:
    ratings = service(storage)
    await ratings.on_finished(finished("d1", DRAW, players=("Alice", "bob")))
    await ratings.on_finished(finished("solo", win("alice"), players=("alice",)))
    await ratings.on_finished(finished("three", DRAW, players=("alice", "bob", "carol")))
    await ratings.on_finished(finished("none", None))
    await ratings.on_finished(finished("odd", {"status": "win", "winner": None}))
    assert await standings(storage) == {"Alice": (1200, 1, 0, 1, 0), "bob": (1200, 1, 0, 1, 0)}


async def overall(storage: MongoStorage) -> dict[str, tuple[int, ...]]:
    rows = await MongoRatings(storage.database).top_overall(100)
    return {r.username: (r.rating, r.games, r.wins, r.draws, r.losses) for r in rows}


async def test_overall_rows_follow_concurrent_games_exactly(storage: MongoStorage) -> None:
    """Games of one player finishing together on two instances, in several kinds: the
    overall row is the mean of the kind ratings with the counts summed, nothing twice."""
    one, two = service(storage), service(storage)
    games = [
        finished(f"g{n}", win("alice") if n % 3 else DRAW, players=("alice", f"p{n % 4}"), kind=k)
        for n, k in enumerate(["tictactoe", "connect4", "rps"] * 4)
    ]
    await asyncio.gather(*(s.on_finished(g) for g in games for s in (one, two)))
    repo = MongoRatings(storage.database)
    alices = [r for r in await repo.of_user("alice") if r.games]
    assert len(alices) == 3 and sum(r.games for r in alices) == 12
    got = await overall(storage)
    assert got["alice"] == (
        round(sum(r.rating for r in alices) / 3),
        12,
        sum(r.wins for r in alices),
        sum(r.draws for r in alices),
        sum(r.losses for r in alices),
    )
    for name in ("p0", "p1", "p2", "p3"):
        theirs = [r for r in await repo.of_user(name) if r.games]
        assert got[name][0] == round(sum(r.rating for r in theirs) / len(theirs))
        assert got[name][1] == sum(r.games for r in theirs) == 3


async def test_leaderboard_order_limit_and_backfill(storage: MongoStorage) -> None:
    """The database sorts (rating, games desc, then name without case) and cuts; overall
    rows missing from an older database are built at start-up."""
    db = storage.database
    rows = [
        ("Zed", 1250, 3),
        ("amy", 1250, 3),
        ("Bob", 1250, 5),
        ("cat", 1300, 1),
        ("dan", 1200, 0),
    ]
    await db["ratings"].insert_many(
        [
            {
                "_id": f"{name.casefold()}|connect4",
                "user": name.casefold(),
                "username": name,
                "kind": "connect4",
                "rating": rating,
                "games": games,
                "wins": games,
                "draws": 0,
                "losses": 0,
            }
            for name, rating, games in rows
        ]
    )
    ratings = service(storage)
    await MongoRatings(db).ensure_indexes()
    board = await ratings.leaderboard(Board("connect4", 50))
    names = ["cat", "Bob", "amy", "Zed"]  # dan has no games
    assert [p["username"] for p in board["players"]] == names
    assert [p["rank"] for p in board["players"]] == [1, 2, 3, 4]
    top = await ratings.leaderboard(Board(None, 3))
    assert top["kind"] == "" and [p["username"] for p in top["players"]] == names[:3]
    assert top["players"][1] == {
        "rank": 2, "username": "Bob", "rating": 1250, "games": 5, "wins": 5, "draws": 0, "losses": 0
    }  # fmt: skip


class CrashAfterFirstPlayer(MongoRatings):
    """An instance that dies after counting the game for the first player only."""

    async def add_result(self, user_key: str, kind: str, **counts: Any) -> bool:
        done = await super().add_result(user_key, kind, **counts)
        if user_key == "alice":
            raise asyncio.CancelledError  # the process is gone here
        return done


async def test_a_rating_interrupted_half_way_is_completed_once_by_a_retry(
    storage: MongoStorage,
) -> None:
    """Claimed, alice counted, then the instance dies: a later retry (the sweeper) counts
    bob with the recorded plan and does not count alice again."""
    await MongoRatings(storage.database).ensure_indexes()
    records = Records(games=MongoGames(storage.database), users=storage.users)
    dying = Ratings(CrashAfterFirstPlayer(storage.database), records=records)
    game = finished("g1", win("alice"))
    with pytest.raises(asyncio.CancelledError):
        await dying.on_finished(game)
    assert await standings(storage) == {"alice": (1216, 1, 1, 0, 0), "bob": (1200, 0, 0, 0, 0)}
    await service(storage).on_finished(game)
    assert await standings(storage) == {"alice": (1216, 1, 1, 0, 0), "bob": (1184, 1, 0, 0, 1)}
    await service(storage).on_finished(game)
    assert await standings(storage) == {"alice": (1216, 1, 1, 0, 0), "bob": (1184, 1, 0, 0, 1)}
