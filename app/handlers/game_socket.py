"""The game socket: ``/ws/<game_id>?subscribe-user`` with the game protocol on top.

The ws4redis endpoint (:mod:`app.handlers.ws`) does subscriptions and delivery;
for a game facility it hands every client frame here. Live frames are held
from the moment the socket opens until the client's ``resume`` has been
answered from the event log, so a client sees every event after its ``seq``
exactly once and in order, whichever instance it reconnects to.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Coroutine
from typing import Any

import orjson

from app.connections import Connection
from app.errors import Forbidden, PlayhouseError
from app.games.base import NOT_A_PLAYER
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
from app.services.play import Ack, Play, Stale
from app.storage.games import GameRepo
from app.types import Identity

__all__ = ["GAME_FACILITY", "GameSocket", "GameSockets"]

log = logging.getLogger("playhouse.game")

GAME_FACILITY = re.compile(r"[0-9a-f]{16}")
"""Game ids as challenges derive them (``app.services.challenges.game_id_for``)."""

RESUME_WAIT = 2.0
"""Seconds live frames wait for a ``resume`` before flowing anyway (plain ws4redis clients)."""


class GameSockets:
    """Recognises game facilities and counts this instance's sockets per player and game."""

    def __init__(
        self,
        play: Play,
        games: GameRepo,
        background: set[asyncio.Task[None]],
        metrics: Metrics | None = None,
    ) -> None:
        self.play = play
        self.metrics = metrics
        self._games = games
        self._background = background
        self._open: dict[tuple[str, str], int] = {}

    async def resolve(self, identity: Identity, facility: str) -> GameSocket | None:
        """The game protocol for this socket, or None for a facility that is no game.

        Raises:
            Forbidden: the game exists and ``identity`` is not one of its players.
            StorageUnavailable: MongoDB is down.
        """
        if not GAME_FACILITY.fullmatch(facility):
            return None
        game = await self._games.get(facility)
        if game is None:
            return None
        if identity.username is None or identity.username not in game.players:
            raise Forbidden("you are not playing this game", code=NOT_A_PLAYER)
        return GameSocket(self, facility, identity.username)

    def opened(self, game_id: str, player: str) -> None:
        key = (game_id, player)
        self._open[key] = self._open.get(key, 0) + 1
        if self._open[key] == 1:
            self.spawn(self.play.set_away(game_id, player, away=False))

    def closed(self, game_id: str, player: str) -> None:
        key = (game_id, player)
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
            return
        self._open.pop(key, None)
        self.spawn(self.play.set_away(game_id, player, away=True))

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
    """One player's socket on one game."""

    def __init__(self, hub: GameSockets, game_id: str, player: str) -> None:
        self._hub = hub
        self.game_id = game_id
        self.player = player
        self._conn: Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    def opened(self, conn: Connection) -> None:
        """Start holding live frames until the client resumes (or RESUME_WAIT passes)."""
        self._conn = conn
        if conn.held is None:
            conn.held = []
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(RESUME_WAIT, self._stop_holding)
        self._hub.opened(self.game_id, self.player)

    def closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._conn is not None:
            self._conn = None
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
        those the replay already covered."""
        if self._timer is not None:
            self._timer.cancel()
        if conn.held is None:
            conn.held = []
        try:
            resumed = await self._hub.play.replay(
                self.game_id, self.player, since=command.since, chat_since=command.chat_since
            )
        except BaseException:
            conn.release([])
            raise

        def fresh(payload: bytes) -> bool:
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return True
            if not isinstance(message, dict):
                return True
            if message.get("type") == "state":
                return int(message.get("seq", 0)) > resumed.seq
            if message.get("type") == "chat":
                return int(message.get("n", 0)) > resumed.chat
            return True

        conn.release(resumed.messages, keep=fresh)
        return {"type": "resumed", "id": command.id, "seq": resumed.seq, "chat": resumed.chat}


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
