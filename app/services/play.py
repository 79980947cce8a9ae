"""Server-authoritative play: load → pure rules → one versioned write → event → publish.

A move is acknowledged only after the conditional write of the game has
succeeded, so an acknowledged move is never lost. After it, the event is
appended and each player is sent *their own* view on ``user:<player>:<game_id>``;
failures of those two steps are logged, never raised: the move stands, and a
client that missed a message resumes by ``seq`` (:meth:`Play.events_since`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.games import registry
from app.games.base import BAD_MOVE, GAME_OVER, NOT_A_PLAYER, GameRules, Invalid
from app.pubsub import PubSub
from app.storage.games import GameEvent, GameRecord, GameRepo, GameStatus

__all__ = ["MAX_MOVE_BYTES", "Ack", "Play", "Stale"]

logger = logging.getLogger(__name__)

MAX_MOVE_BYTES = 1024
MAX_REPLAY = 1000
_GAME_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # it is part of channel names


class Stale(Conflict):
    """The client's ``expected_version`` is not the game's; ``current`` is its fresh view."""

    code = "stale"

    def __init__(self, message: str, *, current: dict[str, Any]) -> None:
        super().__init__(message)
        self.current = current


StatusHook = Callable[[list[str], str], Awaitable[None]]
"""``await on_status(players, "in_game" | "online")`` when a game starts or ends."""


@dataclass(frozen=True, slots=True)
class Ack:
    """An accepted, stored event: the game is now at ``version`` and ``seq``."""

    game_id: str
    seq: int
    version: int
    result: dict[str, Any] | None


def _check_move(move: object) -> dict[str, Any]:
    """``move`` if it is a small JSON object storable in MongoDB, else BadRequest(bad_move)."""
    if not isinstance(move, dict):
        raise BadRequest("a move is a JSON object", code=BAD_MOVE)
    try:
        size = len(orjson.dumps(move))
    except TypeError:
        raise BadRequest("a move must be plain JSON", code=BAD_MOVE) from None
    if size > MAX_MOVE_BYTES:
        raise BadRequest(f"a move is at most {MAX_MOVE_BYTES} bytes of JSON", code=BAD_MOVE)
    stack: list[Any] = [move]
    while stack:  # "$" and "." in keys mean something to MongoDB
        item = stack.pop()
        if isinstance(item, dict):
            if any(k.startswith("$") or "." in k or "\0" in k for k in item):
                raise BadRequest("move keys may not contain '$', '.' or NUL", code=BAD_MOVE)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return move


def _refused(invalid: Invalid) -> BadRequest | Forbidden:
    message = invalid.message or invalid.code
    if invalid.code == NOT_A_PLAYER:
        return Forbidden(message, code=NOT_A_PLAYER)
    return BadRequest(message, code=invalid.code)


class Play:
    """Game use cases over a :class:`GameRepo` and a :class:`PubSub`. No Tornado, no HTTP."""

    def __init__(
        self,
        games: GameRepo,
        pubsub: PubSub,
        *,
        rules: Callable[[str], GameRules | None] = registry.get,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        on_status: StatusHook | None = None,
    ) -> None:
        self._games = games
        self._pubsub = pubsub
        self._rules = rules
        self._now = now
        self._on_status = on_status

    async def create(
        self, game_id: str, kind: str, players: Sequence[str], seed: int
    ) -> GameRecord:
        """Start a game, or return the one already stored under ``game_id`` (idempotent).

        Raises:
            BadRequest: a malformed id, unknown kind (``unknown_game``) or wrong player count.
        """
        if not _GAME_ID.fullmatch(game_id):
            raise BadRequest("a game id is 1-64 letters, digits, '_' or '-'", code="bad_game_id")
        rules = self._rules(kind)
        if rules is None:
            raise BadRequest(f"unknown game {kind!r}", code="unknown_game")
        seats = tuple(players)
        if not rules.min_players <= len(seats) <= rules.max_players or len(set(seats)) < len(seats):
            raise BadRequest(
                f"{kind} needs {rules.min_players}-{rules.max_players} distinct players"
            )
        game, inserted = await self._games.create(
            game_id=game_id,
            kind=kind,
            players=seats,
            seed=seed,
            state=rules.setup(seats, seed),
            now=self._now(),
        )
        if inserted:
            await self._status(game.players, "in_game")
        return game

    async def move(self, game_id: str, player: str, move: object, *, expected_version: int) -> Ack:
        """Apply ``move`` by ``player`` to the game at ``expected_version``.

        Raises:
            NotFound: unknown game.
            Forbidden: ``not_a_player``.
            BadRequest: ``bad_move`` (malformed, or JSON over 1 KiB), ``game_over``, or
                the rules' code (``not_your_turn``, ``illegal_move``, ...). Nothing is stored.
            Stale: the game is not at ``expected_version`` (or another move won the
                write); ``current`` is the player's fresh view to retry from.
        """
        checked = _check_move(move)
        game, rules = await self._load(game_id)
        self._check_turn_taker(game, player)
        if expected_version != game.version:
            raise Stale("the game has moved on", current=self._payload(game, rules, player))
        state = rules.apply(game.state, player, checked)
        if isinstance(state, Invalid):
            raise _refused(state)
        outcome = rules.outcome(state)
        result = None
        if outcome.finished:
            result = {"status": outcome.status, "winner": outcome.winner, "reason": outcome.reason}
        event = self._event(game, player, "move", checked)
        status = GameStatus.FINISHED if outcome.finished else GameStatus.ACTIVE
        return await self._commit(game, rules, state, status, result, event)

    async def resign(self, game_id: str, player: str) -> Ack:
        """End the game: ``player`` loses, the other player (if one) wins.

        Raises:
            NotFound, Forbidden (``not_a_player``), BadRequest (``game_over``), or
            Stale when a move was written concurrently (retry to resign after it).
        """
        game, rules = await self._load(game_id)
        self._check_turn_taker(game, player)
        others = [p for p in game.players if p != player]
        winner = others[0] if len(others) == 1 else None
        result = {"status": "win" if winner else "draw", "winner": winner, "reason": "resigned"}
        event = self._event(game, player, "resign", None)
        # The rules see the end too (state["result"], the games' shared convention), so
        # views reveal what a finished game reveals, e.g. both Bingo boards.
        finished = {**game.state, "result": result}
        return await self._commit(game, rules, finished, GameStatus.FINISHED, result, event)

    async def view(self, game_id: str, player: str | None) -> dict[str, Any]:
        """The ``state`` message as ``player`` sees it (a spectator's when not playing).

        Raises:
            NotFound: unknown game.
        """
        game, rules = await self._load(game_id)
        return self._payload(game, rules, player if player in game.players else None)

    async def events_since(
        self, game_id: str, seq: int, *, limit: int = MAX_REPLAY
    ) -> list[GameEvent]:
        """Accepted events after ``seq``, in order, for reconnect replay.

        The latest event is also stored with the game, so it is included even if
        appending it to the log failed.

        Raises:
            NotFound: unknown game.
        """
        game, _ = await self._load(game_id)
        events = await self._games.events_since(game_id, seq, limit=limit)
        last = game.last
        missing = last is not None and last.seq > seq and all(e.seq != last.seq for e in events)
        if last is not None and missing and len(events) < limit:
            events.append(last)
        return events

    async def _load(self, game_id: str) -> tuple[GameRecord, GameRules]:
        game = await self._games.get(game_id)
        if game is None:
            raise NotFound(f"no game {game_id!r}")
        rules = self._rules(game.kind)
        if rules is None:  # a kind removed from the registry: the stored game is unusable
            raise NotFound(f"game {game_id!r} is of an unknown kind {game.kind!r}")
        return game, rules

    @staticmethod
    def _check_turn_taker(game: GameRecord, player: str) -> None:
        if player not in game.players:
            raise Forbidden("you are not playing this game", code=NOT_A_PLAYER)
        if game.status is GameStatus.FINISHED:
            raise BadRequest("the game is over", code=GAME_OVER)

    def _event(self, game: GameRecord, player: str, kind: str, move: Any) -> GameEvent:
        return GameEvent(game.id, game.seq + 1, player, kind, move, game.version + 1, self._now())

    async def _commit(
        self,
        game: GameRecord,
        rules: GameRules,
        state: dict[str, Any],
        status: GameStatus,
        result: dict[str, Any] | None,
        event: GameEvent,
    ) -> Ack:
        saved = await self._games.save(
            game.id,
            expected_version=game.version,
            state=state,
            status=status,
            result=result,
            event=event,
        )
        if saved is None:  # another writer took this version first
            fresh, rules = await self._load(game.id)
            raise Stale(
                "another move was accepted first", current=self._payload(fresh, rules, event.player)
            )
        # Written: from here on nothing may fail the acknowledged event.
        try:
            await self._games.append_event(event)
        except Exception:
            logger.exception("game %s: event %d stored with the game only", game.id, event.seq)
        await self._announce(saved, rules)
        if status is GameStatus.FINISHED:
            await self._status(saved.players, "online")
        return Ack(saved.id, saved.seq, saved.version, saved.result)

    async def _status(self, players: Sequence[str], status: str) -> None:
        """Tell presence (best effort: a stored game stands whatever happens here)."""
        if self._on_status is None:
            return
        try:
            await self._on_status(list(players), status)
        except Exception:
            logger.exception("presence not updated for %s", players)

    async def _announce(self, game: GameRecord, rules: GameRules) -> None:
        """Send each player their own view, on their own channel only."""
        for player in game.players:
            message = orjson.dumps(self._payload(game, rules, player))
            try:
                await self._pubsub.publisher(game.id, users=[player]).publish(message)
            except Exception:
                logger.exception("game %s: seq %d not published to %s", game.id, game.seq, player)

    @staticmethod
    def _payload(game: GameRecord, rules: GameRules, player: str | None) -> dict[str, Any]:
        last = game.last
        return {
            "type": "state",
            "game": game.id,
            "seq": game.seq,
            "version": game.version,
            "status": game.status.value,
            "view": rules.view(game.state, player),
            "last": None
            if last is None
            else {"player": last.player, "type": last.type, "move": last.move},
            "result": game.result,
        }
