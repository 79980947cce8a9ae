"""Replays of finished games: every position rebuilt from the seed and the event log.

No position is stored: ``setup(players, seed)`` then ``apply`` of each stored
``move`` event, in seq order, gives every past state (the rules are pure and
deterministic). Each frame carries the *spectator* view only, and only a
finished game is replayed, so a replay never shows a live game's hidden
information; the final frame carries the result, so views reveal then what a
finished game reveals (e.g. both Bingo boards) and never before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from app.errors import Conflict, NotFound, Unavailable
from app.games import registry
from app.games.base import GameRules, Invalid, State
from app.storage.games import GameEvent, GameRecord, GameRepo, GameStatus

__all__ = ["LOG_CATCH_UP", "PAGE", "Replays"]

logger = logging.getLogger(__name__)

PAGE = 1000  # events read per query
LOG_CATCH_UP = (0.05, 0.2, 0.5)  # pauses while the last batch of the log is on its way


class Replays:
    """Frames of finished games, from a :class:`GameRepo` and the rules registry."""

    def __init__(
        self, games: GameRepo, *, rules: Callable[[str], GameRules | None] = registry.get
    ) -> None:
        self._games = games
        self._rules = rules

    async def frames(self, game_id: str) -> dict[str, Any]:
        """``{game, kind, title, players, result, start, frames}`` of a finished game.

        ``start`` is the spectator view before the first event; ``frames`` has one
        ``{seq, last: {player, type, move, at}, view, to_move}`` per event, in seq
        order. A secret move (Rock-paper-scissors) is left out of ``last`` as it is
        for spectators live; the views show what the round reveals.

        Raises:
            NotFound: unknown game (or of a kind no longer registered).
            Conflict(game_active): the game is not finished yet.
            Unavailable(log_incomplete): the event log misses events or does not replay.
        """
        game = await self._games.get(game_id)
        rules = self._rules(game.kind) if game is not None else None
        if game is None or rules is None:
            raise NotFound(f"no game {game_id!r}")
        if game.status is not GameStatus.FINISHED:
            raise Conflict("the game is still being played", code="game_active")
        events = await self._events(game)
        state = rules.setup(game.players, game.seed)
        start = rules.view(state, None)
        frames = []
        for index, event in enumerate(events):
            if event.type == "move" and event.move is not None:
                after = rules.apply(state, event.player, event.move)
                if isinstance(after, Invalid):
                    logger.error("game %s: event %d does not replay", game.id, event.seq)
                    raise Unavailable("the game does not replay", code="log_incomplete")
                state = after
            final = index == len(events) - 1
            if final and state.get("result") is None:
                # Ended from outside the rules (resignation, time, agreement): the rules
                # see the end as on the stored game, so the views reveal it only now.
                state = {**state, "result": game.result}
            frames.append(_frame(rules, state, event, final=final))
        return {
            "game": game.id,
            "kind": game.kind,
            "title": rules.title,
            "players": list(game.players),
            "result": game.result,
            "start": start,
            "frames": frames,
        }

    async def _events(self, game: GameRecord) -> list[GameEvent]:
        """Events 1..``game.seq``; the latest may still be in a batch on its way."""
        wanted = list(range(1, game.seq + 1))
        for pause in (*LOG_CATCH_UP, None):
            events = await self._read_all(game)
            last = game.last
            if last is not None and (not events or events[-1].seq < last.seq):
                events.append(last)  # written with the game before its log copy
            if [e.seq for e in events] == wanted:
                return events
            if pause is not None:
                await asyncio.sleep(pause)
        logger.warning("game %s: event log incomplete; no replay", game.id)
        raise Unavailable("the game's move list is not complete yet", code="log_incomplete")

    async def _read_all(self, game: GameRecord) -> list[GameEvent]:
        events: list[GameEvent] = []
        while len(events) < game.seq:
            since = events[-1].seq if events else 0
            page = await self._games.events_since(game.id, since, limit=PAGE)
            events.extend(page)
            if len(page) < PAGE:
                break
        return events


def _frame(rules: GameRules, state: State, event: GameEvent, *, final: bool) -> dict[str, Any]:
    secret = rules.secret_moves and event.type == "move"
    return {
        "seq": event.seq,
        "last": {
            "player": event.player,
            "type": event.type,
            "move": None if secret else event.move,
            "at": event.at.isoformat(),
        },
        "view": rules.view(state, None),
        "to_move": [] if final else list(rules.to_move(state)),
    }
