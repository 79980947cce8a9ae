"""History and leaderboard queries: their results on stored documents, and their plans.

The plans are checked with ``explain`` on a real mongod (``MONGODB_URL``): every query
the history and leaderboard pages run must be an index scan with no in-memory SORT.
nx-27017 (the default) answers ``explain`` with SQLite's query plan, which shows it
scanning the collection whatever the indexes: that check is skipped there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.cursor import AsyncCursor

from app.storage.games import GameStatus, MongoGames, finished_key
from app.storage.mongo import MongoStorage
from app.storage.ratings import MongoRatings
from tests.support import MongoProcess, unique_database

Doc = dict[str, Any]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def storage(mongo_session: MongoProcess) -> AsyncIterator[MongoStorage]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    yield store
    await store.close()


def game_doc(n: int, players: tuple[str, str], *, kind: str = "tictactoe", at: Any = None) -> Doc:
    """A finished game as the app stores it; ``at`` is the finish time (default T0 + n s)."""
    moment = at if at is not None else T0 + timedelta(seconds=n)
    game_id = f"g{n:05d}"
    return {
        "_id": game_id,
        "kind": kind,
        "players": list(players),
        "seed": 1,
        "state": {},
        "version": 3,
        "seq": 3,
        "status": GameStatus.FINISHED.value,
        "result": {"status": "win", "winner": players[n % 2], "reason": "resigned"},
        "created_at": T0,
        "updated_at": moment,
        "last": None,
        "away": {},
        "draw_offer": None,
        "chat": 0,
        "finished_key": finished_key(moment, game_id),
    }


async def test_history_order_pages_and_legacy_games(storage: MongoStorage) -> None:
    db = storage.database
    docs = [game_doc(n, ("alice", "bob" if n % 3 else "carol")) for n in range(30)]
    docs[7]["updated_at"] = docs[8]["updated_at"]  # a tie: ordered by _id, descending
    docs[7]["finished_key"] = finished_key(docs[7]["updated_at"], "g00007")
    legacy = game_doc(30, ("alice", "bob"))  # finished before finished_key existed, and
    del legacy["finished_key"]  # with the naive string time nx-27017 keeps for a $set
    legacy["updated_at"] = (T0 + timedelta(seconds=30)).replace(tzinfo=None).isoformat()
    active = {**game_doc(99, ("alice", "bob")), "status": GameStatus.ACTIVE.value}
    del active["finished_key"]
    await db["games"].insert_many([*docs, legacy, active])
    games = MongoGames(db)
    await games.ensure_indexes()  # gives the legacy game its key
    await games.ensure_indexes()  # idempotent

    newest = [f"g{n:05d}" for n in range(30, -1, -1)]  # g00008 before g00007: same time
    seen: list[str] = []
    before: tuple[datetime, str | None] | None = None
    while True:
        page = await games.finished_for("alice", before=before, limit=4)
        seen += [g.id for g, _ in page]
        if len(page) < 4:
            break
        before = (page[-1][0].updated_at, page[-1][0].id)
    assert seen == newest
    assert [g.id for g, _ in await games.finished_for("carol", limit=100)] == [
        f"g{n:05d}" for n in range(27, -1, -3)
    ]
    # A bare time: strictly older than that instant, even inside a millisecond.
    at = T0 + timedelta(seconds=20, microseconds=500)
    older = await games.finished_for("alice", before=(at, None), limit=100)
    assert [g.id for g, _ in older] == newest[newest.index("g00020") :]
    wins = await games.finished_for("alice", outcome="win", limit=100)
    assert [g.id for g, _ in wins] == [g for g in newest if int(g[1:]) % 2 == 0]


def stages(plan: Any) -> list[str]:
    """Every ``stage`` name in a mongod plan tree (classic or slot-based explain)."""
    found: list[str] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append(str(plan["stage"]))
        for value in plan.values():
            found += stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found += stages(value)
    return found


async def explain(cursor: AsyncCursor[Doc]) -> Any:
    answer = await cursor.explain()
    plan = answer.get("queryPlanner", {}).get("winningPlan")
    if isinstance(plan, list):  # nx-27017: SQLite's EXPLAIN QUERY PLAN rows
        details = "; ".join(str(row.get("detail")) for row in plan)
        pytest.skip(
            "nx-27017 explains with SQLite's query plan and scans whatever the indexes "
            f"({details}); set MONGODB_URL to a real mongod to check the index plans"
        )
    return plan


async def test_history_and_leaderboards_use_indexes(storage: MongoStorage) -> None:
    db = storage.database
    games, ratings = MongoGames(db), MongoRatings(db)
    await db["games"].insert_many(
        [game_doc(n, ("alice", f"p{n % 7}"), kind=("connect4", "rps")[n % 2]) for n in range(60)]
    )
    await db["ratings"].insert_many(
        [
            {
                "_id": f"p{n}|{kind}",
                "user": f"p{n}",
                "username": f"p{n}",
                "kind": kind,
                "rating": 1200 + n,
                "games": n % 5,
                "wins": 0,
                "draws": 0,
                "losses": n % 5,
            }
            for n in range(40)
            for kind in ("connect4", "rps")
        ]
    )
    await games.ensure_indexes()
    await ratings.ensure_indexes()  # builds the overall rows too
    assert len(await ratings.top_overall(100)) == 32  # players with games (n % 5 != 0)
    cursors = {
        "history": games.finished_cursor("alice", limit=21),
        "history, deep page": games.finished_cursor(
            "alice", before=(T0 + timedelta(seconds=30), "g00030"), limit=21
        ),
        "history by kind": games.finished_cursor("alice", kind="rps", limit=21),
        "history by outcome": games.finished_cursor("alice", outcome="loss", limit=21),
        "leaderboard": ratings.board_cursor("connect4", 50),
        "overall leaderboard": ratings.board_cursor(None, 50),
    }
    for name, cursor in cursors.items():
        found = stages(await explain(cursor))
        assert "IXSCAN" in found, (name, found)
        assert "COLLSCAN" not in found and "SORT" not in found, (name, found)
