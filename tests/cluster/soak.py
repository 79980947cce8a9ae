"""Soak with faults: K pairs of players play random Tic-tac-toe / Connect Four games through
nginx while instances are SIGKILLed and drained, Redis and MongoDB restarted; afterwards
every game's stored event log is checked against what the clients were acknowledged and saw.

Importable (``await soak(cluster, duration)``) and runnable for a longer run::

    .venv/bin/python -m tests.cluster.soak --seconds 180 --pairs 10

Clients behave as a careful browser: on any drop they reconnect through nginx and resume
from the last ``seq`` they saw; a move whose answer was lost is never re-sent blindly: the
resumed state decides whether it was stored (it shows up as that seq) and whose turn it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from app.services.challenges import game_id_for
from deploy.cluster import Cluster
from tests.cluster.helpers import HEARTBEAT, Player, signup, ws_base
from tests.handlers.test_accounts_api import data

__all__ = ["FaultInjector", "GameObs", "SoakResult", "soak", "verify"]

KINDS = ("tictactoe", "connect4")
STALL_SECONDS = 4.0  # no state for this long while waiting: resync by reconnect + resume
CONNECT_TIMEOUT = 5.0
FINISH_GRACE = 30.0  # after the deadline, games in progress may take this long to end
RETRY_PAUSE = 0.25  # pacing of retries (HTTP 5xx, storage_unavailable): not an event wait
THINK = (0.0, 0.03)  # a player's random think time before a move


@dataclass
class GameObs:
    """What the clients of one game were told."""

    game_id: str
    kind: str
    players: tuple[str, str]
    challenge_id: str
    acks: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # seq → (who, move)
    seen: dict[str, dict[int, Any]] = field(default_factory=dict)  # player → seq → last.move
    duplicates: Counter[str] = field(default_factory=Counter)  # a state seen twice
    gaps: list[str] = field(default_factory=list)  # a live socket skipped a seq
    replay_gaps: list[str] = field(default_factory=list)  # a resume's replay skipped one
    uncertain: int = 0  # moves whose answer was lost with the socket
    final_seq: dict[str, int] = field(default_factory=dict)  # player → seq of the final state
    result: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ChallengeObs:
    challenge_id: str
    kind: str
    challenger: str
    challenged: str
    outcome: str  # "accepted" (with game_id) or what else the API said last
    game_id: str | None


@dataclass
class SoakResult:
    duration: float
    games: list[GameObs]
    challenges: list[ChallengeObs]
    faults: list[tuple[float, str]]
    reconnects: int = 0
    resyncs: int = 0
    storage_refusals: int = 0
    stuck: list[str] = field(default_factory=list)
    # Filled by verify():
    totals: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)  # category → findings

    def problem(self, category: str, text: str) -> None:
        self.problems.setdefault(category, []).append(text)

    def all_problems(self, *categories: str) -> list[str]:
        """Findings of ``categories`` (all when none given), each prefixed by its category."""
        wanted = categories or tuple(self.problems)
        return [f"[{c}] {t}" for c in wanted for t in self.problems.get(c, [])]

    def summary(self) -> str:
        faults = Counter(kind for _, kind in self.faults)
        return (
            f"soak {self.duration:.0f}s: {json.dumps(self.totals, sort_keys=True)}; "
            f"faults {dict(faults)}; reconnects {self.reconnects}, stall resyncs "
            f"{self.resyncs}, storage_unavailable answers {self.storage_refusals}; "
            f"problems { {c: len(t) for c, t in self.problems.items()} }"
        )


class Counters:
    def __init__(self) -> None:
        self.reconnects = 0
        self.resyncs = 0
        self.storage_refusals = 0


# -- the fault injector --------------------------------------------------------------------


class FaultInjector:
    """Runs ``schedule`` round-robin, one fault every ``spacing`` seconds, until stopped."""

    SCHEDULE = ("kill", "redis", "term", "mongo")

    def __init__(self, cluster: Cluster, *, spacing: float = 5.0, down: float = 1.0) -> None:
        self.cluster = cluster
        self.spacing = spacing
        self.down = down
        self.done: list[tuple[float, str]] = []
        self._stop = asyncio.Event()
        self._started = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep per the schedule; True when stopped meanwhile."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        count: Counter[str] = Counter()
        instances = self.cluster.instances
        while not await self._pause(self.spacing):
            kind = self.SCHEDULE[sum(count.values()) % len(self.SCHEDULE)]
            at = time.monotonic() - self._started
            if kind == "kill":
                instance = instances[count[kind] % len(instances)]
                await asyncio.to_thread(instance.kill)
                await asyncio.sleep(self.down)  # the schedule: how long it stays dead
                await asyncio.to_thread(instance.start)
                label = f"kill -9 {instance.name}"
            elif kind == "term":
                instance = instances[(count[kind] + 1) % len(instances)]
                await asyncio.to_thread(instance.terminate)  # drains, then exits
                await asyncio.to_thread(instance.start)
                label = f"SIGTERM {instance.name}"
            elif kind == "redis":
                await asyncio.to_thread(self.cluster.stop_redis)
                await asyncio.sleep(self.down)
                await asyncio.to_thread(self.cluster.start_redis)
                label = "restart redis"
            else:
                await asyncio.to_thread(self.cluster.stop_mongo)  # SIGKILL nx-27017
                await asyncio.sleep(self.down)
                await asyncio.to_thread(self.cluster.start_mongo)  # same data dir
                label = "restart mongodb"
            count[kind] += 1
            self.done.append((at, label))


# -- players -------------------------------------------------------------------------------


async def open_socket(player: Player, path: str, deadline: float) -> WebSocketClientConnection:
    """A socket through nginx, retried (paced) until ``deadline`` while nothing answers."""
    while True:
        try:
            request = HTTPRequest(
                ws_base(player.cluster) + path, headers={"Cookie": player.cookie_header()}
            )
            return await asyncio.wait_for(websocket_connect(request), timeout=CONNECT_TIMEOUT)
        except (OSError, ConnectionError, TimeoutError, Exception) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{player.name}: no socket on {path}: {error!r}") from error
            await asyncio.sleep(RETRY_PAUSE)


async def keep_online(player: Player, stop: asyncio.Event) -> None:
    """A lobby socket, reopened whenever it drops, so ``player`` can be challenged."""
    while not stop.is_set():
        try:
            conn = await open_socket(player, "/ws/lobby?subscribe-user", time.monotonic() + 60)
        except AssertionError:
            continue
        try:
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(conn.read_message(), timeout=1.0)
                except TimeoutError:
                    continue
                if raw is None:
                    break
        finally:
            conn.close()


def contiguous(seen: dict[int, Any], skipped: set[int]) -> int:
    """The highest seq up to which every state was seen (or skipped by the server)."""
    n = 0
    while n + 1 in seen or n + 1 in skipped:
        n += 1
    return n


def legal_moves(kind: str, view: dict[str, Any]) -> list[dict[str, Any]]:
    board = view["board"]
    if kind == "tictactoe":
        return [{"cell": i} for i, cell in enumerate(board) if cell is None]
    return [{"column": c} for c, column in enumerate(board) if column[-1] is None]


async def play(
    player: Player, obs: GameObs, rng: random.Random, counters: Counters, give_up: float
) -> None:
    """Play ``obs``'s game as ``player`` until this client has seen its final state."""
    me = player.name
    seen = obs.seen.setdefault(me, {})
    msg_id = 0
    latest: dict[str, Any] | None = None  # the newest state seen (kept across sockets)
    sockets = 0
    skipped: set[int] = set()  # seqs a resume's replay went past (not in the store)
    while True:
        if time.monotonic() > give_up:
            obs.notes.append(f"{me}: gave up at seq {max(seen, default=0)} (unfinished)")
            return
        since = contiguous(seen, skipped)
        try:
            conn = await open_socket(player, f"/ws/{obs.game_id}?subscribe-user", give_up)
        except AssertionError as error:
            obs.notes.append(str(error))
            return
        counters.reconnects += 1 if sockets else 0
        sockets += 1
        pending: tuple[int, int, dict[str, Any]] | None = None  # (id, base seq, move)
        retry_at = 0.0
        msg_id += 1
        resume_id = msg_id
        resumed = False
        last_state_at = time.monotonic()
        expect_next = since + 1
        this_socket: set[int] = set()
        try:
            await conn.write_message(
                json.dumps({"type": "resume", "since": since, "chat_since": 0, "id": resume_id})
            )
            while True:
                # Our turn, nothing in flight: move (after the think time).
                if (
                    resumed
                    and pending is None
                    and latest is not None
                    and latest["status"] == "active"
                    and me in latest["to_move"]
                    and latest["seq"] == max(seen, default=0) == contiguous(seen, skipped)
                    and time.monotonic() >= retry_at
                ):
                    await asyncio.sleep(rng.uniform(*THINK))
                    move = rng.choice(legal_moves(obs.kind, latest["view"]))
                    msg_id += 1
                    pending = (msg_id, latest["seq"], move)
                    await conn.write_message(
                        json.dumps(
                            {"type": "move", "seq": latest["seq"], "move": move, "id": msg_id}
                        )
                    )
                wait = STALL_SECONDS
                if pending is None and retry_at > time.monotonic():
                    wait = retry_at - time.monotonic()
                try:
                    raw = await asyncio.wait_for(conn.read_message(), timeout=wait)
                except TimeoutError:
                    if retry_at and time.monotonic() >= retry_at and pending is None:
                        continue  # paced retry of a refused move
                    if time.monotonic() - last_state_at >= STALL_SECONDS:
                        counters.resyncs += 1  # nothing for a while: resume afresh
                        raise ConnectionError("stalled") from None
                    continue
                if raw is None:
                    raise ConnectionError(f"closed {conn.close_code}")
                if raw == HEARTBEAT:
                    continue
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "state":
                    seq = int(message["seq"])
                    last_state_at = time.monotonic()
                    if seq in this_socket:
                        obs.duplicates[me] += 1
                    this_socket.add(seq)
                    if seq > 0:
                        seen[seq] = (message.get("last") or {}).get("move")
                    if latest is None or seq >= latest["seq"]:
                        latest = message
                    if message["status"] == "finished":
                        obs.final_seq[me] = seq
                        obs.result = message["result"]
                    if seq > expect_next and not resumed:
                        # The server's own replay skipped it: the store lacks it; go on.
                        obs.replay_gaps.append(f"{me}: replay went {expect_next - 1} → {seq}")
                        skipped.update(range(expect_next, seq))
                    elif seq > expect_next:
                        obs.gaps.append(f"{me}: expected seq {expect_next}, got {seq}")
                        raise ConnectionError("gap")  # resume from what is contiguous
                    if seq < expect_next - 1:
                        obs.gaps.append(f"{me}: seq {seq} after {expect_next - 1}")
                    expect_next = max(expect_next, seq + 1)
                elif kind == "resumed" and message.get("id") == resume_id:
                    resumed = True
                    last_state_at = time.monotonic()
                elif kind == "ack" and pending is not None and message.get("id") == pending[0]:
                    _, base, move = pending
                    pending = None
                    if int(message["seq"]) != base + 1:
                        obs.notes.append(f"{me}: ack seq {message['seq']} for a move on {base}")
                    obs.acks[int(message["seq"])] = (me, move)
                elif kind == "error" and pending is not None and message.get("id") == pending[0]:
                    pending = None
                    code = message.get("code")
                    if code == "storage_unavailable":
                        counters.storage_refusals += 1
                        retry_at = time.monotonic() + RETRY_PAUSE
                    elif code != "stale":
                        # The game is not where this client thinks: resume to find out.
                        raise ConnectionError(f"move refused: {code}")
                if (
                    latest is not None
                    and latest["status"] == "finished"
                    and pending is None
                    and contiguous(seen, skipped) == latest["seq"]
                ):
                    return
        except (
            ConnectionError,
            OSError,
            StreamClosedError,
            WebSocketClosedError,
            json.JSONDecodeError,
        ) as error:
            if pending is not None:
                obs.uncertain += 1  # the resumed state will say whether it was stored
            if isinstance(error, json.JSONDecodeError):
                obs.notes.append(f"{me}: bad frame {error}")
        finally:
            conn.close()


# -- challenges ----------------------------------------------------------------------------


async def start_game(
    challenger: Player, challenged: Player, kind: str, stop_at: float, result: SoakResult
) -> GameObs | None:
    """Challenge and accept through nginx, retrying through faults; None after ``stop_at``."""
    challenge_id: str | None = None
    last = ""
    began = time.monotonic()
    while time.monotonic() < stop_at:
        try:
            if challenge_id is None:
                sent = await challenger.call(
                    "POST", "/api/challenges", {"to": challenged.name, "game": kind}
                )
                if sent.code == 201:
                    challenge_id = str(data(sent)["id"])
                elif sent.code == 409 and data(sent).get("error") == "challenge_pending":
                    challenge_id = await incoming(challenged, challenger.name, kind)
                last = f"create {sent.code} {sent.body[:80]!r}"
                if challenge_id is None:
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
            accepted = await challenged.call("POST", f"/api/challenges/{challenge_id}/accept")
            last = f"accept {accepted.code} {accepted.body[:80]!r}"
            if accepted.code == 200:
                game_id = str(data(accepted)["game_id"])
                result.challenges.append(
                    ChallengeObs(
                        challenge_id, kind, challenger.name, challenged.name, "accepted", game_id
                    )
                )
                players = (challenger.name, challenged.name)
                return GameObs(game_id, kind, players, challenge_id)
            if accepted.code == 409:  # expired or gone: start over
                result.challenges.append(
                    ChallengeObs(challenge_id, kind, challenger.name, challenged.name, last, None)
                )
                challenge_id = None
        except (OSError, ConnectionError, ValueError) as error:
            last = repr(error)
        await asyncio.sleep(RETRY_PAUSE)
    if stop_at - began >= STUCK_AFTER:  # not just a fault in the last seconds of the run
        result.stuck.append(f"{challenger.name} → {challenged.name}: no game started ({last})")
    return None


async def incoming(challenged: Player, sender: str, kind: str) -> str | None:
    reply = await challenged.call("GET", "/api/lobby")
    if reply.code != 200:
        return None
    for challenge in data(reply)["challenges"]["incoming"]:
        if challenge["from"] == sender and challenge["game"] == kind:
            return str(challenge["id"])
    return None


async def run_pair(
    pair: tuple[Player, Player],
    deadline: float,
    rng: random.Random,
    result: SoakResult,
    counters: Counters,
) -> None:
    n = 0
    while time.monotonic() < deadline:
        challenger, challenged = pair if n % 2 == 0 else pair[::-1]
        n += 1
        obs = await start_game(challenger, challenged, rng.choice(KINDS), deadline, result)
        if obs is None:
            return
        result.games.append(obs)
        give_up = deadline + FINISH_GRACE
        await asyncio.gather(
            play(challenger, obs, random.Random(rng.random()), counters, give_up),
            play(challenged, obs, random.Random(rng.random()), counters, give_up),
        )


async def soak(
    cluster: Cluster,
    duration: float,
    *,
    pairs: int = 10,
    spacing: float = 5.0,
    seed: int = 1,
    http: AsyncHTTPClient | None = None,
) -> SoakResult:
    """Play for ``duration`` seconds with faults every ``spacing`` s; then verify."""
    own = http is None
    client = http or AsyncHTTPClient(force_instance=True, max_clients=4 * pairs + 8)
    rng = random.Random(seed)
    result = SoakResult(duration, [], [], [])
    counters = Counters()
    stop = asyncio.Event()
    players = [await signup(client, cluster, f"soak{i:03d}") for i in range(2 * pairs)]
    keepers = [asyncio.ensure_future(keep_online(p, stop)) for p in players]
    injector = FaultInjector(cluster, spacing=spacing)
    faults = asyncio.ensure_future(injector.run())
    started = time.monotonic()
    deadline = started + duration
    try:
        await asyncio.gather(
            *(
                run_pair((players[2 * i], players[2 * i + 1]), deadline, rng, result, counters)
                for i in range(pairs)
            )
        )
    finally:
        injector.stop()
        await faults
        stop.set()
        await asyncio.gather(*keepers, return_exceptions=True)
        if own:
            client.close()
    result.duration = time.monotonic() - started
    result.faults = injector.done
    result.reconnects = counters.reconnects
    result.resyncs = counters.resyncs
    result.storage_refusals = counters.storage_refusals
    await asyncio.to_thread(verify, cluster, result)
    return result


# -- verification --------------------------------------------------------------------------


def verify(cluster: Cluster, result: SoakResult, *, settle: float = 3.0) -> None:
    """Check the database against ``result`` (fills ``totals`` and ``problems``)."""
    database = cluster.instances[0].env["PLAYHOUSE_MONGODB_DATABASE"]
    mongo: MongoClient[dict[str, Any]] = MongoClient(
        cluster.mongo_url, serverSelectionTimeoutMS=20000
    )
    try:
        db = mongo[database]
        ids = [g.game_id for g in result.games]
        # The log copy follows the ack in a batch: let it land (bounded poll).
        deadline = time.monotonic() + settle
        while True:
            games = {d["_id"]: d for d in db.games.find({})}
            logged = Counter(e["game_id"] for e in db.game_events.find({}, {"game_id": 1}))
            if all(logged[i] >= games.get(i, {}).get("seq", 0) for i in ids):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # A rating a fault interrupted is re-run by the next full sweep (bounded poll).
        pending = {"finish_done": False, "status": "finished"}
        deadline = time.monotonic() + 15
        while db.games.count_documents(pending) and time.monotonic() < deadline:
            time.sleep(0.2)
        events: dict[str, list[dict[str, Any]]] = {}
        for event in db.game_events.find({}).sort([("game_id", 1), ("seq", 1)]):
            events.setdefault(event["game_id"], []).append(event)
        acked = stored = delivered = finished = unacked_stored = 0
        rated: Counter[tuple[str, str]] = Counter()
        rated_games: set[str] = set()
        for obs in result.games:
            game = games.get(obs.game_id)
            log = events.get(obs.game_id, [])
            seqs = [e["seq"] for e in log]
            where = f"game {obs.game_id} ({obs.kind} {obs.players[0]}-{obs.players[1]})"
            if game is None:
                result.problem("challenge", f"{where}: accepted but not stored")
                continue
            stored_seq = int(game["seq"])
            if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != stored_seq:
                missing = sorted(set(range(1, stored_seq + 1)) - set(seqs))
                dupes = sorted(s for s, c in Counter(seqs).items() if c > 1)
                result.problem(
                    "log_incomplete",
                    f"{where}: event log {len(seqs)} events for game seq {stored_seq}; "
                    f"missing {missing}, duplicated {dupes}",
                )
            by_seq = {e["seq"]: e for e in log}
            stored += len(by_seq)
            for seq, (who, move) in sorted(obs.acks.items()):
                acked += 1
                event = by_seq.get(seq)
                if event is None:
                    result.problem(
                        "ack_lost", f"{where}: acknowledged seq {seq} ({who} {move}) not in log"
                    )
                elif (event["player"], event["type"], event["move"]) != (who, "move", move):
                    result.problem(
                        "ack_mismatch",
                        f"{where}: acknowledged seq {seq} was {who} {move}, log has "
                        f"{event['player']} {event['type']} {event['move']}",
                    )
            unacked_stored += sum(
                1 for s, e in by_seq.items() if e["type"] == "move" and s not in obs.acks
            )
            for player in obs.players:
                seen = obs.seen.get(player, {})
                for seq, move in sorted(seen.items()):
                    event = by_seq.get(seq)
                    if event is None and seq <= stored_seq:
                        # The game went past it, the log lacks it: counted there.
                        result.problem(
                            "log_incomplete", f"{where}: {player} saw seq {seq}, not in the log"
                        )
                    elif event is None:
                        result.problem(
                            "seen_not_in_log", f"{where}: {player} saw seq {seq}, never stored"
                        )
                    elif event["move"] != move:
                        result.problem(
                            "seen_mismatch",
                            f"{where}: {player} saw seq {seq} as {move}, log {event}",
                        )
                if game["status"] == "finished" and obs.final_seq.get(player) != stored_seq:
                    result.problem(
                        "final_not_seen",
                        f"{where}: {player} saw final seq {obs.final_seq.get(player)}, "
                        f"stored {stored_seq} finished",
                    )
            delivered += sum(
                1 for s in by_seq if all(s in obs.seen.get(p, {}) for p in obs.players)
            )
            if obs.duplicates:
                result.problem(
                    "duplicate_delivery", f"{where}: states delivered twice: {dict(obs.duplicates)}"
                )
            if obs.gaps:
                result.problem("live_gap", f"{where}: seq gaps on a socket: {obs.gaps}")
            if obs.replay_gaps:
                result.problem("replay_gap", f"{where}: resume skipped: {obs.replay_gaps}")
            for note in obs.notes:
                result.problem("client", f"{where}: {note}")
            if game["status"] == "finished":
                finished += 1
                outcome = game.get("result") or {}
                reason = outcome.get("reason")
                if reason in ("abandoned", "timeout"):
                    result.problem(
                        "abandoned", f"{where}: finished by {reason} (clients never left)"
                    )
                if outcome.get("status") == "draw" or (
                    outcome.get("status") == "win" and outcome.get("winner") in game["players"]
                ):
                    rated_games.add(obs.game_id)
                    for player in game["players"]:
                        rated[(player.casefold(), game["kind"])] += 1
        # Challenges: each accepted one has exactly one game, the one the client was given.
        accepted = {c["_id"]: c for c in db.challenges.find({"status": "accepted"}, {"game_id": 1})}
        for seen_challenge in result.challenges:
            if seen_challenge.outcome != "accepted":
                continue
            doc = accepted.get(seen_challenge.challenge_id)
            if doc is None or doc.get("game_id") != seen_challenge.game_id:
                result.problem(
                    "challenge", f"challenge {seen_challenge.challenge_id}: stored as {doc}"
                )
        for challenge_id, doc in accepted.items():
            if doc.get("game_id") != game_id_for(challenge_id) or doc["game_id"] not in games:
                result.problem(
                    "challenge", f"accepted challenge {challenge_id} has no game ({doc})"
                )
        orphans = set(games) - {doc.get("game_id") for doc in accepted.values()}
        if orphans:
            result.problem("challenge", f"games without an accepted challenge: {sorted(orphans)}")
        if len(accepted) != len(games):
            result.problem(
                "challenge", f"{len(accepted)} accepted challenges but {len(games)} games"
            )
        # Ratings: one claim per finished rated game, per-player counts equal.
        claims = Counter(c["_id"] for c in db.rating_updates.find({}, {"_id": 1}))
        for game_id in sorted(rated_games - set(claims)):
            result.problem(
                "rating_lost", f"game {game_id}: finished rated game without a rating claim"
            )
        for game_id in sorted(set(claims) - rated_games):
            result.problem(
                "rating_extra", f"rating claim {game_id} for no finished rated game of the soak"
            )
        ratings = {
            (r["user"], r["kind"]): r for r in db.ratings.find({})
        }  # one document per player and kind
        for key in sorted(set(rated) | set(ratings)):
            doc = ratings.get(key)
            games_counted = int(doc["games"]) if doc else 0
            if games_counted != rated[key]:
                category = "rating_lost" if games_counted < rated[key] else "rating_double"
                result.problem(
                    category,
                    f"ratings {key}: {games_counted} games counted, {rated[key]} rated games",
                )
            if doc and doc["wins"] + doc["draws"] + doc["losses"] != doc["games"]:
                result.problem("rating_count", f"ratings {key}: results do not add up: {doc}")
        for kind in {k for _, k in ratings}:
            total = sum(r["rating"] - 1200 for (_, k), r in ratings.items() if k == kind)
            if total != 0:
                result.problem(
                    "rating_count", f"ratings at {kind} do not sum to zero (off by {total})"
                )
        result.totals = {
            "games": len(result.games),
            "games_finished": finished,
            "rated_games": len(rated_games),
            "rating_claims": len(claims),
            "challenges_accepted": len(accepted),
            "moves_acknowledged": acked,
            "events_stored": stored,
            "moves_stored_unacknowledged": unacked_stored,
            "events_delivered_to_both": delivered,
            "answers_lost_with_socket": sum(g.uncertain for g in result.games),
            "faults": len(result.faults),
        }
    finally:
        mongo.close()


# -- a longer run ----------------------------------------------------------------------------


async def main_async(seconds: float, pairs: int, spacing: float, workdir: str | None) -> int:
    from tests.cluster.conftest import FAST

    with (
        tempfile.TemporaryDirectory(prefix="playhouse-soak-") as tmp,
        Cluster(2, workdir=Path(workdir or tmp), env=FAST | SOAK_ENV) as cluster,
    ):
        result = await soak(cluster, seconds, pairs=pairs, spacing=spacing)
    print(result.summary())
    for at, fault in result.faults:
        print(f"  {at:6.1f}s {fault}")
    for problem in result.all_problems():
        print(f"PROBLEM {problem}")
    return 1 if result.problems else 0


STUCK_AFTER = 15.0
"""Seconds a pair must fail to start a game before that counts as stuck."""

SOAK_ENV = {
    "PLAYHOUSE_GAMES_ABANDON_SECONDS": "60",
    # The full sweep also re-runs finish hooks (ratings) that a fault interrupted.
    "PLAYHOUSE_GAMES_FULL_SWEEP_INTERVAL": "3",
}
"""Abandonment (60 s, the default, stated): a client is back within seconds of any fault,
so no game may end by abandonment; one that does is reported as a problem."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--spacing", type=float, default=5.0)
    parser.add_argument("--workdir", help="keep the cluster's logs here")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.seconds, args.pairs, args.spacing, args.workdir))


if __name__ == "__main__":
    sys.exit(main())
