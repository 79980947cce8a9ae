"""Records and leaderboards at 100k finished games, through the HTTP API.

Seeds a database directly (bulk ``insert_many`` in batches, not through the API): users,
finished games spread over them and the six game kinds, in the documents the app writes
(``finished_key`` included), and the per-kind rating documents that Elo over those games
gives. The overall rows (``ratings_overall``) are left to the server, which builds them at
start-up as it would for a database from before they existed. Then it starts ``server.py``
on that database and times, one request at a time on a keep-alive connection:

* ``GET /api/leaderboard?kind=connect4`` and ``GET /api/leaderboard`` (overall, 50 rows);
* ``GET /api/users/<name>/games`` (first page of 20) and the page :data:`DEEP_PAGE` pages
  further, reached through the ``next`` cursors before timing;
* ``GET /api/users/<name>/profile`` (ratings, totals, 10 recent games);

cycling over different players. The same queries are also timed against the database
alone (``database p50``), and their ``explain`` plans are reported: stage names on a real
mongod, SQLite's plan rows on nx-27017.

Database: a fresh in-memory ``nx-27017`` on the server CPU (the default), or the MongoDB
at ``MONGODB_URL`` (a database of its own, dropped afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pymongo import AsyncMongoClient
from pymongo.asynchronous.cursor import AsyncCursor

from app.games import registry
from app.services.ratings import START, elo_delta
from app.storage.games import MongoGames, finished_key
from app.storage.ratings import MongoRatings, rating_id
from bench import procs
from bench.gameclients import (
    LOBBY_ENV,
    Account,
    HttpClient,
    api,
    fmt,
    log,
    percentiles_ms,
    register_users,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
KINDS = tuple(registry.GAMES)
BOARD_KIND = "connect4"
BATCH = 5_000
DEEP_PAGE = 5  # the page timed as "deep": games 81-100 of a player at 20 a page
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Doc = dict[str, Any]


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    games: int
    users: int
    repeats: int  # timed requests per endpoint


def settings(quick: bool) -> Settings:
    """Full: 100,000 games over 2,000 players, 30 requests each; quick: 2,000 over 50, 5.

    At 100,000 games the seeding (about 20 s) does not dominate: the timed requests do (the
    history and profile pages take about 0.25 s each), hence 30 requests per endpoint (p99 is
    then the slowest but one) rather than more."""
    if quick:
        return Settings(games=2_000, users=50, repeats=5)
    return Settings(games=100_000, users=2_000, repeats=30)


# --- seeding --------------------------------------------------------------------------------


def seed_documents(cfg: Settings) -> tuple[list[Doc], list[Doc], list[Doc]]:
    """(users, games, per-kind ratings), deterministic; ratings by Elo over the games in
    finish order, as the server would have rated them."""
    rnd = random.Random(27017)
    names = [f"player{i:05d}" for i in range(cfg.users)]
    users = [
        {
            "_id": name,
            "username": name,
            "password_hash": b"$2b$04$" + b"x" * 53,  # nobody signs in as a seeded player
            "role": "user",
            "groups": [],
            "created_at": T0,
        }
        for name in names
    ]
    games: list[Doc] = []
    ratings: dict[str, Doc] = {}
    moves = [{"type": "move", "player": "", "move": {"cell": c}} for c in range(7)]
    for n in range(cfg.games):
        first, second = rnd.sample(names, 2)
        kind = rnd.choice(KINDS)
        roll = rnd.random()
        winner = None if roll < 0.1 else (first if roll < 0.55 else second)
        result = {
            "status": "draw" if winner is None else "win",
            "winner": winner,
            "reason": "agreed" if winner is None else "resigned",
        }
        created = T0 + timedelta(seconds=30 * n)
        finished = created + timedelta(seconds=rnd.randint(20, 600), milliseconds=n % 1000)
        game_id = f"bench{n:07d}"
        games.append(
            {
                "_id": game_id,
                "kind": kind,
                "players": [first, second],
                "seed": n,
                "state": {"result": result},
                "version": 8,
                "seq": 8,
                "status": "finished",
                "result": result,
                "created_at": created,
                "updated_at": finished,
                "last": None,
                "away": {},
                "draw_offer": None,
                "chat": 0,
                "clock": None,
                "expires_at": None,
                "moves": moves,
                "finished_key": finished_key(finished, game_id),
            }
        )
        docs = []
        for name in (first, second):
            doc = ratings.setdefault(
                rating_id(name, kind),
                {
                    "_id": rating_id(name, kind),
                    "user": name,
                    "username": name,
                    "kind": kind,
                    "rating": START,
                    "games": 0,
                    "wins": 0,
                    "draws": 0,
                    "losses": 0,
                },
            )
            docs.append(doc)
        score = 0.5 if winner is None else (1.0 if winner == first else 0.0)
        delta = elo_delta(docs[0]["rating"], docs[1]["rating"], score)
        for doc, change, mine in ((docs[0], delta, score), (docs[1], -delta, 1.0 - score)):
            doc["rating"] += change
            doc["games"] += 1
            doc["wins" if mine == 1.0 else "losses" if mine == 0.0 else "draws"] += 1
    return users, games, list(ratings.values())


async def seed(url: str, database: str, cfg: Settings) -> dict[str, Any]:
    """Insert the seeded documents in batches; returns counts and seconds."""
    started = time.perf_counter()
    users, games, ratings = seed_documents(cfg)
    built = time.perf_counter() - started
    client: AsyncMongoClient[Doc] = AsyncMongoClient(url)
    try:
        db = client[database]
        started = time.perf_counter()
        for name, docs in (("users", users), ("games", games), ("ratings", ratings)):
            for i in range(0, len(docs), BATCH):
                await db[name].insert_many(docs[i : i + BATCH], ordered=False)
        inserted = time.perf_counter() - started
    finally:
        await client.close()
    return {
        "users": len(users),
        "games": len(games),
        "rating_docs": len(ratings),
        "build_s": round(built, 1),
        "insert_s": round(inserted, 1),
    }


# --- database side: direct timings and plans --------------------------------------------------


def plan_summary(answer: Doc) -> list[str]:
    """Stage names of a mongod winning plan (outermost first), or nx-27017's SQLite rows."""
    plan = answer.get("queryPlanner", {}).get("winningPlan")
    if isinstance(plan, list):
        return [str(row.get("detail", row)) for row in plan]
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "stage" in node:
                name = str(node["stage"])
                if node.get("indexName"):
                    name += f" {node['indexName']}"
                found.append(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return found


async def database_side(
    url: str, database: str, players: list[str], repeats: int
) -> dict[str, dict[str, Any]]:
    """Each API's main query run directly (p50/p99 ms), with its explain plan."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(url)
    try:
        games, ratings = MongoGames(client[database]), MongoRatings(client[database])
        deep_before = None
        deep = await games.finished_for(players[0], limit=20 * (DEEP_PAGE - 1))
        if deep:
            last = deep[-1][0]
            deep_before = (last.updated_at, last.id)
        queries: dict[str, Callable[[int], AsyncCursor[Doc]]] = {
            "leaderboard kind": lambda i: ratings.board_cursor(BOARD_KIND, 50),
            "leaderboard overall": lambda i: ratings.board_cursor(None, 50),
            "history page 1": lambda i: games.finished_cursor(players[i % len(players)], limit=21),
            f"history page {DEEP_PAGE}": lambda i: games.finished_cursor(
                players[0], before=deep_before, limit=21
            ),
        }
        out: dict[str, dict[str, Any]] = {}
        for name, make in queries.items():
            samples = []
            for i in range(repeats):
                started = time.perf_counter_ns()
                await make(i).to_list()
                samples.append(time.perf_counter_ns() - started)
            plan = plan_summary(await make(0).explain())
            out[name] = {**percentiles_ms(samples), "plan": plan}
        return out
    finally:
        await client.close()


# --- HTTP side --------------------------------------------------------------------------------


async def timed(repeats: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, float | None]:
    samples = []
    for i in range(repeats):
        started = time.perf_counter_ns()
        await call(i)
        samples.append(time.perf_counter_ns() - started)
    return percentiles_ms(samples)


async def http_side(port: int, players: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Time each endpoint ``repeats`` times as one signed-in viewer."""
    (viewer,) = await register_users(port, ["benchviewer"], parallel=1)
    http = HttpClient(port, timeout=120)

    async def get(path: str, account: Account = viewer) -> Any:
        reply = await api(http, account, "GET", path)
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: {reply.status} {reply.body[:300]!r}")
        return reply.json()

    def games_path(name: str, before: str | None = None) -> str:
        tail = f"?before={quote(before)}" if before else ""
        return f"/api/users/{name}/games{tail}"

    try:
        # The deep page's cursor per player, found by following ``next`` (not timed).
        deep: list[tuple[str, str]] = []
        for name in players[: min(len(players), repeats)]:
            cursor = None
            for _ in range(DEEP_PAGE - 1):
                cursor = (await get(games_path(name, cursor)))["next"]
                if cursor is None:
                    break
            if cursor is not None:
                deep.append((name, cursor))
        if not deep:
            raise RuntimeError("no player has enough games for the deep page")
        sizes = {
            "leaderboard kind": len((await get(f"/api/leaderboard?kind={BOARD_KIND}"))["players"]),
            "history page 1": len((await get(games_path(players[0])))["games"]),
        }  # fmt: skip
        log(f"records: warmed up ({sizes})")
        out = {
            "leaderboard kind": await timed(
                repeats, lambda i: get(f"/api/leaderboard?kind={BOARD_KIND}")
            ),
            "leaderboard overall": await timed(repeats, lambda i: get("/api/leaderboard")),
            "history page 1": await timed(
                repeats, lambda i: get(games_path(players[i % len(players)]))
            ),
            f"history page {DEEP_PAGE}": await timed(
                repeats, lambda i: get(games_path(*deep[i % len(deep)]))
            ),
            "profile": await timed(
                repeats, lambda i: get(f"/api/users/{players[i % len(players)]}/profile")
            ),
        }
        return out
    finally:
        http.close()


# --- orchestration ----------------------------------------------------------------------------


@contextmanager
def mongo(logdir: Path) -> Iterator[tuple[str, str]]:
    """(URL, engine): ``MONGODB_URL`` when set, else a fresh in-memory nx-27017."""
    external = os.environ.get("MONGODB_URL", "")
    if external:
        yield external, "mongod (MONGODB_URL)"
        return
    port = procs.free_port()
    binary = str(Path(sys.executable).with_name("nx-27017"))
    cmd = [binary, "--host", procs.HOST, "-p", str(port), "--db", "memory"]
    proc = procs.start(cmd, logdir / "nx-27017.log", procs.SERVER_CPU)
    url = f"mongodb://{procs.HOST}:{port}/"
    try:
        deadline = time.monotonic() + 20
        while not _pings(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nx-27017 did not start\n{procs.tail(logdir / 'nx-27017.log')}")
            time.sleep(0.1)
        yield url, "nx-27017 (in memory)"
    finally:
        procs.stop(proc)


def _pings(url: str) -> bool:
    import pymongo

    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(url, serverSelectionTimeoutMS=300)
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


async def _drop(url: str, database: str) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(url)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def records(quick: bool) -> str:
    """Seed, start the server, time the APIs and the queries; returns a Markdown table."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    database = f"bench_records_{uuid.uuid4().hex[:8]}"
    players = [f"player{i:05d}" for i in range(0, cfg.users, max(1, cfg.users // 50))]
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp, mongo(Path(tmp)) as found:
        url, engine = found
        try:
            log(f"records: seeding {cfg.games:,} games over {cfg.users:,} players ({engine})")
            seeded = asyncio.run(seed(url, database, cfg))
            log(f"records: seeded {seeded}")
            env = {
                **LOBBY_ENV,
                "PLAYHOUSE_MONGODB_URL": url,
                "PLAYHOUSE_MONGODB_DATABASE": database,
                "PLAYHOUSE_MONGODB_TIMEOUT": "30",
                "PLAYHOUSE_REDIS_URL": "",
            }
            port = procs.free_port()
            logfile = Path(tmp) / "server.log"
            cmd = [sys.executable, "server.py", "--port", str(port)]
            started = time.perf_counter()
            server = procs.start(cmd, logfile, procs.SERVER_CPU, env, ROOT)
            try:
                procs.wait_http_ok(server, port, "/healthz", timeout=300)
                startup_s = round(time.perf_counter() - started, 1)
                log(f"records: server up in {startup_s}s (indexes, overall rows built)")
                busy = round(procs.machine_busy(2.0), 2)  # ours idle: other processes' load
                api_times = asyncio.run(http_side(port, players, cfg.repeats))
            except Exception as exc:
                detail = procs.tail(logfile)
                raise RuntimeError(f"records scenario failed: {exc}\n{detail}") from exc
            finally:
                procs.stop(server)
            db_times = asyncio.run(database_side(url, database, players, cfg.repeats))
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(_drop(url, database))
    report = {
        "scenario": "records",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "engine": engine,
        "settings": cfg.__dict__,
        "seeded": seeded,
        "server_startup_s": startup_s,
        "machine_busy_before": busy,
        "api": api_times,
        "database": db_times,
    }
    write_results("records", quick, report)
    return table(report)


def table(report: dict[str, Any]) -> str:
    """The Markdown results table and the plans."""
    seeded, cfg = report["seeded"], report["settings"]
    out = [
        f"{seeded['games']:,} finished games, {seeded['users']:,} players, "
        f"{seeded['rating_docs']:,} rating documents on {report['engine']}; "
        f"seeded in {seeded['insert_s']} s, server start-up {report['server_startup_s']} s; "
        f"{cfg['repeats']} sequential requests per row; other processes used "
        f"{report['machine_busy_before']} cores just before timing.",
        "",
        "| request | API p50 ms | API p99 ms | database p50 ms | database p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    paths = {
        "leaderboard kind": f"GET /api/leaderboard?kind={BOARD_KIND}",
        "leaderboard overall": "GET /api/leaderboard",
        "history page 1": "GET /api/users/<name>/games",
        f"history page {DEEP_PAGE}": f"GET /api/users/<name>/games?before=… (page {DEEP_PAGE})",
        "profile": "GET /api/users/<name>/profile",
    }
    for key, label in paths.items():
        http = report["api"].get(key, {})
        db = report["database"].get(key, {})
        out.append(
            f"| `{label}` | {fmt(http.get('p50_ms'), '.1f')} | {fmt(http.get('p99_ms'), '.1f')} "
            f"| {fmt(db.get('p50_ms'), '.1f')} | {fmt(db.get('p99_ms'), '.1f')} |"
        )
    out += ["", "Plans (`explain`, winning plan):", ""]
    for key, db in report["database"].items():
        out.append(f"- {key}: {' → '.join(db['plan']) or '—'}")
    return "\n".join(out)
