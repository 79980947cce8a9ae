"""The game socket: ``/ws/<game_id>?subscribe-user`` with the game protocol on top.

The ws4redis endpoint (:mod:`app.handlers.ws`) does subscriptions and delivery;
for a game facility it hands every client frame here. Live frames are held
from the moment the socket opens until the client's ``resume`` has been
answered from the event log, so a client sees every event after its ``seq``
exactly once and in order, whichever instance it reconnects to.

A signed-in user who does not play the game gets a read-only *spectator*
socket: subscribed to the game's public channel ``broadcast:<game_id>`` only
(whatever its flags), ``resume`` answered with the public state, every other
command refused with the code ``spectator``. Each instance counts its
spectators per game as distinct usernames and reports changes to a
:class:`~app.services.watchers.Watchers`; the total goes to players and
spectators as a ``watchers`` message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson

from app.channel_policy import ChannelPlan
from app.connections import Connection
from app.errors import Forbidden, PlayhouseError
from app.metrics import Metrics
from app.protocol import (
    AnswerDraw,
    ChatCommand,
    Command,
    MessageError,
    MoveCommand,
    OfferDraw,
    Resign,
    Resume,
    parse_game_message,
)
from app.pubsub import ChannelNames
from app.services.play import Ack, Play, Stale
from app.services.watchers import LocalWatchers, Watchers
from app.storage.games import GameRepo
from app.types import Identity

__all__ = ["GAME_FACILITY", "NOT_SIGNED_IN", "SPECTATOR", "GameSocket", "GameSockets"]

log = logging.getLogger("playhouse.game")

GAME_FACILITY = re.compile(r"[0-9a-f]{16}")
"""Game ids as challenges derive them (``app.services.challenges.game_id_for``)."""

RESUME_WAIT = 2.0
"""Seconds live frames wait for a ``resume`` before flowing anyway (plain ws4redis clients)."""

SPECTATOR = "spectator"
"""Error code for any command but ``resume`` on a spectator socket."""

NOT_SIGNED_IN = "not_signed_in"
"""Refusal code (403) for an anonymous socket on a game."""


class GameSockets:
    """Recognises game facilities; counts this instance's sockets per player and game and
    its spectators per game (distinct usernames)."""

    def __init__(
        self,
        play: Play,
        games: GameRepo,
        background: set[asyncio.Task[None]],
        metrics: Metrics | None = None,
        watchers: Watchers | None = None,
    ) -> None:
        self.play = play
        self.watchers: Watchers = watchers or LocalWatchers()
        self.metrics = metrics
        self._games = games
        self._background = background
        self._open: dict[tuple[str, str], int] = {}  # (game, player) -> sockets here
        self._away_syncing: set[tuple[str, str]] = set()  # absences being written
        self._away_dirty: set[tuple[str, str]] = set()  # changed while being written
        # Called after a player's last socket here closed and they were marked away, so
        # other instances holding a socket of theirs can say they are still there.
        self.on_away: Callable[[str, str], Awaitable[None]] | None = None
        self._watching: dict[str, dict[str, int]] = {}  # game -> spectator -> sockets here
        self._syncing: set[str] = set()  # games whose count is being reported
        self._dirty: set[str] = set()  # games whose count changed while being reported

    async def resolve(self, identity: Identity, facility: str) -> GameSocket | None:
        """The game protocol for this socket (a spectator's for a signed-in non-player),
        or None for a facility that is no game.

        Raises:
            Forbidden: the game exists and ``identity`` is anonymous (``not_signed_in``).
            StorageUnavailable: MongoDB is down.
        """
        if not GAME_FACILITY.fullmatch(facility):
            return None
        game = await self._games.get(facility)
        if game is None:
            return None
        if identity.username is None:
            raise Forbidden("sign in to watch this game", code=NOT_SIGNED_IN)
        spectator = identity.username not in game.players
        return GameSocket(self, facility, identity.username, spectator=spectator)

    def watchers_here(self, game_id: str) -> int:
        """Distinct spectators of ``game_id`` with a socket on this instance."""
        return len(self._watching.get(game_id, ()))

    def watch(self, game_id: str, user: str) -> None:
        watching = self._watching.setdefault(game_id, {})
        watching[user] = watching.get(user, 0) + 1
        if watching[user] == 1:
            self._count_changed(game_id)

    def unwatch(self, game_id: str, user: str) -> None:
        watching = self._watching.get(game_id, {})
        left = watching.get(user, 0) - 1
        if left > 0:
            watching[user] = left
            return
        watching.pop(user, None)
        if not watching:
            self._watching.pop(game_id, None)
        self._count_changed(game_id)

    def _count_changed(self, game_id: str) -> None:
        """Report the new count; one report per game at a time, so totals go out in order."""
        self._dirty.add(game_id)
        if game_id not in self._syncing:
            self._syncing.add(game_id)
            self.spawn(self._report(game_id))

    async def _report(self, game_id: str) -> None:
        play = self.play
        try:
            while game_id in self._dirty:
                self._dirty.discard(game_id)
                total = await self.watchers.update(game_id, self.watchers_here(game_id))
                await play.announce_watchers(game_id, total)
        finally:
            self._syncing.discard(game_id)

    def opened(self, game_id: str, player: str) -> None:
        key = (game_id, player)
        self._open[key] = self._open.get(key, 0) + 1
        if self._open[key] == 1:
            self._presence_changed(key)

    def closed(self, game_id: str, player: str) -> None:
        key = (game_id, player)
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
            return
        self._open.pop(key, None)
        self._presence_changed(key)

    def recheck(self, game_id: str, player: str) -> None:
        """Another instance marked ``player`` away: if they still have a socket here,
        write them back (their socket on this instance is open, so they are not away)."""
        key = (game_id, player)
        if key in self._open:
            self._presence_changed(key)

    def _presence_changed(self, key: tuple[str, str]) -> None:
        """Write the player's absence as this instance sees it; one writer per key at a
        time, always ending on the latest local state (an open and a close in quick
        succession cannot be stored in the wrong order)."""
        self._away_dirty.add(key)
        if key not in self._away_syncing:
            self._away_syncing.add(key)
            self.spawn(self._sync_away(key))

    async def _sync_away(self, key: tuple[str, str]) -> None:
        game_id, player = key
        try:
            while key in self._away_dirty:
                self._away_dirty.discard(key)
                away = key not in self._open
                await self.play.set_away(game_id, player, away=away)
                if away and self.on_away is not None:
                    await self.on_away(game_id, player)
        finally:
            self._away_syncing.discard(key)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(_logged(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _logged(coro: Coroutine[Any, Any, None]) -> None:
    try:
        await coro
    except PlayhouseError as error:
        log.warning("game presence not recorded: %s", error)
    except Exception:
        log.exception("game presence not recorded")


class GameSocket:
    """One player's (or, with ``spectator``, one watcher's) socket on one game."""

    def __init__(
        self, hub: GameSockets, game_id: str, player: str, *, spectator: bool = False
    ) -> None:
        self._hub = hub
        self.game_id = game_id
        self.player = player  # the user; not playing when ``spectator``
        self.spectator = spectator
        self._conn: Connection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._gate = EventGate()

    def plan(self, names: ChannelNames, requested: ChannelPlan) -> ChannelPlan:
        """The channels of this socket: a spectator gets the game's public channel only
        (never a user channel), a player what the flags asked for."""
        if not self.spectator:
            return requested
        return ChannelPlan(subscribe=(names.broadcast(self.game_id),), publish=(), echo=False)

    def opened(self, conn: Connection) -> None:
        """Start holding live frames until the client resumes (or RESUME_WAIT passes)."""
        self._conn = conn
        conn.gate = self._gate
        if conn.held is None:
            conn.held = []
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(RESUME_WAIT, self._stop_holding)
        if self.spectator:
            self._hub.watch(self.game_id, self.player)
        else:
            self._hub.opened(self.game_id, self.player)

    def closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._conn is not None:
            self._conn = None
            if self.spectator:
                self._hub.unwatch(self.game_id, self.player)
            else:
                self._hub.closed(self.game_id, self.player)

    def _stop_holding(self) -> None:
        conn = self._conn
        if conn is not None and conn.held is not None:
            conn.release([])

    async def on_message(self, conn: Connection, text: str) -> None:
        """Answer one client frame with ``ack``/``resumed`` or ``error``; never raises."""
        started = time.perf_counter()
        msg_id = None
        kind = "invalid"
        try:
            command = parse_game_message(text, self.game_id)
            msg_id = command.id
            kind = type(command).__name__
            answer = await self._run(conn, command)
        except MessageError as error:
            answer = _error(error.msg_id, error.code, str(error))
        except Stale as stale:
            answer = {**_error(msg_id, stale.code, str(stale)), "current": stale.current}
        except PlayhouseError as error:
            answer = _error(msg_id, error.code, str(error))
        except Exception:
            log.exception("game %s: message from %s failed", self.game_id, self.player)
            answer = _error(msg_id, "internal", "something went wrong; try again")
        conn.send_text(orjson.dumps(answer).decode())
        metrics = self._hub.metrics
        if metrics is not None:
            outcome = answer.get("code") or answer["type"]
            metrics.game_commands.labels(kind, outcome).inc()
            metrics.game_command_seconds.observe(time.perf_counter() - started)

    async def _run(self, conn: Connection, command: Command) -> dict[str, Any]:
        play, game, me = self._hub.play, self.game_id, self.player
        if self.spectator:
            if isinstance(command, Resume):
                return await self._resume_watching(conn, command)
            return _error(command.id, SPECTATOR, "spectators watch; they cannot play or chat")
        match command:
            case Resume():
                return await self._resume(conn, command)
            case MoveCommand():
                return _ack(
                    command.id, await play.move(game, me, command.move, expected_seq=command.seq)
                )
            case Resign():
                return _ack(command.id, await play.resign(game, me))
            case OfferDraw():
                return _ack(command.id, await play.offer_draw(game, me))
            case AnswerDraw():
                return _ack(command.id, await play.answer_draw(game, me, accept=command.accept))
            case ChatCommand():
                line = await play.chat(game, me, command.text)
                return {"type": "ack", "id": command.id, "chat": line.n}

    async def _resume(self, conn: Connection, command: Resume) -> dict[str, Any]:
        """Replay what the client missed, then let the held live frames through, minus
        those the replay already covered (the socket's :class:`EventGate`)."""
        if self._timer is not None:
            self._timer.cancel()
        if conn.held is None:
            conn.held = []
        try:
            resumed = await self._hub.play.replay(
                self.game_id, self.player, since=command.since, chat_since=command.chat_since
            )
            watchers = await self._watchers()
        except BaseException:
            conn.release([])
            raise
        self._gate.rewind(command.since, command.chat_since)
        conn.release([*resumed.messages, watchers])
        return {"type": "resumed", "id": command.id, "seq": resumed.seq, "chat": resumed.chat}

    async def _resume_watching(self, conn: Connection, command: Resume) -> dict[str, Any]:
        """A spectator's resume: the current public state (when past ``since``) and the
        watcher count, then the held live frames newer than that state."""
        if self._timer is not None:
            self._timer.cancel()
        if conn.held is None:
            conn.held = []
        try:
            state = await self._hub.play.view(self.game_id, None)  # nobody's private view
            watchers = await self._watchers()
        except BaseException:
            conn.release([])
            raise
        seq = int(state["seq"])
        fresh_start = command.since < seq or command.since == 0
        replay = [orjson.dumps({**state, "replay": True})] if fresh_start else []
        self._gate.rewind(command.since, command.chat_since)
        conn.release([*replay, watchers])
        return {"type": "resumed", "id": command.id, "seq": seq, "chat": command.chat_since}

    async def _watchers(self) -> bytes:
        count = await self._hub.watchers.total(self.game_id)
        return orjson.dumps({"type": "watchers", "game_id": self.game_id, "count": count})


class EventGate:
    """Lets each ``state`` and ``chat`` message reach a socket once, in order.

    A live message can arrive after a replay that already held it (published just
    after the replay read the log, or late through Redis): ``state`` messages pass
    only with a ``seq``, and ``chat`` lines with an ``n``, above the last one passed.
    Every other message passes. ``rewind`` starts again from what the client has.
    """

    __slots__ = ("chat", "seq")

    def __init__(self) -> None:
        self.seq = -1  # the initial position has seq 0
        self.chat = 0

    def rewind(self, since: int, chat_since: int) -> None:
        """The client has up to ``since`` and chat line ``chat_since`` (0: nothing)."""
        self.seq = since if since > 0 else -1
        self.chat = chat_since

    def __call__(self, payload: bytes) -> bool:
        if payload.startswith(_STATE):
            self.seq, fresh = _advance(self.seq, payload, "seq")
            return fresh
        if payload.startswith(_CHAT):
            self.chat, fresh = _advance(self.chat, payload, "n")
            return fresh
        return True


_STATE = b'{"type":"state",'
_CHAT = b'{"type":"chat",'


def _advance(last: int, payload: bytes, key: str) -> tuple[int, bool]:
    """The new last number, and whether ``payload`` passes: its integer ``key`` is above
    ``last`` (or it has none)."""
    number = _number(payload, key)
    if number is None:
        return last, True
    if number > last:
        return number, True
    return last, False


def _number(payload: bytes, key: str) -> int | None:
    """The integer ``key`` of a JSON object payload, or None."""
    try:
        value = orjson.loads(payload).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ack(msg_id: object, ack: Ack) -> dict[str, Any]:
    return {
        "type": "ack",
        "id": msg_id,
        "seq": ack.seq,
        "version": ack.version,
        "result": ack.result,
    }


def _error(msg_id: object, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": msg_id, "code": code, "message": message}
