"""Live games: moves over the game socket, ack to the mover and ``state`` to both players.

``G`` concurrent Connect Four games (two players each) play over
``/ws/<game_id>?subscribe-user`` as docs/protocol.md "The game socket" describes: after
opening, each player sends ``{"type":"resume","since":0,"chat_since":0}`` and waits for
``resumed``; then the player to move sends ``{"type":"move","seq":s,"move":{"column":c},
"id":k}`` and gets ``{"type":"ack","id":k,"seq":s+1}``, and both players get the ``state`` with
``seq`` s+1. Every game plays the same drawn 42-move line (:data:`DRAW`), so no game ends early;
when one ends, the pair starts a new one (a new challenge on our server).

Each player moves at a fixed rate (moves/s per player, so ``2 × G × rate`` moves/s offered);
the rate rises step by step until saturation: fewer moves/s than 85 % of the offer, no growth
over the previous step, or a move round-trip p99 above 1 s (the 15 ms target is judged from
the table, not used to stop). Turn-taking bounds moves in flight to one per game, so past
saturation latency grows to about G ÷ throughput rather than without bound. A step measured
while other processes used more than 0.3 cores is repeated (at most 3 times). The first game of
each pair ends with a resignation after a random number of moves, so that the games do not all
end, and restart, together; a rematch starts its first move at once. Per step we report
offered and achieved moves/s, the move round trip (send → ack) and the relay latency (send →
the opponent's ``state`` with that ``seq``), and the CPU of the server, nx-27017, Redis and this
client, and the server's RSS.

The same client runs against a bare Tornado relay (``python -m bench.relay --baseline-server
--port P``: relays a move to the pair's two sockets and acks it, no storage, no rules), whose
saturation throughput is the ratio's denominator.

Afterwards it checks that no move was lost or duplicated: every seat saw ``state`` seqs 1, 2, …
without gap or repeat and its acks in order, and (our server) ``GET /api/games/<id>`` reports the
``seq`` the clients' acks add up to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import procs
from bench.gameclients import (
    MAX_ATTEMPTS,
    NOISY,
    Account,
    ClientError,
    CpuMeter,
    HttpClient,
    Running,
    WsClient,
    api,
    fmt,
    log,
    noisy,
    percentiles_ms,
    playhouse,
    quiet,
    register_users,
    script_server,
    wait_until,
    write_results,
)

TARGET_RATE = 1000.0  # moves/s at which the p99 target applies
TARGET_P99_MS = 15.0
SATURATED_SHARE = 0.85  # achieved below this share of the offer: saturated
SETUP_PARALLEL = 16  # games being created (challenge + accept) at once
GAME_ENV = {"PLAYHOUSE_GAMES_CLOCK_SECONDS": "86400", "PLAYHOUSE_GAMES_MOVE_SECONDS": "3600"}
"""Clocks out of the way: a player waiting through a saturated step must not lose on time."""
ACK_WAIT = 5.0  # seconds a finished game waits for our last command's answer
GIVE_UP_P99_MS = 1000.0  # past this, further steps only measure queueing
MAX_STORE_CHECKS = 5000  # games whose stored seq is compared with the acks
PLAYHOUSE = "playhouse-redis"
BASELINE = "tornado-relay"


def drawn_game() -> tuple[int, ...]:
    """A full 42-move Connect Four game (columns, first seat first) that nobody wins."""
    board: list[list[int]] = [[] for _ in range(7)]
    moves: list[int] = []

    def four(col: int) -> bool:
        row = len(board[col]) - 1
        seat = board[col][row]
        for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
            run = 1
            for sign in (1, -1):
                c, r = col + sign * dc, row + sign * dr
                while 0 <= c < 7 and 0 <= r < len(board[c]) and board[c][r] == seat:
                    run, c, r = run + 1, c + sign * dc, r + sign * dr
            if run >= 4:
                return True
        return False

    def search() -> bool:
        if len(moves) == 42:
            return True
        for i in range(7):
            col = (len(moves) + i) % 7
            if len(board[col]) < 6:
                board[col].append(len(moves) % 2)
                moves.append(col)
                if not four(col) and search():
                    return True
                board[col].pop()
                moves.pop()
        return False

    if not search():
        raise AssertionError("no drawn Connect Four line found")
    return tuple(moves)


DRAW = drawn_game()


@dataclass
class Settings:
    """Knobs that differ between a full and a ``--quick`` run."""

    games: int
    rates: tuple[float, ...]  # moves/s per player, one step each
    step_seconds: float
    warmup: float  # first seconds of each step not counted
    quiet_wait: float  # longest wait (s) for other processes to calm down before a step
    attempts: int = MAX_ATTEMPTS  # measurements per step: a noisy one is repeated (1: never)


def settings(quick: bool) -> Settings:
    """Full: 500 games, 0.1 to 8 moves/s per player (100 to 8,000 moves/s), 1 s warm-up + 6 s
    steps, a noisy step repeated up to twice; quick: 10 games, one 0.2 s + 1 s step, no repeat.

    The steps stop at saturation: our server's knee (p99 past 15 ms around 100-400 moves/s,
    throughput at about 750 moves/s) falls within the first four steps, the bare relay's at
    the last one (2026-11-28: 4,095 moves/s at 4, 6,505 of 8,000 at 8). The lowest step (a
    move every 5 s per player: human pace) shows where our server stands below its
    saturation, and the 1 move/s step is the target rate (1,000 moves/s).
    """
    if quick:
        return Settings(
            games=10, rates=(1.0,), step_seconds=1.0, warmup=0.2, quiet_wait=0.0, attempts=1
        )
    return Settings(
        games=500,
        rates=(0.1, 0.2, 0.4, 1.0, 2.0, 4.0, 8.0),
        step_seconds=6.0,
        warmup=1.0,
        quiet_wait=10.0,
        attempts=MAX_ATTEMPTS,
    )


@dataclass
class StepStats:
    """What one rate step measured (samples by send time, acks by receive time)."""

    rtt: list[int] = field(default_factory=list)
    relay: list[int] = field(default_factory=list)
    acks: int = 0


@dataclass
class Run:
    """Shared state of a run: pacing, the current step, checks and errors."""

    interval: float = 1.0  # seconds between moves of one game (= 1 / (2 × rate per player))
    step: StepStats | None = None  # None: not counting (warm-up, set-up, drain)
    playing: bool = True
    errors: dict[str, int] = field(default_factory=dict)
    games_started: int = 0
    games_finished: int = 0
    finished: list[Game] = field(default_factory=list)
    in_flight: int = 0
    saturated: bool = False  # the steps ended at saturation, not at the last rate
    games: set[Game] = field(default_factory=set)  # being played
    stopped: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )  # done when playing ends

    def stop(self) -> None:
        """Send no more moves and start no more games."""
        self.playing = False
        if not self.stopped.done():
            self.stopped.set_result(None)

    examples: dict[str, list[str]] = field(default_factory=dict)  # a few details per kind

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        seen = self.examples.setdefault(kind, [])
        if detail and len(seen) < 3:
            seen.append(detail[:300])


class Seat:
    """One player in one game: its socket, and what it saw (for the checks)."""

    def __init__(self, game: Game, index: int, name: str) -> None:
        self.game = game
        self.index = index
        self.name = name
        self.socket: WsClient | None = None
        self.resumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.state_seqs: list[int] = []
        self.ack_seqs: list[int] = []
        self.finished = False
        self.next_id = 0
        self.other_events: list[str] = []  # "seq:type" of events that were no move

    def on_text(self, payload: bytes, now: int) -> None:
        """Dispatch one server message."""
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # a heartbeat or other plain text
        kind = message.get("type") if isinstance(message, dict) else None
        game = self.game
        if kind == "state":
            game.on_state(self, message, now)
        elif kind == "ack":
            game.on_ack(self, message, now)
        elif kind == "resumed":
            if not self.resumed.done():
                self.resumed.set_result(None)
        elif kind == "error":
            game.run.error(f"error {message.get('code')}")
            game.on_error(self, message)


class Game:
    """One game of a pair: whose turn, pacing, send times, and the checks' raw data."""

    def __init__(
        self,
        run: Run,
        game_id: str,
        players: tuple[str, str],
        *,
        limit: int = len(DRAW),
        phase: float = 0.0,
    ) -> None:
        self.run = run
        self.id = game_id
        self.limit = limit  # moves before the player to move resigns (42: play to the draw)
        self.seats = (Seat(self, 0, players[0]), Seat(self, 1, players[1]))
        self.seq = 0  # latest position known to the client
        self.sent: dict[int, tuple[int, StepStats | None]] = {}  # new seq -> (send ns, step)
        # The first games start at random phases; a rematch goes on at once.
        self.due = time.monotonic() + phase * run.interval
        self.timer: asyncio.TimerHandle | None = None
        self.waiting: Seat | None = None  # whose move the timer will send
        self.pending = 0  # commands sent in this game and not answered yet
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def my_turn(self, seat: Seat, message: dict[str, Any]) -> bool:
        to_move = message.get("to_move")
        if isinstance(to_move, list):
            return seat.name in to_move
        return message["seq"] % 2 == seat.index  # first seat moves at even positions

    def start(self) -> None:
        """Both seats resumed on a fresh game: the first seat moves first."""
        self.schedule(self.seats[0])

    def schedule(self, seat: Seat) -> None:
        """Send ``seat``'s move at the game's next due time (at once if behind)."""
        if not self.run.playing or self.seq >= len(DRAW):
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if self.due <= now:
            self.send(seat)
        else:
            self.timer = loop.call_at(loop.time() + (self.due - now), self.send, seat)
            self.waiting = seat

    def repace(self) -> None:
        """The rate changed: move a pending move to a random point of the new interval."""
        if self.timer is None or self.waiting is None:
            return
        self.timer.cancel()
        self.timer = None
        self.due = min(self.due, time.monotonic() + random.random() * self.run.interval)
        self.schedule(self.waiting)

    def send(self, seat: Seat) -> None:
        self.timer = None
        if not self.run.playing or seat.socket is None:
            return
        now = time.monotonic()
        interval = self.run.interval
        self.due = max(self.due + interval, now - interval)  # no catch-up burst when behind
        seq = self.seq
        seat.next_id += 1
        self.run.in_flight += 1
        self.pending += 1
        if seq >= self.limit:  # not timed, not counted as a move
            seat.socket.send_json({"type": "resign", "id": seat.next_id})
            return
        move = {"type": "move", "seq": seq, "move": {"column": DRAW[seq]}, "id": seat.next_id}
        self.sent[seq + 1] = (time.perf_counter_ns(), self.run.step)
        seat.socket.send_json(move)

    def on_ack(self, seat: Seat, message: dict[str, Any], now: int) -> None:
        seq = message.get("seq")
        if not isinstance(seq, int):
            self.run.error("ack without seq")
            return
        seat.ack_seqs.append(seq)
        sent = self.sent.get(seq)
        self.run.in_flight -= 1
        self.pending -= 1
        self.check_done()
        step = self.run.step
        if step is not None and sent is not None:
            step.acks += 1
        if sent is not None and sent[1] is not None:
            sent[1].rtt.append(now - sent[0])

    def on_state(self, seat: Seat, message: dict[str, Any], now: int) -> None:
        seq = message.get("seq")
        if not isinstance(seq, int):
            self.run.error("state without seq")
            return
        if seq > 0:  # a position-0 state (if a server sends one) follows no move
            seat.state_seqs.append(seq)
        last = message.get("last") or {}
        if last.get("type", "move") != "move":
            seat.other_events.append(f"{seq}:{last.get('type')}")
        if message.get("replay"):
            return
        self.seq = max(self.seq, seq)
        sent = self.sent.get(seq)
        if last.get("player") != seat.name and sent is not None and sent[1] is not None:
            sent[1].relay.append(now - sent[0])
        if message.get("status") == "finished" or seq >= len(DRAW):
            seat.finished = True
            if all(s.finished for s in self.seats):
                self.check_done()
                asyncio.get_running_loop().call_later(ACK_WAIT, self.give_up)
            return
        if seq == self.seq and self.my_turn(seat, message):
            self.schedule(seat)

    def check_done(self) -> None:
        """Over once both seats saw the end and every command of ours was answered (the
        pair then closes these sockets, so an answer still on its way would be lost)."""
        if all(s.finished for s in self.seats) and self.pending <= 0 and not self.done.done():
            self.done.set_result(None)

    def give_up(self) -> None:
        """The game ended ACK_WAIT s ago and a command is still unanswered: count it, go on."""
        if not self.done.done():
            self.run.error("no answer within 5 s of the game's end", f"game {self.id}")
            self.done.set_result(None)

    def on_error(self, seat: Seat, message: dict[str, Any]) -> None:
        """A refused move: resynchronise from the ``current`` state when there is one."""
        if isinstance(message.get("id"), int):  # an answer to one of our moves
            self.run.in_flight -= 1
            self.pending -= 1
            self.check_done()
        current = message.get("current")
        if isinstance(current, dict) and isinstance(current.get("seq"), int):
            self.seq = current["seq"]
            if self.my_turn(seat, current):
                self.schedule(seat)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for seat in self.seats:
            if seat.socket is not None:
                seat.socket.close()


NewGame = Callable[[int], Awaitable[tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]]]
"""``await new_game(pair)`` → (game id, player names, socket paths, cookies) of a fresh game."""


async def open_game(run: Run, port: int, pair: int, new_game: NewGame, *, first: bool) -> Game:
    """Start a game for ``pair``: create it, open and resume both seats' sockets."""
    game_id, players, paths, cookies = await new_game(pair)
    # The first game of each pair ends early (a resignation) after a random number of moves,
    # so that the pairs' games do not all end, and restart, at the same moment.
    limit = random.randint(1, len(DRAW)) if first else len(DRAW)
    game = Game(run, game_id, players, limit=limit, phase=random.random() if first else 0.0)
    for seat in game.seats:
        seat.socket = await WsClient.connect(
            port, paths[seat.index], seat.on_text, cookie=cookies[seat.index]
        )
        seat.socket.send_json({"type": "resume", "since": 0, "chat_since": 0})
    async with asyncio.timeout(10):
        await asyncio.gather(*(seat.resumed for seat in game.seats))
    run.games_started += 1
    return game


async def pair_loop(run: Run, port: int, pair: int, new_game: NewGame) -> list[Game]:
    """Play games back to back for one pair while the run is playing; returns its games."""
    games: list[Game] = []
    previous: Game | None = None
    while run.playing:
        try:
            game = await open_game(run, port, pair, new_game, first=previous is None)
        except (ClientError, TimeoutError, OSError) as exc:
            run.error(f"new game: {type(exc).__name__}", repr(exc))
            await asyncio.sleep(0.5)
            continue
        if previous is not None:
            previous.close()  # after the new game started: the pair never looks offline
        games.append(game)
        run.games.add(game)
        game.start()
        await asyncio.wait([game.done, run.stopped], return_when=asyncio.FIRST_COMPLETED)
        run.games.discard(game)
        if game.done.done():
            run.games_finished += 1
        previous = game
    return games


async def play_steps(
    run: Run,
    running: Running,
    cfg: Settings,
    pairs: int,
    new_game: NewGame,
) -> tuple[list[dict[str, Any]], list[Game]]:
    """Start every pair's games, then run the rate steps until saturation; drain; stop."""
    meter = CpuMeter(running)
    run.interval = 1.0 / (2 * cfg.rates[0])
    started = time.monotonic()
    tasks = [
        asyncio.ensure_future(pair_loop(run, running.port, pair, new_game)) for pair in range(pairs)
    ]
    opened = await wait_until(
        lambda: run.games_started >= pairs or any(t.done() for t in tasks), timeout=120
    )
    if not opened or run.games_started < pairs:
        run.stop()
        for task in tasks:
            task.cancel()
        raise ClientError(f"only {run.games_started} of {pairs} games opened: {run.errors}")
    log(f"relay: {pairs} games open in {time.monotonic() - started:.1f}s")
    rows: list[dict[str, Any]] = []
    best = 0.0
    for rate in cfg.rates:
        run.interval = 1.0 / (2 * rate)
        for game in run.games:
            game.repace()
        for attempt in range(1, cfg.attempts + 1):
            run.step = None
            await asyncio.sleep(cfg.warmup)
            await quiet(meter, max_wait=cfg.quiet_wait)
            row = await measure_step(run, meter, cfg, pairs, rate)
            row["attempt"] = attempt
            log(f"relay step: {row}")
            if row["other_cpu"] <= NOISY:
                break
        rows.append(row)
        achieved, p99 = row["achieved_per_s"], row["rtt_p99_ms"] or 0.0
        if (
            achieved < SATURATED_SHARE * row["offered_per_s"]
            or achieved < best * 1.05
            or p99 > GIVE_UP_P99_MS
        ):
            run.saturated = True  # throughput stopped following the offer, or latency is gone
            break
        best = max(best, achieved)
    run.stop()
    if not await wait_until(lambda: run.in_flight <= 0, timeout=10):  # drain: all answered
        run.error(f"{run.in_flight} moves unanswered 10 s after the last step")
    await asyncio.sleep(0.3)  # the last states to the opponents
    games: list[Game] = []
    for task in tasks:
        try:
            games += await asyncio.wait_for(task, 5)
        except (TimeoutError, Exception) as exc:
            run.error(f"pair task: {type(exc).__name__}")
    return rows, games


async def measure_step(
    run: Run, meter: CpuMeter, cfg: Settings, pairs: int, rate: float
) -> dict[str, Any]:
    """One measured window at the current rate."""
    step = StepStats()
    errors_before = sum(run.errors.values())
    games_before = run.games_started
    run.step = step
    meter.start()
    window_start = time.monotonic()
    await asyncio.sleep(cfg.step_seconds)
    run.step = None
    elapsed = time.monotonic() - window_start
    usage = meter.read()
    rtt = percentiles_ms(step.rtt)
    relay = percentiles_ms(step.relay)
    return {
        "games": pairs,
        "rate_per_player": rate,
        "offered_per_s": round(2 * pairs * rate),
        "achieved_per_s": round(step.acks / elapsed),
        **{f"rtt_{k}": v for k, v in rtt.items()},
        **{f"relay_{k}": v for k, v in relay.items()},
        "moves": step.acks,
        "games_started": run.games_started - games_before,
        "errors": sum(run.errors.values()) - errors_before,
        **usage,
    }


def check_seats(games: list[Game]) -> dict[str, Any]:
    """Gaps, duplicates and order of what each seat received; moves sent but never acked."""
    bad_states = bad_acks = unanswered = 0
    examples: list[str] = []
    for game in games:
        acked = {seq for seat in game.seats for seq in seat.ack_seqs}
        missing = sorted(set(game.sent) - acked)
        unanswered += len(missing)
        bad = False
        for seat in game.seats:
            if seat.state_seqs != list(range(1, len(seat.state_seqs) + 1)):
                bad_states, bad = bad_states + 1, True
            mine = seat.ack_seqs
            if mine != sorted(set(mine)) or any(s % 2 != (seat.index + 1) % 2 for s in mine):
                bad_acks, bad = bad_acks + 1, True
        if any(len(s.state_seqs) != len(acked) for s in game.seats):
            bad_states, bad = bad_states + 1, True
        if (bad or missing) and len(examples) < 5:
            examples.append(
                f"game {game.id}: states {[s.state_seqs[-3:] for s in game.seats]} "
                f"acks {[s.ack_seqs[-3:] for s in game.seats]} unanswered {missing} "
                f"close codes {[s.socket.close_code if s.socket else None for s in game.seats]} "
                f"other events {[s.other_events for s in game.seats]}"
            )
    return {
        "seats_with_bad_state_seqs": bad_states,
        "seats_with_bad_acks": bad_acks,
        "moves_never_acked": unanswered,
        "examples": examples,
    }


async def check_stored(
    port: int, games: list[Game], accounts: dict[str, Account]
) -> dict[str, Any]:
    """``GET /api/games/<id>``: the stored ``seq`` equals the acks the clients got."""
    http = HttpClient(port)
    mismatched = checked = 0
    examples: list[str] = []
    try:
        for game in games:
            reply = await api(http, accounts[game.seats[0].name], "GET", f"/api/games/{game.id}")
            acks = len(game.seats[0].ack_seqs) + len(game.seats[1].ack_seqs)
            body = reply.json() or {}
            checked += 1
            if reply.status != 200 or body.get("seq") != acks:
                mismatched += 1
                if len(examples) < 5:
                    examples.append(
                        f"game {game.id}: HTTP {reply.status} seq {body.get('seq')} acks {acks}"
                    )
    finally:
        http.close()
    return {
        "games_checked_in_store": checked,
        "games_store_seq_mismatch": mismatched,
        "store_examples": examples,
    }


def ignore(_payload: bytes, _now: int) -> None:
    """Drop a message (notification sockets only keep their player online)."""


# --- the two servers --------------------------------------------------------------------------


async def playhouse_run(running: Running, cfg: Settings) -> dict[str, Any]:
    """Register the players, then play; games are created by challenge → accept."""
    started = time.monotonic()
    names = [f"r{i:04d}{side}" for i in range(cfg.games) for side in "ab"]
    accounts = {a.username: a for a in await register_users(running.port, names)}
    log(f"relay: {len(accounts)} users registered in {time.monotonic() - started:.1f}s")
    # Every page keeps a notifications socket: it keeps the players online between games.
    gate = asyncio.Semaphore(50)

    async def notifications(account: Account) -> WsClient:
        async with gate:
            path = "/ws/notifications?subscribe-broadcast"
            cookie = account.cookie_header()
            return await WsClient.connect(running.port, path, ignore, cookie=cookie)

    keep = await asyncio.gather(*(notifications(a) for a in accounts.values()))
    https = [HttpClient(running.port) for _ in range(cfg.games)]
    starting = asyncio.Semaphore(SETUP_PARALLEL)

    async def new_game(pair: int) -> tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]:
        a, b = accounts[names[2 * pair]], accounts[names[2 * pair + 1]]
        http = https[pair]
        body = {"to": b.username, "game": "connect4"}
        async with starting:
            for _attempt in range(100):
                reply = await api(http, a, "POST", "/api/challenges", body)
                if reply.status == 201:
                    break
                if reply.status != 409:
                    raise ClientError(f"challenge: {reply.status} {reply.body[:200]!r}")
                await asyncio.sleep(0.02)  # the last game's end is reaching presence
            else:
                raise ClientError(f"challenge: still {reply.status} {reply.body[:200]!r}")
            challenge_id = reply.json()["id"]
            reply = await api(http, b, "POST", f"/api/challenges/{challenge_id}/accept")
        if reply.status != 200:
            raise ClientError(f"accept: {reply.status} {reply.body[:200]!r}")
        game_id = str(reply.json()["game_id"])
        path = f"/ws/{game_id}?subscribe-user"
        return (
            game_id,
            (a.username, b.username),
            (path, path),
            (a.cookie_header(), b.cookie_header()),
        )

    run = Run()
    try:
        rows, games = await play_steps(run, running, cfg, cfg.games, new_game)
        checks = check_seats(games)
        played = [g for g in games if g.seats[0].ack_seqs]
        checks.update(await check_stored(running.port, played[:MAX_STORE_CHECKS], accounts))
    finally:
        for http in https:
            http.close()
        for sock in keep:
            sock.close()
    return summary(run, rows, games, checks)


async def baseline_run(running: Running, cfg: Settings) -> dict[str, Any]:
    """Play against the bare relay; a game is just a fresh id."""
    counter = [0]

    async def new_game(pair: int) -> tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]:
        counter[0] += 1
        game_id = f"g{pair}x{counter[0]}"
        players = ("p-0", "p-1")  # the names the bare relay gives seats 0 and 1
        paths = (f"/ws/{game_id}?subscribe-user&seat=0", f"/ws/{game_id}?subscribe-user&seat=1")
        return game_id, players, paths, ("", "")

    run = Run()
    rows, games = await play_steps(run, running, cfg, cfg.games, new_game)
    return summary(run, rows, games, check_seats(games))


def summary(
    run: Run, rows: list[dict[str, Any]], games: list[Game], checks: dict[str, int]
) -> dict[str, Any]:
    return {
        "rows": rows,
        "max_achieved_per_s": max((r["achieved_per_s"] for r in rows), default=0),
        "saturated": run.saturated,
        "games_started": run.games_started,
        "games_finished": run.games_finished,
        "moves_acked": sum(len(s.ack_seqs) for g in games for s in g.seats),
        "errors": run.errors,
        "error_examples": run.examples,
        "checks": checks,
    }


def measure(name: str, cfg: Settings, logdir: Path) -> dict[str, Any]:
    """One server, fresh, through all steps."""
    procs.wait_quiet(NOISY, max_wait=3 * cfg.quiet_wait)
    if name == BASELINE:
        cmd = [sys.executable, "-m", "bench.relay", "--baseline-server", "--port"]
        with script_server(name, cmd, logdir) as running:
            return asyncio.run(baseline_run(running, cfg))
    with playhouse(logdir, GAME_ENV) as running:
        try:
            return asyncio.run(playhouse_run(running, cfg))
        except (ClientError, TimeoutError, OSError) as exc:
            raise RuntimeError(f"relay failed: {exc!r}\n{procs.tail(running.logfile)}") from exc


def table(results: dict[str, dict[str, Any]]) -> str:
    """The Markdown results table, our server's rows then the baseline's."""
    out = [
        "| server | games | moves/s per player | offered moves/s | achieved "
        "| RTT p50 / p99 / p999 ms | relay p50 / p99 / p999 ms | errors | server CPU "
        "| nx-27017 CPU | redis CPU | client CPU | other CPU | server RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for r in result["rows"]:
            out.append(
                f"| {name} | {r['games']} | {r['rate_per_player']:g} | {r['offered_per_s']:,} "
                f"| {r['achieved_per_s']:,} "
                f"| {fmt(r['rtt_p50_ms'])} / {fmt(r['rtt_p99_ms'])} / {fmt(r['rtt_p999_ms'])} "
                f"| {fmt(r['relay_p50_ms'])} / {fmt(r['relay_p99_ms'])} / "
                f"{fmt(r['relay_p999_ms'])} | {r['errors']} | {r.get('server_cpu', 0):.0%} "
                f"| {r.get('mongo_cpu', 0):.0%} | {r.get('redis_cpu', 0):.0%} "
                f"| {r['client_cpu']:.0%} | {noisy(r)} | {fmt(r.get('server_rss_mb'))} |"
            )
    ours, base = results.get(PLAYHOUSE), results.get(BASELINE)
    if ours and base and base["max_achieved_per_s"]:
        ratio = ours["max_achieved_per_s"] / base["max_achieved_per_s"]
        both = ours["saturated"] and base["saturated"]
        out += [
            "",
            f"Highest achieved moves/s: {ours['max_achieved_per_s']:,} vs "
            f"{base['max_achieved_per_s']:,} for the bare relay: "
            + (f"{ratio:.2f}× at saturation." if both else "not both saturated, no ratio."),
        ]
    for name, result in results.items():
        out.append(
            f"{name}: {result['moves_acked']:,} moves acked in {result['games_started']:,} games "
            f"({result['games_finished']:,} played to the end); checks {result['checks']}; "
            f"errors {result['errors'] or 'none'}."
        )
    if ours:
        at_target = [r for r in ours["rows"] if r["offered_per_s"] >= TARGET_RATE]
        hit = at_target[0] if at_target else None
        target = f"Target p99 ≤ {TARGET_P99_MS:g} ms at {TARGET_RATE:,.0f} moves/s: "
        if hit is not None:
            met = (
                hit["achieved_per_s"] >= SATURATED_SHARE * hit["offered_per_s"]
                and (hit["rtt_p99_ms"] or float("inf")) <= TARGET_P99_MS
            )
            out.append(target + ("met." if met else "missed."))
        elif ours["saturated"]:
            peak = ours["max_achieved_per_s"]
            out.append(target + f"missed (saturated at {peak:,} moves/s, below the target rate).")
        else:
            out.append(target + "not measured (no step that fast).")
    return "\n".join(out)


def relay(quick: bool) -> str:
    """Run both servers; write ``bench/results/relay[-quick].json``; return the table."""
    cfg = settings(quick)
    procs.pin_self(procs.CLIENT_CPU)
    procs.raise_nofile_limit()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        for name in (PLAYHOUSE, BASELINE):
            results[name] = measure(name, cfg, Path(tmp))
    report = {
        "scenario": "relay",
        "quick": quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": cfg.__dict__,
        "results": results,
    }
    write_results("relay", quick, report)
    return table(results)


# --- the bare Tornado relay (baseline) ---------------------------------------------------------


def baseline_server(port: int) -> None:
    """Serve the bare relay on ``port`` until killed (imports Tornado only here)."""
    import tornado.web
    import tornado.websocket

    games: dict[str, dict[str, Any]] = {}

    class RelayHandler(tornado.websocket.WebSocketHandler):
        """``/ws/<game>?subscribe-user&seat=<0|1>``: resume, move → ack + state to both."""

        def check_origin(self, origin: str) -> bool:
            return True

        def open(self, game_id: str) -> None:  # type: ignore[override]
            self.set_nodelay(True)  # as our server does: no Nagle delay on small frames
            self.game_id = game_id
            self.seat = int(self.get_argument("seat"))
            self.game = games.setdefault(game_id, {"seq": 0, "sockets": {}})
            self.game["sockets"][self.seat] = self

        def on_message(self, message: str | bytes) -> None:
            msg = json.loads(message)
            game = self.game
            if msg["type"] == "resume":
                self.write_message(json.dumps({"type": "resumed", "seq": game["seq"], "chat": 0}))
                return
            if msg["type"] == "resign":
                game["seq"] += 1
                self.write_message(json.dumps({"type": "ack", "id": msg["id"], "seq": game["seq"]}))
                text = json.dumps(
                    {
                        "type": "state",
                        "game": self.game_id,
                        "seq": game["seq"],
                        "status": "finished",
                        "last": {"player": f"p-{self.seat}", "type": "resign", "move": None},
                        "to_move": [],
                    }
                )
                for sock in list(game["sockets"].values()):
                    sock.write_message(text)
                return
            if msg["seq"] != game["seq"]:
                error = {"type": "error", "id": msg["id"], "code": "stale"}
                self.write_message(json.dumps(error))
                return
            game["seq"] += 1
            seq = game["seq"]
            me, other = f"p-{self.seat}", f"p-{1 - self.seat}"
            self.write_message(json.dumps({"type": "ack", "id": msg["id"], "seq": seq}))
            state = {
                "type": "state",
                "game": self.game_id,
                "seq": seq,
                "version": seq,
                "status": "active",
                "last": {"player": me, "type": "move", "move": msg["move"]},
                "to_move": [other],
            }
            text = json.dumps(state)
            for sock in list(game["sockets"].values()):
                with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                    sock.write_message(text)

        def on_close(self) -> None:
            sockets = self.game["sockets"]
            if sockets.get(self.seat) is self:
                del sockets[self.seat]
            if not sockets:
                games.pop(self.game_id, None)

    class HealthHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write("ok")

    async def main() -> None:
        app = tornado.web.Application(
            [(r"/ws/([^/]+)", RelayHandler), (r"/healthz", HealthHandler)]
        )
        app.listen(port, address=procs.HOST, backlog=4096)
        await asyncio.Event().wait()

    procs.raise_nofile_limit()
    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-server", action="store_true", help="serve the bare relay")
    parser.add_argument("--port", type=int, default=8899)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(args.port)
    else:
        print(relay(quick=True))
