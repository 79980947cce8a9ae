"""The Play service on real nx-27017 (PyMongo) and a real PubSub over LocalBroker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from app.errors import (
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    NotFound,
    PlayhouseError,
    StorageUnavailable,
)
from app.pubsub import ChannelNames, LocalBroker, PubSub, Registry
from app.services.play import Ack, GameLimits, Play, Stale
from app.storage.games import GameEvent, GameStatus, MongoGames
from app.storage.mongo import MongoStorage
from tests.support import MongoProcess, unique_database, wait_until

PLAYERS = ("alice", "bob")


@dataclass(eq=False)
class Recorder:
    """A subscriber that keeps every payload it is handed, decoded."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def deliver(self, frame: bytes, payload: bytes) -> None:
        self.raw.append(payload)
        self.messages.append(orjson.loads(payload))


class FailingBroker(LocalBroker):
    async def publish(self, channel: str, message: bytes, *, expire: int = 0) -> None:
        raise BrokerUnavailable("broker down")


class FlakyEvents(MongoGames):
    """An event log whose first ``failures`` batch writes fail."""

    def __init__(self, *args: Any, failures: int) -> None:
        super().__init__(*args)
        self.failures = failures
        self.batches: list[list[int]] = []

    async def append_events(self, events: Sequence[GameEvent]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable("lost on the way")
        self.batches.append([e.seq for e in events])
        await super().append_events(events)


@dataclass
class World:
    play: Play
    games: MongoGames
    pubsub: PubSub

    async def listen(self, player: str, game_id: str) -> Recorder:
        recorder = Recorder()
        channel = self.pubsub.names.user(player, game_id)
        for ready in self.pubsub.registry.attach(recorder, [channel]):
            await ready
        return recorder


def make_pubsub(broker: LocalBroker) -> PubSub:
    registry = Registry(broker, ignored=frozenset((b"",)))
    return PubSub(broker, ChannelNames(""), expire=0, registry=registry)


@pytest.fixture
async def storage(mongo_session: MongoProcess) -> AsyncIterator[MongoStorage]:
    store = MongoStorage(mongo_session.url, database=unique_database(), timeout=5.0)
    yield store
    await store.close()


@pytest.fixture
async def world(storage: MongoStorage) -> World:
    games = MongoGames(storage.database)
    await games.ensure_indexes()
    pubsub = make_pubsub(LocalBroker())
    return World(Play(games, pubsub), games, pubsub)


async def c4_move(world: World, player: str, column: int) -> Ack:
    game = await world.games.get("g1")
    assert game is not None
    return await world.play.move("g1", player, {"column": column}, expected_seq=game.seq)


async def test_connect_four_to_a_win(world: World) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 7)
    heard = {p: await world.listen(p, "g1") for p in PLAYERS}
    for column in (0, 1, 0, 1, 0, 1):
        await c4_move(world, PLAYERS[column], column)
    ack = await c4_move(world, "alice", 0)
    assert (ack.seq, ack.version) == (7, 7)
    assert ack.result == {"status": "win", "winner": "alice", "reason": "four in a row"}
    game = await world.games.get("g1")
    assert game is not None and game.status is GameStatus.FINISHED and game.result == ack.result
    for recorder in heard.values():
        assert [m["seq"] for m in recorder.messages] == [1, 2, 3, 4, 5, 6, 7]
        final = recorder.messages[-1]
        assert final["type"] == "state" and final["game"] == "g1" and final["version"] == 7
        last = {k: final["last"][k] for k in ("seq", "player", "type", "move")}
        assert last == {"seq": 7, "player": "alice", "type": "move", "move": {"column": 0}}
        assert final["result"] == ack.result and final["view"]["result"]["line"]
    with pytest.raises(BadRequest) as refused:
        await c4_move(world, "bob", 2)
    assert refused.value.code == "game_over"


async def test_each_player_sees_only_their_own_board(world: World) -> None:
    game = await world.play.create("b1", "bingo", PLAYERS, 42)
    boards = game.state["boards"]
    heard = {p: await world.listen(p, "b1") for p in PLAYERS}
    for version, number in enumerate((5, 17, 3, 22)):
        player = PLAYERS[version % 2]
        await world.play.move("b1", player, {"number": number}, expected_seq=version)
    for seat, player in enumerate(PLAYERS):
        recorder = heard[player]
        assert len(recorder.messages) == 4
        other = orjson.dumps(boards[1 - seat])
        for message, raw in zip(recorder.messages, recorder.raw, strict=True):
            assert message["view"]["board"] == boards[seat] and message["view"]["you"] == seat
            assert "boards" not in message["view"] and "seed" not in message["view"]
            assert other not in raw
    mine = await world.play.view("b1", "alice")
    assert mine["view"]["board"] == boards[0] and mine["seq"] == 4
    spectator = await world.play.view("b1", "mallory")
    assert "board" not in spectator["view"]


async def test_resignation_ends_the_rules_state_too(world: World) -> None:
    """After a resignation the finished game reveals what finished games reveal."""
    game = await world.play.create("b2", "bingo", PLAYERS, 7)
    await world.play.move("b2", "alice", {"number": 9}, expected_seq=0)
    await world.play.resign("b2", "bob")
    seen = await world.play.view("b2", "alice")
    assert seen["view"]["boards"] == game.state["boards"]  # both boards, as at any end
    assert seen["result"] == {"status": "win", "winner": "alice", "reason": "resigned"}
    assert seen["view"]["result"] == seen["result"]


async def test_concurrent_moves_on_one_version_accept_exactly_one(world: World) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 1)

    async def attempt(i: int) -> Ack | Stale:
        try:
            return await world.play.move("g1", "alice", {"column": i % 7}, expected_seq=0)
        except Stale as stale:
            return stale

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    acks = [r for r in results if isinstance(r, Ack)]
    stale = [r for r in results if isinstance(r, Stale)]
    assert len(acks) == 1 and len(stale) == 19
    assert all(s.code == "stale" and s.current["version"] == 1 for s in stale)
    assert len(await world.play.events_since("g1", 0)) == 1
    game = await world.games.get("g1")
    assert game is not None and (game.version, game.seq) == (1, 1)


async def test_stale_version_carries_the_current_view(world: World) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 1)
    await c4_move(world, "alice", 3)
    with pytest.raises(Stale) as stale:
        await world.play.move("g1", "bob", {"column": 3}, expected_seq=0)
    assert stale.value.current["version"] == 1
    assert stale.value.current["view"]["board"][3][0] == 0


@pytest.mark.parametrize(
    ("player", "move", "error", "code"),
    [
        ("bob", {"column": 0}, BadRequest, "not_your_turn"),
        ("carol", {"column": 0}, Forbidden, "not_a_player"),
        ("alice", {"column": "x"}, BadRequest, "bad_move"),
        ("alice", {"column": 9}, BadRequest, "bad_move"),
        ("alice", [0], BadRequest, "bad_move"),
        ("alice", {"column": 0, "pad": "x" * 1100}, BadRequest, "bad_move"),
        ("alice", {"column": 0, "$set": 1}, BadRequest, "bad_move"),
        ("alice", {"column": 0, "x": {1, 2}}, BadRequest, "bad_move"),
        ("alice", {"column": 6}, BadRequest, "illegal_move"),  # column 6 is full
    ],
)
async def test_refused_moves_store_nothing(
    world: World, player: str, move: object, error: type[PlayhouseError], code: str
) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 1)
    for turn in range(6):
        await c4_move(world, PLAYERS[turn % 2], 6)
    heard = await world.listen("alice", "g1")
    with pytest.raises(error) as refused:
        await world.play.move("g1", player, move, expected_seq=6)
    assert refused.value.code == code
    game = await world.games.get("g1")
    assert game is not None and (game.version, game.seq) == (6, 6)
    assert len(await world.play.events_since("g1", 0)) == 6
    assert heard.messages == []


async def test_finished_game_refuses_moves(world: World) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 1)
    ack = await world.play.resign("g1", "bob")
    assert ack.result == {"status": "win", "winner": "alice", "reason": "resigned"}
    with pytest.raises(BadRequest) as refused:
        await world.play.move("g1", "alice", {"column": 0}, expected_seq=1)
    assert refused.value.code == "game_over"
    with pytest.raises(BadRequest):
        await world.play.resign("g1", "alice")
    events = await world.play.events_since("g1", 0)
    assert [(e.seq, e.type, e.player, e.move) for e in events] == [(1, "resign", "bob", None)]


async def test_events_since_replays_in_order(world: World) -> None:
    await world.play.create("g1", "connect4", PLAYERS, 1)
    columns = [3, 4, 3, 4, 2]
    for turn, column in enumerate(columns):
        await c4_move(world, PLAYERS[turn % 2], column)
    events = await world.play.events_since("g1", 0)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.version for e in events] == [1, 2, 3, 4, 5]
    assert [e.move for e in events] == [{"column": c} for c in columns]
    assert [e.player for e in events] == ["alice", "bob", "alice", "bob", "alice"]
    assert [e.seq for e in await world.play.events_since("g1", 3)] == [4, 5]
    assert await world.play.events_since("g1", 5) == []


async def test_create_is_idempotent(world: World) -> None:
    first, second = await asyncio.gather(
        world.play.create("c1", "connect4", PLAYERS, 1),
        world.play.create("c1", "connect4", PLAYERS, 2),
    )
    assert first.id == second.id == "c1" and first.seed == second.seed
    again = await world.play.create("c1", "connect4", PLAYERS, 3)
    assert (again.seed, again.version, again.seq) == (first.seed, 0, 0)
    with pytest.raises(BadRequest) as unknown:
        await world.play.create("c2", "chess", PLAYERS, 1)
    assert unknown.value.code == "unknown_game"
    with pytest.raises(BadRequest):
        await world.play.create("c3", "connect4", ("alice", "alice"), 1)
    with pytest.raises(BadRequest):
        await world.play.create("bad:id", "connect4", PLAYERS, 1)


async def test_unknown_game_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.play.move("nope", "alice", {"column": 0}, expected_seq=0)
    with pytest.raises(NotFound):
        await world.play.view("nope", "alice")
    with pytest.raises(NotFound):
        await world.play.events_since("nope", 0)


async def test_broker_failure_does_not_fail_an_acknowledged_move(storage: MongoStorage) -> None:
    games = MongoGames(storage.database)
    play = Play(games, make_pubsub(FailingBroker()))
    await play.create("g1", "connect4", PLAYERS, 1)
    ack = await play.move("g1", "alice", {"column": 0}, expected_seq=0)
    assert (ack.seq, ack.version) == (1, 1)
    assert [e.seq for e in await play.events_since("g1", 0)] == [1]


async def test_latest_event_survives_while_the_log_write_fails(storage: MongoStorage) -> None:
    games = FlakyEvents(storage.database, failures=1_000)
    play = Play(games, make_pubsub(LocalBroker()))
    await play.create("g1", "connect4", PLAYERS, 1)
    await play.move("g1", "alice", {"column": 0}, expected_seq=0)
    events = await play.events_since("g1", 0)  # the log is still failing
    assert [(e.seq, e.move) for e in events] == [(1, {"column": 0})]
    games.failures = 0
    assert await play._log.flush(within=5.0)
    assert [e.seq for e in await games.events_since("g1", 0, limit=10)] == [1]


async def test_failed_log_batches_are_retried_in_order_and_batched(
    storage: MongoStorage,
) -> None:
    games = FlakyEvents(storage.database, failures=2)
    play = Play(games, make_pubsub(LocalBroker()))
    await play.create("g1", "connect4", PLAYERS, 1)
    seq = 0
    for column in (0, 1, 0, 1):
        seq = (await play.move("g1", PLAYERS[column], {"column": column}, expected_seq=seq)).seq
    assert [e.seq for e in await play.events_since("g1", 0)] == [1, 2, 3, 4]
    logged = await games.events_since("g1", 0, limit=10)
    assert [e.seq for e in logged] == [1, 2, 3, 4]
    assert sum(len(b) for b in games.batches) == 4 and len(games.batches) < 4


async def test_an_expired_clock_is_ended_by_exactly_one_of_many_instances(
    storage: MongoStorage,
) -> None:
    games = MongoGames(storage.database)
    await games.ensure_indexes()
    clock = {"now": datetime(2026, 1, 1, tzinfo=UTC)}
    limits = GameLimits(clock_ms=10_000, move_ms=1_000)
    fleet = [
        Play(games, make_pubsub(LocalBroker()), limits=limits, now=lambda: clock["now"])
        for _ in range(8)
    ]
    await fleet[0].create("g1", "connect4", PLAYERS, 3)
    assert sum([await p.expire_due() for p in fleet]) == 0  # nothing due yet
    clock["now"] += timedelta(seconds=1)
    ended = await asyncio.gather(*(p.expire_due() for p in fleet))
    assert sum(ended) == 1
    game = await games.get("g1")
    assert game is not None and game.status is GameStatus.FINISHED
    assert game.result == {"status": "win", "winner": "bob", "reason": "timeout"}
    events = await fleet[0].events_since("g1", 0)
    assert [(e.type, e.player) for e in events] == [("timeout", "alice")]


async def test_an_rps_choice_never_reaches_the_other_player(world: World) -> None:
    await world.play.create("r1", "rps", PLAYERS, 1)
    heard = await world.listen("bob", "r1")
    await world.play.move("r1", "alice", {"choice": "rock"}, expected_seq=0)
    await wait_until(lambda: len(heard.messages) == 1, what="bob's state")
    assert b"rock" not in heard.raw[0]
    assert heard.messages[0]["last"]["move"] is None
    mine = await world.play.view("r1", "alice")
    assert mine["last"]["move"] == {"choice": "rock"}


async def test_replay_rebuilds_each_past_view_from_the_seed(world: World) -> None:
    await world.play.create("b9", "bingo", PLAYERS, 5)
    seq = 0
    for number, player in ((5, "alice"), (17, "bob"), (3, "alice")):
        seq = (await world.play.move("b9", player, {"number": number}, expected_seq=seq)).seq
    await world.play.offer_draw("b9", "bob")
    resumed = await world.play.replay("b9", "alice", since=1, chat_since=0)
    states = [orjson.loads(m) for m in resumed.messages]
    assert [s["seq"] for s in states] == [2, 3, 4] and resumed.seq == 4
    assert [s["view"]["called"] for s in states] == [[5, 17], [5, 17, 3], [5, 17, 3]]
    assert [s["draw_offer"] for s in states] == [None, None, "bob"]
    assert all("boards" not in s["view"] and s["view"]["you"] == 0 for s in states)
    assert states[-1]["clock"] is not None and states[0]["clock"] is None


async def test_a_copy_cached_by_one_instance_never_hides_another_instances_move(
    storage: MongoStorage,
) -> None:
    games = MongoGames(storage.database)
    await games.ensure_indexes()
    here, there = (Play(games, make_pubsub(LocalBroker())) for _ in range(2))
    await here.create("g1", "connect4", PLAYERS, 3)  # cached here at seq 0
    await there.move("g1", "alice", {"column": 0}, expected_seq=0)
    # Here still holds seq 0: a move on it is refused with the fresh state, not written.
    with pytest.raises(Stale) as stale:
        await here.move("g1", "bob", {"column": 1}, expected_seq=0)
    assert stale.value.current["seq"] == 1
    # A refusal decided on the stale copy is confirmed on a fresh load: bob may move now.
    ack = await here.move("g1", "bob", {"column": 1}, expected_seq=1)
    assert ack.seq == 2
    await there.move("g1", "alice", {"column": 0}, expected_seq=2)  # there: stale, reloads
    game = await games.get("g1")
    assert game is not None and game.seq == 3
    assert [e.player for e in await here.events_since("g1", 0)] == ["alice", "bob", "alice"]


async def test_the_everyday_sweep_sees_its_own_games_and_the_full_one_all(
    storage: MongoStorage,
) -> None:
    games = MongoGames(storage.database)
    await games.ensure_indexes()
    clock = {"now": datetime(2026, 1, 1, tzinfo=UTC)}
    limits = GameLimits(clock_ms=10_000, move_ms=1_000)
    mine, dead = (
        Play(games, make_pubsub(LocalBroker()), limits=limits, now=lambda: clock["now"])
        for _ in range(2)
    )
    await mine.create("here", "connect4", PLAYERS, 3)
    await dead.create("there", "connect4", PLAYERS, 4)  # its instance then dies
    clock["now"] += timedelta(seconds=2)
    assert await mine.expire_due(everywhere=False) == 1
    assert (await games.get("there")).status is GameStatus.ACTIVE  # type: ignore[union-attr]
    assert await mine.expire_due(everywhere=True) == 1
    assert (await games.get("there")).status is GameStatus.FINISHED  # type: ignore[union-attr]


async def test_an_event_whose_instance_died_before_logging_it_is_logged_by_the_next_writer(
    storage: MongoStorage,
) -> None:
    """Instance A writes move 1 and dies before its log batch lands (its log never
    writes); instance B writes move 2 and logs move 1 too, so the log has no hole."""
    dead = FlakyEvents(storage.database, failures=1_000_000)  # A's log writes never land
    survivor = MongoGames(storage.database)
    await survivor.ensure_indexes()
    a = Play(dead, make_pubsub(LocalBroker()))
    b = Play(survivor, make_pubsub(LocalBroker()))
    await a.create("g1", "connect4", PLAYERS, 1)
    await a.move("g1", "alice", {"column": 0}, expected_seq=0)
    await b.move("g1", "bob", {"column": 1}, expected_seq=1)
    assert await b._log.flush(within=5.0)
    logged = await survivor.events_since("g1", 0, limit=10)
    assert [(e.seq, e.player, e.move) for e in logged] == [
        (1, "alice", {"column": 0}),
        (2, "bob", {"column": 1}),
    ]
    # B's own next move does not log move 2 again (it knows it queued it).
    await b.move("g1", "alice", {"column": 0}, expected_seq=2)
    assert b._log.pending() <= 1
    assert await b._log.flush(within=5.0)
    assert [e.seq for e in await survivor.events_since("g1", 0, limit=10)] == [1, 2, 3]
    a._log._queue.clear()  # A is "dead": nothing of it may linger


async def test_a_finish_hook_that_failed_is_run_again_by_the_sweeper(world: World) -> None:
    """The ratings hook fails (MongoDB went away, or the instance died) as a game ends:
    the game is kept as not yet hooked and the sweeper's retry runs it once more."""
    runs: list[str] = []

    async def flaky_hook(game: Any) -> None:
        runs.append(game.id)
        if len(runs) == 1:
            raise StorageUnavailable("database went away")

    world.play.on_finished = flaky_hook
    await world.play.create("g1", "tictactoe", PLAYERS, 1)
    await world.play.resign("g1", "bob")
    assert runs == ["g1"]
    assert [g.id for g in await world.games.finish_pending(limit=10)] == ["g1"]
    assert await world.play.retry_finish_hooks() == 1
    assert runs == ["g1", "g1"]
    assert await world.games.finish_pending(limit=10) == []
    assert await world.play.retry_finish_hooks() == 0 and runs == ["g1", "g1"]


async def test_a_game_finished_by_an_instance_that_died_is_completed_by_the_sweeper(
    storage: MongoStorage,
) -> None:
    """A's final move is stored, then A dies: its log batch and its ratings hook never
    happen. B's sweeper logs the final event, keeps the move list and runs the hook."""
    dead = FlakyEvents(storage.database, failures=1_000_000)  # A's log writes never land
    survivor = MongoGames(storage.database)
    await survivor.ensure_indexes()
    a = Play(dead, make_pubsub(LocalBroker()))
    b = Play(survivor, make_pubsub(LocalBroker()))
    hooked: list[str] = []

    async def dies(game: Any) -> None:
        raise asyncio.CancelledError  # the process is gone before the hook ran

    async def rates(game: Any) -> None:
        hooked.append(game.id)

    a.on_finished, b.on_finished = dies, rates
    await a.create("g1", "tictactoe", PLAYERS, 1)
    with pytest.raises(asyncio.CancelledError):
        await a.resign("g1", "bob")
    assert await survivor.events_since("g1", 0, limit=10) == []
    assert await b.retry_finish_hooks() == 1
    assert await b._log.flush(within=5.0)
    logged = await survivor.events_since("g1", 0, limit=10)
    assert [(e.seq, e.type, e.player) for e in logged] == [(1, "resign", "bob")]
    assert hooked == ["g1"] and await survivor.finish_pending(limit=10) == []
    a._log._queue.clear()  # A is "dead": nothing of it may linger
